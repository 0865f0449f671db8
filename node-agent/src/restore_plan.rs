//! The plan of a [`NamespaceRestore`](crate::crd::NamespaceRestore), as pure data: which cluster
//! backup, which objects before the volumes and which after, which PVC gets which snapshot.
//! Computed from the repository's snapshots and manifests; carried out by
//! [`crate::reconcile::namespace_restore`]. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use engine::format::snapshot::{Snapshot, SourceKind};
use engine::manifests::normalize::group_kind;
use engine::manifests::order::{Selection, rank, select_and_order};
use serde_json::Value;

use crate::crd::NamespaceRestoreSpec;

/// True for the kinds restored before any volume is filled: what a workload reads when it
/// starts (definitions, namespaces, classes, cluster RBAC, quotas, ServiceAccounts, Secrets,
/// ConfigMaps, PVCs, Roles and RoleBindings: the apply order up to RoleBinding). Everything
/// else (Services, workloads, custom resources, webhooks) comes after the volumes.
fn is_configuration(group: &str, kind: &str) -> bool {
    rank(group, kind) <= rank("rbac.authorization.k8s.io", "RoleBinding")
}

/// A cluster backup as the repository holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupGroup {
    /// Its id: the ClusterBackup's name.
    pub id: String,
    /// The series.
    pub series: String,
    /// When its newest snapshot was taken (RFC 3339).
    pub time: String,
    /// The manifests snapshot, if one was taken.
    pub manifests: Option<String>,
    /// The etcd snapshot, if one was taken.
    pub etcd: Option<String>,
    /// The images snapshot, if one was taken.
    pub images: Option<String>,
    /// The volume snapshots.
    pub volumes: Vec<VolumeSnapshot>,
    /// Some snapshot of it is marked incomplete (files unreadable while read).
    pub incomplete: bool,
}

/// One volume snapshot of a cluster backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSnapshot {
    /// The snapshot id (full hex).
    pub id: String,
    /// Where the PVC was.
    pub namespace: String,
    pub pvc: String,
    /// When it was taken.
    pub time: String,
}

/// Groups the snapshots by cluster backup, newest last.
pub fn groups(snapshots: &[(String, Snapshot)]) -> Vec<BackupGroup> {
    let mut by_id: BTreeMap<String, BackupGroup> = BTreeMap::new();
    for (id, snap) in snapshots {
        let Some(group) = &snap.group else { continue };
        let g = by_id
            .entry(group.id.clone())
            .or_insert_with(|| BackupGroup {
                id: group.id.clone(),
                series: group.series.clone(),
                time: String::new(),
                manifests: None,
                etcd: None,
                images: None,
                volumes: Vec::new(),
                incomplete: false,
            });
        g.time = g.time.clone().max(snap.time.clone());
        g.incomplete |= snap.incomplete;
        let source = &snap.source;
        match source.kind {
            SourceKind::Manifests => g.manifests = Some(id.clone()),
            SourceKind::Etcd => g.etcd = Some(id.clone()),
            SourceKind::Images => g.images = Some(id.clone()),
            SourceKind::Filesystem | SourceKind::BlockDevice => {
                if let (Some(ns), Some(pvc)) = (&source.namespace, &source.pvc) {
                    let volume = VolumeSnapshot {
                        id: id.clone(),
                        namespace: ns.clone(),
                        pvc: pvc.clone(),
                        time: snap.time.clone(),
                    };
                    // A volume backed up twice in one group (a retried job): the newest wins.
                    let same = |v: &&mut VolumeSnapshot| &v.namespace == ns && &v.pvc == pvc;
                    match g.volumes.iter_mut().find(same) {
                        Some(old) if old.time >= volume.time => {}
                        Some(old) => *old = volume,
                        None => g.volumes.push(volume),
                    }
                }
            }
            SourceKind::Stdin => {}
        }
    }
    let mut out: Vec<BackupGroup> = by_id.into_values().collect();
    out.sort_by(|a, b| (&a.time, &a.id).cmp(&(&b.time, &b.id)));
    out
}

