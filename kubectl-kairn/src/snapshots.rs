//! `snapshots`: what the repository holds, read through the agents' credentials, or for users
//! who may not read them, the VolumeBackup objects the agents keep in step with it.

use anyhow::{Context as _, Result};
use chrono::Utc;
use engine::format::snapshot::{Snapshot, SourceKind};
use engine::snapshots::{SnapshotFilter, list_readable};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use node_agent::crd::{Phase, VolumeBackup};
use serde::Serialize;

use crate::Ctx;
use crate::args::{Output, SnapshotsArgs};
use crate::exit::{OK, is_forbidden};
use crate::format::{self, Table};
use crate::repository;

/// One snapshot, from either source.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// The full snapshot id.
    pub id: String,
    /// RFC 3339.
    pub time: String,
    /// `volume`, `etcd`, `manifests`, `filesystem`...
    pub kind: String,
    /// The cluster that wrote it, when recorded.
    pub cluster: String,
    /// The PVC's namespace.
    pub namespace: String,
    /// The PVC, or what else the snapshot holds.
    pub pvc: String,
    /// The cluster backup it is part of.
    pub group: String,
    /// Logical bytes, when known.
    pub bytes: Option<u64>,
    /// Bytes the backup added to the repository, when known.
    pub new_bytes_stored: Option<u64>,
    /// Some files could not be read.
    pub incomplete: bool,
}

/// The item of a repository snapshot.
pub fn from_snapshot(id: String, s: &Snapshot) -> Item {
    let src = &s.source;
    let kind = match (src.kind, &src.pvc) {
        (SourceKind::Filesystem | SourceKind::BlockDevice, Some(_)) => "volume".to_string(),
        (k, _) => serde_json::to_value(k)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
    };
    Item {
        id,
        time: s.time.clone(),
        kind,
        cluster: src.cluster.clone().unwrap_or_default(),
        namespace: src.namespace.clone().unwrap_or_default(),
        pvc: src.pvc.clone().unwrap_or_else(|| s.paths.join(", ")),
        group: s.group.as_ref().map(|g| g.id.clone()).unwrap_or_default(),
        bytes: Some(s.summary.total_bytes),
        new_bytes_stored: Some(s.summary.new_bytes_stored),
        incomplete: s.incomplete,
    }
}

/// True when `item` is one the command was asked for.
fn wanted(item: &Item, ctx: &Ctx, a: &SnapshotsArgs) -> bool {
    let ns_ok = ctx.global.all_namespaces || item.namespace == ctx.namespace;
    ns_ok && a.pvc.as_ref().is_none_or(|p| &item.pvc == p)
}

async fn from_repository(ctx: &Ctx) -> Result<Vec<Item>> {
    let repo = repository::open(ctx).await?;
    let scan =
        tokio::task::spawn_blocking(move || list_readable(&repo, &SnapshotFilter::default()))
            .await
            .context("listing the snapshots stopped")??;
    for f in &scan.damaged {
        eprintln!("warning: snapshot {} cannot be read: {}", f.name, f.reason);
    }
    let items = scan
        .snapshots
        .iter()
        .map(|(id, s)| from_snapshot(id.to_hex(), s));
    Ok(items.collect())
}

async fn from_objects(ctx: &Ctx) -> Result<Vec<Item>> {
    let api: Api<VolumeBackup> = if ctx.global.all_namespaces {
        Api::all(ctx.client.clone())
    } else {
        Api::namespaced(ctx.client.clone(), &ctx.namespace)
    };
    let list = api
        .list(&ListParams::default())
        .await
        .context("cannot list volume backups")?;
    let items = list.items.iter().filter_map(|vb| {
        let st = vb.status.as_ref()?;
        let id = st.snapshot_id.clone()?;
        let ns = vb
            .annotations()
            .get(node_agent::repo_sync::SOURCE_NAMESPACE)
            .cloned();
        Some(Item {
            id,
            time: st
                .finished
                .clone()
                .or(st.started.clone())
                .unwrap_or_default(),
            kind: "volume".into(),
            cluster: vb
                .annotations()
                .get(node_agent::repo_sync::SOURCE_CLUSTER)
                .cloned()
                .unwrap_or_default(),
            namespace: ns.or(vb.namespace()).unwrap_or_default(),
            pvc: vb.spec.pvc.clone(),
            group: vb
                .spec
                .cluster_backup
                .as_ref()
                .map(|g| g.id.clone())
                .unwrap_or_default(),
            bytes: (st.progress.bytes_done > 0).then_some(st.progress.bytes_done),
            new_bytes_stored: st.new_bytes_stored,
            incomplete: st.phase == Phase::PartiallyFailed,
        })
    });
    Ok(items.collect())
}

/// `snapshots`.
pub async fn run(ctx: &Ctx, a: SnapshotsArgs) -> Result<u8> {
    let items = if a.objects {
        from_objects(ctx).await?
    } else {
        match from_repository(ctx).await {
            Ok(items) => items,
            Err(e)
                if e.chain()
                    .any(|c| c.downcast_ref::<kube::Error>().is_some_and(is_forbidden)) =>
            {
                eprintln!(
                    "note: you may not read the agents' Secret in {}: listing the VolumeBackups \
                     the agents sync from the repository instead",
                    ctx.global.kairn_namespace
                );
                from_objects(ctx).await?
            }
            Err(e) => return Err(e),
        }
    };
    let mut items: Vec<Item> = items.into_iter().filter(|i| wanted(i, ctx, &a)).collect();
    items.sort_by(|x, y| x.time.cmp(&y.time).then(x.id.cmp(&y.id)));
    if ctx.global.output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"items": items}))?
        );
        return Ok(OK);
    }
    print!("{}", table(&items));
    eprintln!("{} snapshot(s)", items.len());
    Ok(OK)
}

fn table(items: &[Item]) -> String {
    let now = Utc::now();
    let mut t = Table::new(&[
        "id",
        "time",
        "age",
        "namespace",
        "pvc",
        "group",
        "size",
        "new stored",
    ]);
    for i in items {
        let time = format::time(&i.time);
        let what = if i.kind == "volume" {
            i.pvc.clone()
        } else {
            format!("({}) {}", i.kind, i.pvc)
        };
        let flag = if i.incomplete { " (incomplete)" } else { "" };
        t.row(vec![
            i.id.chars().take(8).collect(),
            time.map(format::local).unwrap_or_else(|| i.time.clone()),
            format::age(time, now),
            if i.namespace.is_empty() {
                "-".into()
            } else {
                i.namespace.clone()
            },
            format!("{what}{flag}"),
            i.group.clone(),
            i.bytes.map(format::bytes).unwrap_or_default(),
            i.new_bytes_stored.map(format::bytes).unwrap_or_default(),
        ]);
    }
    t.render()
}
