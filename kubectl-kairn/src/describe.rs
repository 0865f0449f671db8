//! `describe NAME`: everything about one backup or restore, like `velero backup describe
//! --details`: for a cluster backup, every volume with its phase, bytes read, new bytes
//! stored, duration and errors.

use anyhow::Result;
use chrono::Utc;
use kube::ResourceExt;
use node_agent::crd::{
    BackupSchedule, ClusterBackup, NamespaceRestore, PartStatus, VolumeBackup, VolumeRestore,
};
use serde_json::json;

use crate::Ctx;
use crate::args::{NameArgs, Output};
use crate::exit::OK;
use crate::format::{self, Table};
use crate::lookup::{self, Found};
use crate::wait::Followed;

/// `describe NAME`.
pub async fn run(ctx: &Ctx, a: NameArgs) -> Result<u8> {
    let found = lookup::find(ctx, &a.name).await?;
    match ctx.global.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&as_json(&found))?),
        Output::Table => print!("{}", text(&found)),
    }
    Ok(OK)
}

/// The found resource as one JSON document: its kind, the object, and for a cluster backup
/// its volume backups.
pub fn as_json(found: &Found) -> serde_json::Value {
    match found {
        Found::Cluster(cb, members) => {
            json!({"kind": "ClusterBackup", "object": cb, "volumeBackups": members})
        }
        Found::Volume(vb) => json!({"kind": "VolumeBackup", "object": vb}),
        Found::Restore(vr) => json!({"kind": "VolumeRestore", "object": vr}),
        Found::Namespaces(nsr) => json!({"kind": "NamespaceRestore", "object": nsr}),
        Found::Schedule(s) => json!({"kind": "BackupSchedule", "object": s}),
    }
}

/// The found resource, for people.
pub fn text(found: &Found) -> String {
    match found {
        Found::Cluster(cb, members) => cluster(cb, members),
        Found::Volume(vb) => volume(vb),
        Found::Restore(vr) => restore(vr),
        Found::Namespaces(nsr) => namespaces(nsr),
        Found::Schedule(s) => schedule(s),
    }
}

/// `Key:` lines, the values aligned.
#[derive(Default)]
struct Sheet(String);

impl Sheet {
    fn field(&mut self, key: &str, value: impl AsRef<str>) {
        let value = value.as_ref();
        let value = if value.is_empty() { "<none>" } else { value };
        self.0
            .push_str(&format!("{:<14}{value}\n", format!("{key}:")));
    }

    fn times(&mut self, started: Option<&str>, finished: Option<&str>) {
        let local = |t: Option<&str>| {
            t.and_then(format::time)
                .map(format::local)
                .unwrap_or_default()
        };
        self.field("Started", local(started));
        let took =
            format::duration(started, finished).map(|s| format!(" (took {})", format::span(s)));
        self.field(
            "Finished",
            format!("{}{}", local(finished), took.unwrap_or_default()),
        );
    }

    fn list(&mut self, title: &str, items: &[String]) {
        if items.is_empty() {
            return;
        }
        self.0.push_str(&format!("{title}:\n"));
        for item in items {
            self.0.push_str(&format!("  {item}\n"));
        }
    }

    fn table(&mut self, title: &str, table: &Table) {
        self.0.push_str(&format!("{title}:\n"));
        if table.is_empty() {
            self.0.push_str("  <none>\n");
            return;
        }
        for line in table.render().lines() {
            self.0.push_str(&format!("  {line}\n"));
        }
    }
}

fn phase_text<K: Followed>(obj: &K) -> String {
    format!("{:?}", obj.phase())
}

fn cluster(cb: &ClusterBackup, members: &[VolumeBackup]) -> String {
    let mut s = Sheet::default();
    let status = cb.status.clone().unwrap_or_default();
    s.field("Name", cb.name_any());
    s.field("Kind", "ClusterBackup");
    s.field("Series", &cb.spec.series);
    s.field("Phase", phase_text(cb));
    s.times(status.started.as_deref(), status.finished.as_deref());
    let v = &status.volumes;
    s.field(
        "Volumes",
        format!(
            "{} total, {} completed, {} failed",
            v.total, v.completed, v.failed
        ),
    );
    s.field("Etcd", part(status.etcd.as_ref()));
    s.field("Manifests", part(status.manifests.as_ref()));
    s.field("Images", part(status.images.as_ref()));
    let mut table = Table::new(&[
        "namespace",
        "pvc",
        "phase",
        "node",
        "read",
        "new stored",
        "duration",
        "snapshot",
        "errors",
    ]);
    let mut errors = Vec::new();
    for vb in members {
        let st = vb.status.clone().unwrap_or_default();
        let ns = vb.namespace().unwrap_or_default();
        let took = format::duration(st.started.as_deref(), st.finished.as_deref());
        table.row(vec![
            ns.clone(),
            vb.spec.pvc.clone(),
            format!("{:?}", st.phase),
            st.node.clone().unwrap_or_default(),
            format::bytes(st.progress.bytes_done),
            st.new_bytes_stored.map(format::bytes).unwrap_or_default(),
            took.map(format::span).unwrap_or_default(),
            short(st.snapshot_id.as_deref()),
            st.errors.len().to_string(),
        ]);
        errors.extend(
            st.errors
                .iter()
                .map(|e| format!("{ns}/{}: {e}", vb.spec.pvc)),
        );
    }
    s.table("Volume backups", &table);
    errors.extend(cb.errors());
    s.list("Errors", &errors);
    s.0
}

