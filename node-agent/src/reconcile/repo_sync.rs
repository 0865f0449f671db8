//! The leading agent, every `KAIRN_REPO_SYNC_SECONDS`, reads the repository's snapshots and
//! carries out the [`crate::repo_sync`] plan: synced ClusterBackups and VolumeBackups created
//! (then their status written), and the synced ones whose snapshots are gone deleted. Only
//! objects are touched, never data.

use std::collections::BTreeSet;
use std::sync::Arc;

use engine::format::snapshot::{Snapshot, SourceKind};
use engine::snapshots::SnapshotFilter;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::crd::{ClusterBackup, VolumeBackup};
use crate::repo_sync::{Existing, InCluster, LoneVolume, plan};
use crate::restore_plan::{BackupGroup, groups};

/// Syncs when this agent leads and the interval has passed. Every ClusterBackup and
/// VolumeBackup is listed for it (finished ones are not in the watch caches), then dropped.
pub async fn sync_if_due(ctx: &Arc<Context>) {
    let Some(every) = ctx.config.repo_sync else {
        return;
    };
    if !ctx.leads() || !Context::due(&ctx.last_repo_sync, every) {
        return;
    }
    let (mut cluster_backups, mut volume_backups) = (Vec::new(), Vec::new());
    let cbs = Api::<ClusterBackup>::all(ctx.client.clone());
    let vbs = Api::<VolumeBackup>::all(ctx.client.clone());
    let listed = crate::history::each_page(&cbs, "", |page| {
        cluster_backups.extend(page.iter().map(Existing::cluster_backup));
    })
    .await
    .and(
        crate::history::each_page(&vbs, "", |page| {
            volume_backups.extend(page.iter().map(Existing::volume_backup));
        })
        .await,
    );
    if let Err(e) = listed {
        tracing::warn!("cannot list the backups to sync: {e}");
        return;
    }
    let (groups, lone) = match read(ctx).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!("cannot sync from the repository: {e}");
            return;
        }
    };
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let namespaces: BTreeSet<String> = match namespaces.list_metadata(&ListParams::default()).await
    {
        Ok(list) => list.items.iter().map(|n| n.name_any()).collect(),
        Err(e) => {
            tracing::warn!("cannot list namespaces to sync volume backups into: {e}");
            return;
        }
    };
    let have = InCluster {
        cluster_backups: &cluster_backups,
        volume_backups: &volume_backups,
        namespaces: &namespaces,
        cluster: ctx.config.cluster.as_deref(),
        admin_namespace: &ctx.config.admin_namespace,
    };
    // Shown for as long as a finished object is kept (the default TTL).
    let keep = crate::ttl::parse(crate::ttl::DEFAULT_TTL).unwrap_or_default();
    let since = chrono::Utc::now() - keep;
    let todo = plan(&groups, &lone, have, since);
    for cb in todo.cluster_backups {
        create(Api::all(ctx.client.clone()), cb).await;
    }
    for vb in todo.volume_backups {
        let ns = vb.namespace().unwrap_or_default();
        create(Api::namespaced(ctx.client.clone(), &ns), vb).await;
    }
    for (ns, name) in todo.stale {
        let params = DeleteParams::default();
        let result = if ns.is_empty() {
            let api: Api<ClusterBackup> = Api::all(ctx.client.clone());
            api.delete(&name, &params).await.map(|_| ())
        } else {
            let api: Api<VolumeBackup> = Api::namespaced(ctx.client.clone(), &ns);
            api.delete(&name, &params).await.map(|_| ())
        };
        match result {
            Ok(()) => {
                tracing::info!(namespace = %ns, resource = %name, "synced object deleted: its snapshots are gone from the repository")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(resource = %name, "cannot delete a stale synced object: {e}"),
        }
    }
}

/// Creates a synced object, then writes its status (a subresource: not taken at create).
async fn create<K>(api: Api<K>, obj: K)
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug + HasStatus,
{
    let name = obj.name_any();
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => return,
        Err(e) => {
            tracing::warn!(resource = %name, "cannot create a synced object: {e}");
            return;
        }
    }
    if let Err(e) = crate::status::patch(&api, &name, None, &obj.status_json()).await {
        tracing::warn!(resource = %name, "cannot write a synced object's status: {e}");
        return;
    }
    tracing::info!(resource = %name, "synced from the repository");
}

/// The status a synced object is created with.
trait HasStatus {
    fn status_json(&self) -> serde_json::Value;
}

impl HasStatus for ClusterBackup {
    fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.status).unwrap_or_default()
    }
}

impl HasStatus for VolumeBackup {
    fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.status).unwrap_or_default()
    }
}

/// The repository's cluster backups and lone volume snapshots, read on a blocking thread.
async fn read(ctx: &Context) -> Result<(Vec<BackupGroup>, Vec<LoneVolume>), String> {
    let access = ctx.access.clone();
    let work = move || -> Result<(Vec<BackupGroup>, Vec<LoneVolume>), String> {
        let repo = access.open().map_err(|e| e.to_string())?;
        let all: Vec<(String, Snapshot)> =
            engine::snapshots::list(&repo, &SnapshotFilter::default())
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(id, s)| (id.to_hex(), s))
                .collect();
        let lone = all
            .iter()
            .filter(|(_, s)| s.group.is_none())
            .filter(|(_, s)| {
                matches!(
                    s.source.kind,
                    SourceKind::Filesystem | SourceKind::BlockDevice
                )
            })
            .filter_map(|(id, s)| {
                Some(LoneVolume {
                    id: id.clone(),
                    cluster: s.source.cluster.clone(),
                    namespace: s.source.namespace.clone()?,
                    pvc: s.source.pvc.clone()?,
                    time: s.time.clone(),
                    incomplete: s.incomplete,
                })
            })
            .collect();
        Ok((groups(&all), lone))
    };
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(format!("the repository read stopped: {e}")))
}
