//! What the cluster should show of the repository, as pure data: a ClusterBackup for each
//! cluster backup the repository holds, a VolumeBackup for each volume snapshot taken outside
//! one (in its namespace when this cluster took it and the namespace exists; another cluster's
//! in the agents' namespace, since a namespace of the same name here may be another
//! tenant's), marked as synced; and the synced objects
//! whose snapshots are gone. Carried out by [`crate::reconcile::repo_sync`]. No I/O.
//!
//! This is how disaster recovery starts: a new cluster pointed at the bucket lists what can
//! be restored. A synced object is a view: the agents never act on it, its TTL does not
//! apply, and deleting it deletes no data (the next sync shows it again while the repository
//! holds its snapshots; retention is what forgets them).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::crd::{
    ClusterBackup, ClusterBackupSpec, ClusterBackupStatus, PartStatus, Phase, VolumeBackup,
    VolumeBackupSpec, VolumeBackupStatus, VolumesStatus,
};
use crate::restore_plan::BackupGroup;

/// The label on every object synced from the repository (its value: `"true"`).
pub const SYNCED_LABEL: &str = "kairn.dev/synced-from-repository";

/// The annotation on a synced VolumeBackup naming the cluster its snapshot was taken in.
pub const SOURCE_CLUSTER: &str = "kairn.dev/source-cluster";

/// The annotation on a synced VolumeBackup naming the namespace its PVC was in.
pub const SOURCE_NAMESPACE: &str = "kairn.dev/source-namespace";

/// True for an object synced from the repository.
pub fn is_synced(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(SYNCED_LABEL))
        .is_some_and(|v| v == "true")
}

/// A volume snapshot taken outside any cluster backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoneVolume {
    /// The snapshot id (full hex).
    pub id: String,
    /// The cluster it was taken in, when recorded.
    pub cluster: Option<String>,
    pub namespace: String,
    pub pvc: String,
    /// When it was taken (RFC 3339).
    pub time: String,
    /// Some files could not be read.
    pub incomplete: bool,
}

/// What a sync creates and deletes.
#[derive(Debug, Default)]
pub struct SyncPlan {
    /// To create, each with the status to write after.
    pub cluster_backups: Vec<ClusterBackup>,
    pub volume_backups: Vec<VolumeBackup>,
    /// Synced objects whose snapshots are gone: (namespace, name), the namespace empty for
    /// ClusterBackups.
    pub stale: Vec<(String, String)>,
}

/// What the sync needs to know of an existing ClusterBackup or VolumeBackup: read page by
/// page and kept in this form, a few dozen bytes each, not as whole objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// Empty for a ClusterBackup.
    pub namespace: String,
    pub name: String,
    /// Synced from the repository.
    pub synced: bool,
    /// Finished.
    pub finished: bool,
    /// A VolumeBackup's PVC and snapshot.
    pub pvc: String,
    pub snapshot: Option<String>,
}

impl Existing {
    /// A ClusterBackup, as the sync sees it.
    pub fn cluster_backup(cb: &ClusterBackup) -> Self {
        Self {
            namespace: String::new(),
            name: cb.name_any(),
            synced: is_synced(&cb.metadata),
            finished: cb.status.as_ref().is_some_and(|s| s.phase.is_final()),
            pvc: String::new(),
            snapshot: None,
        }
    }

    /// A VolumeBackup, as the sync sees it.
    pub fn volume_backup(vb: &VolumeBackup) -> Self {
        let status = vb.status.as_ref();
        Self {
            namespace: vb.namespace().unwrap_or_default(),
            name: vb.name_any(),
            synced: is_synced(&vb.metadata),
            finished: status.is_some_and(|s| s.phase.is_final()),
            pvc: vb.spec.pvc.clone(),
            snapshot: status.and_then(|s| s.snapshot_id.clone()),
        }
    }
}

/// What the cluster has now.
#[derive(Debug, Clone, Copy)]
pub struct InCluster<'a> {
    pub cluster_backups: &'a [Existing],
    pub volume_backups: &'a [Existing],
    pub namespaces: &'a BTreeSet<String>,
    /// This cluster's name (`KAIRN_CLUSTER`).
    pub cluster: Option<&'a str>,
    /// The agents' namespace, where another cluster's volume backups are shown.
    pub admin_namespace: &'a str,
}

