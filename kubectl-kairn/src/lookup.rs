//! Finding a backup or restore by name, whatever its kind, and the volume backups of a
//! cluster backup.

use anyhow::{Context as _, Result};
use kube::api::{Api, ListParams};
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource};
use node_agent::crd::{
    BackupSchedule, ClusterBackup, NamespaceRestore, VolumeBackup, VolumeRestore,
};
use node_agent::schedule::{CLUSTER_BACKUP_LABEL, label_value};
use serde::de::DeserializeOwned;

use crate::Ctx;
use crate::exit::{Coded, NOT_FOUND, is_forbidden, is_not_found};

/// A resource found by name.
#[derive(Debug)]
pub enum Found {
    /// A cluster backup, with its volume backups.
    Cluster(Box<ClusterBackup>, Vec<VolumeBackup>),
    /// One volume's backup.
    Volume(Box<VolumeBackup>),
    /// One volume's restore.
    Restore(Box<VolumeRestore>),
    /// A namespace restore.
    Namespaces(Box<NamespaceRestore>),
    /// A schedule.
    Schedule(Box<BackupSchedule>),
}

/// `Some(obj)`, `None` when absent or not ours to read.
async fn try_get<K>(api: Api<K>, name: &str) -> Result<Option<K>>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.get(name).await {
        Ok(obj) => Ok(Some(obj)),
        Err(e) if is_not_found(&e) || is_forbidden(&e) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {name}")),
    }
}

fn namespaced<K>(ctx: &Ctx) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    Api::namespaced(ctx.client.clone(), &ctx.namespace)
}

/// The resource named `name`: in the current namespace for namespaced kinds.
pub async fn find(ctx: &Ctx, name: &str) -> Result<Found> {
    if let Some(vb) = try_get(namespaced::<VolumeBackup>(ctx), name).await? {
        return Ok(Found::Volume(Box::new(vb)));
    }
    if let Some(vr) = try_get(namespaced::<VolumeRestore>(ctx), name).await? {
        return Ok(Found::Restore(Box::new(vr)));
    }
    if let Some(cb) = try_get(Api::<ClusterBackup>::all(ctx.client.clone()), name).await? {
        let members = members(&ctx.client, name, &ctx.namespace).await?;
        return Ok(Found::Cluster(Box::new(cb), members));
    }
    if let Some(nsr) = try_get(Api::<NamespaceRestore>::all(ctx.client.clone()), name).await? {
        return Ok(Found::Namespaces(Box::new(nsr)));
    }
    if let Some(s) = try_get(Api::<BackupSchedule>::all(ctx.client.clone()), name).await? {
        return Ok(Found::Schedule(Box::new(s)));
    }
    Err(Coded::error(
        NOT_FOUND,
        format!(
            "no backup or restore named {name:?} in namespace {} (nor a cluster backup, \
             namespace restore or schedule of that name); `kubectl kairn get` lists them",
            ctx.namespace
        ),
    ))
}

/// The VolumeBackups a ClusterBackup made, in every namespace, or in `fallback_ns` alone
/// when the user may not list across namespaces.
pub async fn members(client: &Client, name: &str, fallback_ns: &str) -> Result<Vec<VolumeBackup>> {
    let params =
        ListParams::default().labels(&format!("{CLUSTER_BACKUP_LABEL}={}", label_value(name)));
    let all: Api<VolumeBackup> = Api::all(client.clone());
    let list = match all.list(&params).await {
        Ok(list) => list,
        Err(e) if is_forbidden(&e) => {
            let own: Api<VolumeBackup> = Api::namespaced(client.clone(), fallback_ns);
            own.list(&params)
                .await
                .context("cannot list volume backups")?
        }
        Err(e) => return Err(e).context("cannot list volume backups"),
    };
    let mut items = list.items;
    items.sort_by(|a, b| {
        let key = |v: &VolumeBackup| (v.metadata.namespace.clone(), v.spec.pvc.clone());
        key(a).cmp(&key(b))
    });
    Ok(items)
}