fn part(p: Option<&PartStatus>) -> String {
    let Some(p) = p else {
        return "not asked for".into();
    };
    let mut out = format!("{:?}", p.phase);
    if let Some(id) = &p.snapshot_id {
        out.push_str(&format!(", snapshot {}", short(Some(id))));
    }
    if let Some(node) = &p.node {
        out.push_str(&format!(", node {node}"));
    }
    out
}

fn short(id: Option<&str>) -> String {
    id.map(|i| i.chars().take(8).collect()).unwrap_or_default()
}

fn volume(vb: &VolumeBackup) -> String {
    let mut s = Sheet::default();
    let st = vb.status.clone().unwrap_or_default();
    s.field("Name", vb.name_any());
    s.field("Namespace", vb.namespace().unwrap_or_default());
    s.field("Kind", "VolumeBackup");
    s.field("PVC", &vb.spec.pvc);
    s.field("Phase", phase_text(vb));
    s.field("Node", st.node.clone().unwrap_or_default());
    s.times(st.started.as_deref(), st.finished.as_deref());
    s.field("Snapshot", st.snapshot_id.clone().unwrap_or_default());
    s.field("Bytes read", format::bytes(st.progress.bytes_done));
    s.field("Files", st.progress.files_done.to_string());
    let stored = st.new_bytes_stored.map(format::bytes);
    s.field("New stored", stored.unwrap_or_default());
    s.field("Attempts", st.attempts.to_string());
    s.field("Tags", vb.spec.tags.join(", "));
    if let Some(cb) = &vb.spec.cluster_backup {
        s.field("Cluster backup", &cb.id);
    }
    s.field("Waiting", st.waiting.clone().unwrap_or_default());
    s.list("Errors", &st.errors);
    s.0
}

fn restore(vr: &VolumeRestore) -> String {
    let mut s = Sheet::default();
    let st = vr.status.clone().unwrap_or_default();
    s.field("Name", vr.name_any());
    s.field("Namespace", vr.namespace().unwrap_or_default());
    s.field("Kind", "VolumeRestore");
    s.field("Snapshot", &vr.spec.snapshot);
    if let Some(pvc) = &vr.spec.source_pvc {
        s.field("From", format!("{}/{pvc}", vr.source_namespace()));
    }
    let target = match &vr.spec.target {
        node_agent::crd::RestoreTarget::Pvc(p) => format!("{}/{p}", vr.target_namespace()),
        node_agent::crd::RestoreTarget::Path(p) => format!("path {p}"),
    };
    s.field("Target", target);
    s.field("Phase", phase_text(vr));
    s.field("Node", st.node.clone().unwrap_or_default());
    s.times(st.started.as_deref(), st.finished.as_deref());
    s.field("Restored", st.snapshot_id.clone().unwrap_or_default());
    let total = st.progress.bytes_total.map(format::bytes);
    s.field(
        "Written",
        format!(
            "{} of {}, {} files ({} already in place)",
            format::bytes(st.progress.bytes_done),
            total.as_deref().unwrap_or("?"),
            st.progress.files_done,
            st.files_unchanged
        ),
    );
    s.field("Waiting", st.waiting.clone().unwrap_or_default());
    s.list("Errors", &st.errors);
    s.0
}