/// What the cluster lacks or holds too much of, given the repository's `groups` and `lone`
/// volume snapshots taken after `since` (older ones are shown no longer, as a finished
/// object is deleted after its TTL), and what the cluster has.
pub fn plan(
    groups: &[BackupGroup],
    lone: &[LoneVolume],
    have: InCluster<'_>,
    since: DateTime<Utc>,
) -> SyncPlan {
    let recent = |time: &str| DateTime::parse_from_rfc3339(time).is_ok_and(|t| t >= since);
    let groups: Vec<&BackupGroup> = groups.iter().filter(|g| recent(&g.time)).collect();
    let lone: Vec<&LoneVolume> = lone.iter().filter(|v| recent(&v.time)).collect();
    let (cluster_backups, volume_backups) = (have.cluster_backups, have.volume_backups);
    let mut out = SyncPlan::default();
    let present: BTreeSet<&str> = cluster_backups.iter().map(|cb| cb.name.as_str()).collect();
    for g in &groups {
        if !present.contains(g.id.as_str()) && is_object_name(&g.id) {
            out.cluster_backups.push(cluster_backup(g));
        }
    }
    let ids: BTreeSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    for cb in cluster_backups {
        if cb.synced && !ids.contains(cb.name.as_str()) {
            out.stale.push((String::new(), cb.name.clone()));
        }
    }
    let recorded: BTreeSet<&str> = volume_backups
        .iter()
        .filter_map(|vb| vb.snapshot.as_deref())
        .collect();
    // A backup running now may have written its snapshot and not yet its status.
    let busy: BTreeSet<(&str, &str)> = volume_backups
        .iter()
        .filter(|vb| !vb.finished)
        .map(|vb| (vb.namespace.as_str(), vb.pvc.as_str()))
        .collect();
    for v in &lone {
        // Another cluster's namespace of the same name may belong to another tenant: its
        // backups are shown to the administrators only.
        let own = v.cluster.as_deref() == have.cluster;
        let shown_in = if own {
            &v.namespace
        } else {
            have.admin_namespace
        };
        let running = busy.contains(&(v.namespace.as_str(), v.pvc.as_str()));
        if !recorded.contains(v.id.as_str()) && have.namespaces.contains(shown_in) && !running {
            out.volume_backups
                .push(volume_backup(v, (!own).then_some(shown_in)));
        }
    }
    let held: BTreeSet<&str> = lone.iter().map(|v| v.id.as_str()).collect();
    for vb in volume_backups {
        if vb.synced && vb.snapshot.as_deref().is_none_or(|id| !held.contains(id)) {
            out.stale.push((vb.namespace.clone(), vb.name.clone()));
        }
    }
    out
}

/// A DNS subdomain name (RFC 1123), as Kubernetes requires of object names: the agents name
/// groups after their ClusterBackups, but `repo backup --group` accepts more.
fn is_object_name(name: &str) -> bool {
    let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.';
    let ends_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    name.len() <= 253
        && name.bytes().all(ok)
        && ends_ok(name.as_bytes().first())
        && ends_ok(name.as_bytes().last())
}

fn synced_meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(String::from),
        labels: Some([(SYNCED_LABEL.to_string(), "true".to_string())].into()),
        ..Default::default()
    }
}

fn cluster_backup(g: &BackupGroup) -> ClusterBackup {
    let spec = ClusterBackupSpec {
        series: g.series.clone(),
        volumes: false,
        namespace_selector: None,
        pvc_selector: None,
        hooks: None,
        etcd: None,
        manifests: None,
        images: g.images.as_ref().map(|_| Default::default()),
        tags: Vec::new(),
        ttl: None,
    };
    let part = |id: &Option<String>| {
        id.as_ref().map(|id| PartStatus {
            phase: Phase::Completed,
            snapshot_id: Some(id.clone()),
            ..Default::default()
        })
    };
    let volumes = g.volumes.len() as u32;
    let status = ClusterBackupStatus {
        phase: if g.incomplete {
            Phase::PartiallyFailed
        } else {
            Phase::Completed
        },
        volumes: VolumesStatus {
            total: volumes,
            completed: volumes,
            failed: 0,
        },
        etcd: part(&g.etcd),
        manifests: part(&g.manifests),
        images: part(&g.images),
        started: Some(g.time.clone()),
        finished: Some(g.time.clone()),
    };
    let mut cb = ClusterBackup::new(&g.id, spec);
    cb.metadata = synced_meta(&g.id, None);
    cb.status = Some(status);
    cb
}

/// The synced VolumeBackup of `v`: in its own namespace, or in `admin_namespace` (another
/// cluster's), named after its namespace too.
fn volume_backup(v: &LoneVolume, admin_namespace: Option<&str>) -> VolumeBackup {
    let volume = match admin_namespace {
        Some(_) => format!("{}-{}", v.namespace, v.pvc),
        None => v.pvc.clone(),
    };
    let name = format!(
        "{}-{}",
        truncated(&volume, 253 - 9),
        &v.id[..8.min(v.id.len())]
    );
    let spec = VolumeBackupSpec {
        pvc: v.pvc.clone(),
        tags: Vec::new(),
        hooks: None,
        cancel: false,
        cluster_backup: None,
        ttl: None,
    };
    let mut vb = VolumeBackup::new(&name, spec);
    vb.metadata = synced_meta(&name, Some(admin_namespace.unwrap_or(&v.namespace)));
    let mut annotations = std::collections::BTreeMap::new();
    if let Some(cluster) = &v.cluster {
        annotations.insert(SOURCE_CLUSTER.to_string(), cluster.clone());
    }
    annotations.insert(SOURCE_NAMESPACE.to_string(), v.namespace.clone());
    vb.metadata.annotations = Some(annotations);
    vb.status = Some(VolumeBackupStatus {
        phase: if v.incomplete {
            Phase::PartiallyFailed
        } else {
            Phase::Completed
        },
        snapshot_id: Some(v.id.clone()),
        started: Some(v.time.clone()),
        finished: Some(v.time.clone()),
        ..Default::default()
    });
    vb
}

fn truncated(s: &str, max: usize) -> &str {
    &s[..s.len().min(max)]
}

#[cfg(test)]
#[path = "repo_sync_tests.rs"]
mod tests;
