//! `get`: backups, restores, schedules and cluster backups in one table, newest first.

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use kube::api::{Api, ListParams};
use kube::core::NamespaceResourceScope;
use kube::{Resource, ResourceExt};
use node_agent::crd::{
    BackupSchedule, ClusterBackup, NamespaceRestore, RestoreTarget, VolumeBackup, VolumeRestore,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Ctx;
use crate::args::Output;
use crate::exit::{OK, is_forbidden};
use crate::format::{self, Table};
use crate::wait::Followed;

/// One line of the table.
#[derive(Debug, Serialize)]
pub struct Row {
    /// `ClusterBackup`, `VolumeBackup`, ...
    pub kind: String,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The phase, or for a schedule its state.
    pub phase: String,
    /// What it is about: the PVC, the target, the series, the cron expression.
    pub what: String,
    /// The snapshot written or restored, if any.
    pub snapshot: String,
    /// When it was created.
    #[serde(skip)]
    pub created: Option<DateTime<Utc>>,
}

fn row<K: Resource + ResourceExt>(obj: &K, kind: &str) -> Row {
    Row {
        kind: kind.into(),
        namespace: obj.namespace().unwrap_or_default(),
        name: obj.name_any(),
        phase: String::new(),
        what: String::new(),
        snapshot: String::new(),
        created: obj
            .creation_timestamp()
            .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0)),
    }
}

fn volume_backup(vb: &VolumeBackup) -> Row {
    let st = vb.status.as_ref();
    Row {
        phase: format!("{:?}", vb.phase()),
        what: vb.spec.pvc.clone(),
        snapshot: short(st.and_then(|s| s.snapshot_id.as_deref())),
        ..row(vb, "VolumeBackup")
    }
}

fn volume_restore(vr: &VolumeRestore) -> Row {
    let target = match &vr.spec.target {
        RestoreTarget::Pvc(p) => format!("-> {}/{p}", vr.target_namespace()),
        RestoreTarget::Path(p) => format!("-> path {p}"),
    };
    Row {
        phase: format!("{:?}", vr.phase()),
        what: target,
        snapshot: vr.spec.snapshot.chars().take(8).collect(),
        ..row(vr, "VolumeRestore")
    }
}

fn cluster_backup(cb: &ClusterBackup) -> Row {
    let v = cb
        .status
        .as_ref()
        .map(|s| s.volumes.clone())
        .unwrap_or_default();
    Row {
        phase: format!("{:?}", cb.phase()),
        what: format!(
            "series {}, {}/{} volumes",
            cb.spec.series, v.completed, v.total
        ),
        ..row(cb, "ClusterBackup")
    }
}

fn namespace_restore(nsr: &NamespaceRestore) -> Row {
    let st = nsr.status.as_ref();
    let from = st.and_then(|s| s.cluster_backup.clone());
    Row {
        phase: format!("{:?}", nsr.phase()),
        what: format!(
            "from {}",
            from.or(nsr.spec.cluster_backup.clone())
                .or(nsr.spec.series.clone())
                .unwrap_or_default()
        ),
        ..row(nsr, "NamespaceRestore")
    }
}

fn schedule(bs: &BackupSchedule) -> Row {
    let outcome = bs.status.as_ref().and_then(|s| s.last_outcome);
    let phase = match (bs.spec.paused, outcome) {
        (true, _) => "Paused".to_string(),
        (false, Some(p)) => format!("last {p:?}"),
        (false, None) => "Waiting".to_string(),
    };
    Row {
        phase,
        what: format!("cron {}", bs.spec.schedule),
        ..row(bs, "BackupSchedule")
    }
}

fn short(id: Option<&str>) -> String {
    id.map(|i| i.chars().take(8).collect()).unwrap_or_default()
}

/// Lists `K` in the namespace (or all), empty when the user may not.
async fn list<K>(api: Api<K>) -> Result<Vec<K>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    match api.list(&ListParams::default()).await {
        Ok(l) => Ok(l.items),
        Err(e) if is_forbidden(&e) => Ok(Vec::new()),
        Err(e) => Err(e).context(format!("cannot list {}", K::plural(&Default::default()))),
    }
}

fn scoped<K>(ctx: &Ctx) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    if ctx.global.all_namespaces {
        Api::all(ctx.client.clone())
    } else {
        Api::namespaced(ctx.client.clone(), &ctx.namespace)
    }
}

/// Every row, newest first.
pub async fn rows(ctx: &Ctx) -> Result<Vec<Row>> {
    let client = &ctx.client;
    let mut rows = Vec::new();
    rows.extend(
        list(Api::<ClusterBackup>::all(client.clone()))
            .await?
            .iter()
            .map(cluster_backup),
    );
    rows.extend(
        list(scoped::<VolumeBackup>(ctx))
            .await?
            .iter()
            .map(volume_backup),
    );
    rows.extend(
        list(scoped::<VolumeRestore>(ctx))
            .await?
            .iter()
            .map(volume_restore),
    );
    rows.extend(
        list(Api::<NamespaceRestore>::all(client.clone()))
            .await?
            .iter()
            .map(namespace_restore),
    );
    rows.extend(
        list(Api::<BackupSchedule>::all(client.clone()))
            .await?
            .iter()
            .map(schedule),
    );
    rows.sort_by(|a, b| b.created.cmp(&a.created).then(a.name.cmp(&b.name)));
    Ok(rows)
}

/// `get`.
pub async fn run(ctx: &Ctx) -> Result<u8> {
    let rows = rows(ctx).await?;
    if ctx.global.output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"items": rows}))?
        );
        return Ok(OK);
    }
    if rows.is_empty() {
        eprintln!(
            "No Kairn backups, restores or schedules found in {}.",
            ctx.namespace
        );
        return Ok(OK);
    }
    let now = Utc::now();
    let mut table = Table::new(&["namespace", "name", "phase", "what", "snapshot", "age"]);
    for r in &rows {
        table.row(vec![
            if r.namespace.is_empty() {
                "-".into()
            } else {
                r.namespace.clone()
            },
            format!("{}/{}", r.kind.to_lowercase(), r.name),
            r.phase.clone(),
            r.what.clone(),
            r.snapshot.clone(),
            format::age(r.created, now),
        ]);
    }
    print!("{}", table.render());
    Ok(OK)
}