fn namespaces(nsr: &NamespaceRestore) -> String {
    let mut s = Sheet::default();
    let st = nsr.status.clone().unwrap_or_default();
    s.field("Name", nsr.name_any());
    s.field("Kind", "NamespaceRestore");
    let asked = nsr.spec.cluster_backup.clone().or(nsr
        .spec
        .series
        .clone()
        .map(|x| format!("newest of series {x}")));
    s.field(
        "Backup",
        st.cluster_backup.clone().or(asked).unwrap_or_default(),
    );
    s.field("Namespaces", nsr.spec.namespaces.join(", "));
    let mapping: Vec<String> = nsr
        .spec
        .namespace_mapping
        .iter()
        .map(|(a, b)| format!("{a}={b}"))
        .collect();
    s.field("Mapping", mapping.join(", "));
    s.field("Phase", phase_text(nsr));
    s.field("Stage", format!("{:?}", st.stage));
    s.times(st.started.as_deref(), st.finished.as_deref());
    let o = &st.objects;
    s.field(
        "Objects",
        format!(
            "{} applied, {} skipped, {} failed",
            o.applied, o.skipped, o.failed
        ),
    );
    let mut table = Table::new(&[
        "namespace",
        "pvc",
        "snapshot",
        "phase",
        "written",
        "restore",
        "message",
    ]);
    for v in &st.volumes {
        table.row(vec![
            v.namespace.clone(),
            v.pvc.clone(),
            short(Some(&v.snapshot)),
            format!("{:?}", v.phase),
            format::bytes(v.bytes_done),
            v.volume_restore.clone().unwrap_or_default(),
            v.message.clone().unwrap_or_default(),
        ]);
    }
    s.table("Volumes", &table);
    s.list("Failures", &st.failures);
    s.list("Messages", &st.messages);
    s.0
}

fn schedule(bs: &BackupSchedule) -> String {
    let mut s = Sheet::default();
    let st = bs.status.clone().unwrap_or_default();
    s.field("Name", bs.name_any());
    s.field("Kind", "BackupSchedule");
    s.field("Schedule", &bs.spec.schedule);
    s.field("Paused", bs.spec.paused.to_string());
    let now = Utc::now();
    let when = |t: &Option<String>| {
        t.as_deref()
            .and_then(format::time)
            .map(|t| format!("{} ({} ago)", format::local(t), format::age(Some(t), now)))
            .unwrap_or_default()
    };
    s.field("Last run", when(&st.last_schedule_time));
    s.field("Last success", when(&st.last_successful_time));
    s.field(
        "Next run",
        st.next_schedule_time
            .as_deref()
            .and_then(format::time)
            .map(format::local)
            .unwrap_or_default(),
    );
    s.field(
        "Last outcome",
        st.last_outcome
            .map(|p| format!("{p:?}"))
            .unwrap_or_default(),
    );
    let conditions: Vec<String> = st
        .conditions
        .iter()
        .map(|c| format!("{}={} ({}): {}", c.type_, c.status, c.reason, c.message))
        .collect();
    s.list("Conditions", &conditions);
    s.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_agent::crd::{
        ClusterBackupSpec, ClusterBackupStatus, Phase, Progress, VolumeBackupSpec,
        VolumeBackupStatus, VolumesStatus,
    };

    fn member(ns: &str, pvc: &str, phase: Phase, errors: &[&str]) -> VolumeBackup {
        let mut vb = VolumeBackup::new(
            &format!("{pvc}-x"),
            VolumeBackupSpec {
                pvc: pvc.into(),
                tags: vec![],
                hooks: None,
                cancel: false,
                cluster_backup: None,
                ttl: None,
            },
        );
        vb.metadata.namespace = Some(ns.into());
        vb.status = Some(VolumeBackupStatus {
            phase,
            node: Some("node-1".into()),
            progress: Progress {
                bytes_done: 3 << 20,
                bytes_total: None,
                files_done: 7,
            },
            snapshot_id: Some("0123456789abcdef".into()),
            new_bytes_stored: Some(1 << 20),
            errors: errors.iter().map(|e| e.to_string()).collect(),
            started: Some("2026-12-01T02:00:00Z".into()),
            finished: Some("2026-12-01T02:01:05Z".into()),
            ..Default::default()
        });
        vb
    }

    #[test]
    fn a_cluster_backup_shows_every_volume_with_its_figures_and_errors() {
        let spec: ClusterBackupSpec = serde_json::from_value(json!({"series": "nightly"})).unwrap();
        let mut cb = ClusterBackup::new("nightly-1", spec);
        cb.status = Some(ClusterBackupStatus {
            phase: Phase::PartiallyFailed,
            volumes: VolumesStatus {
                total: 2,
                completed: 1,
                failed: 1,
            },
            ..Default::default()
        });
        let members = vec![
            member("shop", "db", Phase::Completed, &[]),
            member(
                "shop",
                "cache",
                Phase::Failed,
                &["cannot read /x: permission denied"],
            ),
        ];
        let out = text(&Found::Cluster(Box::new(cb), members));
        assert!(out.contains("Phase:        PartiallyFailed"), "{out}");
        assert!(out.contains("2 total, 1 completed, 1 failed"), "{out}");
        let db = out.lines().find(|l| l.contains(" db ")).unwrap();
        for want in [
            "Completed",
            "node-1",
            "3.0 MiB",
            "1.0 MiB",
            "1m5s",
            "01234567",
        ] {
            assert!(db.contains(want), "{want} missing from {db}");
        }
        assert!(
            out.contains("shop/cache: cannot read /x: permission denied"),
            "{out}"
        );
        assert!(out.contains("Etcd:         not asked for"), "{out}");
    }
}