/// The cluster backup `spec` names: by id, or the newest complete one of its series. A group
/// counts as complete when it has manifests, no snapshot of it is incomplete, and its
/// ClusterBackup object, if the cluster still has one, is not known to have failed
/// (`not_complete` holds the names of those that did not complete).
pub fn choose<'a>(
    groups: &'a [BackupGroup],
    spec: &NamespaceRestoreSpec,
    not_complete: &BTreeSet<String>,
) -> Result<&'a BackupGroup, String> {
    let found = match (&spec.cluster_backup, &spec.series) {
        (Some(id), None) => groups
            .iter()
            .find(|g| &g.id == id)
            .ok_or_else(|| format!("the repository holds no cluster backup {id:?}"))?,
        (None, Some(series)) => groups
            .iter()
            .rev()
            .filter(|g| &g.series == series || (g.series.is_empty() && &g.id == series))
            .find(|g| g.manifests.is_some() && !g.incomplete && !not_complete.contains(&g.id))
            .ok_or_else(|| {
                format!("the repository holds no complete cluster backup of series {series:?}")
            })?,
        _ => return Err("set exactly one of clusterBackup and series".into()),
    };
    if found.manifests.is_none() {
        return Err(format!(
            "cluster backup {:?} has no manifests snapshot: nothing to restore objects from \
             (restore its volumes one by one with VolumeRestores)",
            found.id
        ));
    }
    Ok(found)
}

/// What a namespace restore does, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Applied first: definitions, namespaces, configuration, RBAC and PVCs.
    pub configuration: Vec<Value>,
    /// Then each PVC filled from its snapshot.
    pub volumes: Vec<PlannedVolume>,
    /// Applied once every volume is done: workloads, services, custom resources, the rest.
    pub workloads: Vec<Value>,
    /// What was left out by rule, and why.
    pub left_out: Vec<String>,
}

/// One PVC to fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedVolume {
    /// The PVC's namespace in the backup.
    pub source_namespace: String,
    /// Its namespace now (after mapping).
    pub namespace: String,
    pub pvc: String,
    /// The snapshot id.
    pub snapshot: String,
}

/// The plan for `spec`, from the backup's objects and volume snapshots.
pub fn plan(objects: Vec<Value>, group: &BackupGroup, spec: &NamespaceRestoreSpec) -> Plan {
    let selection = Selection {
        namespaces: spec.namespaces.clone(),
        kinds: spec.include_kinds.clone(),
        exclude_secrets: spec.exclude_secrets,
        namespace_map: spec.namespace_mapping.clone(),
    };
    let mut out = Plan::default();
    let mut pvcs = BTreeSet::new();
    for obj in select_and_order(objects, &selection) {
        let (group_name, kind) = group_kind(&obj);
        if kind_listed(&spec.exclude_kinds, &group_name, &kind) {
            continue;
        }
        if group_name.is_empty() && kind == "PersistentVolume" {
            out.left_out.push(format!(
                "PersistentVolume {}: a restore provisions new volumes for its PVCs",
                obj["metadata"]["name"].as_str().unwrap_or_default()
            ));
            continue;
        }
        if group_name.is_empty() && kind == "Pod" {
            // A controller's pods are not in a backup (their controller recreates them); a bare
            // pod would be refused: deploy/admission.yaml lets the agents create mount pods only.
            out.left_out.push(format!(
                "Pod {}/{}: bare pods are not restored by the agents; apply it with \
                 `repo manifests --kind Pod`",
                obj["metadata"]["namespace"].as_str().unwrap_or_default(),
                obj["metadata"]["name"].as_str().unwrap_or_default()
            ));
            continue;
        }
        if group_name.is_empty() && kind == "PersistentVolumeClaim" {
            pvcs.insert(namespaced_name(&obj));
        }
        if is_configuration(&group_name, &kind) {
            out.configuration.push(obj);
        } else {
            out.workloads.push(obj);
        }
    }
    if !spec.volumes {
        return out;
    }
    for v in &group.volumes {
        let namespace = spec
            .namespace_mapping
            .get(&v.namespace)
            .cloned()
            .unwrap_or_else(|| v.namespace.clone());
        if !spec.namespaces.is_empty() && !spec.namespaces.contains(&v.namespace) {
            continue;
        }
        if !pvcs.contains(&(namespace.clone(), v.pvc.clone())) {
            out.left_out.push(format!(
                "volume {}/{}: its PVC is not among the objects restored",
                v.namespace, v.pvc
            ));
            continue;
        }
        out.volumes.push(PlannedVolume {
            source_namespace: v.namespace.clone(),
            namespace,
            pvc: v.pvc.clone(),
            snapshot: v.id.clone(),
        });
    }
    out
}

fn namespaced_name(obj: &Value) -> (String, String) {
    let meta = &obj["metadata"];
    let field = |f: &str| meta[f].as_str().unwrap_or_default().to_string();
    (field("namespace"), field("name"))
}

/// True when `kind` of `group` is in `listed` (`Kind`, or `kind.group`, case-insensitive).
fn kind_listed(listed: &[String], group: &str, kind: &str) -> bool {
    listed.iter().any(|w| {
        let (w, kind) = (w.to_ascii_lowercase(), kind.to_ascii_lowercase());
        w == kind || (!group.is_empty() && w == format!("{kind}.{group}"))
    })
}

#[cfg(test)]
#[path = "restore_plan_tests.rs"]
mod tests;
