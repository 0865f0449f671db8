//! The rules of a ClusterBackup, with no I/O: who takes a part, how the volumes are counted,
//! and when and how the whole settles.
//!
//! - Volumes: each agent creates a VolumeBackup (marked with the group) for each selected PVC
//!   its node's pods mount; those run like any other.
//! - etcd: one agent claims the part with a conditional status write (resourceVersion), on a
//!   control-plane node unless told otherwise, and streams a snapshot into the repository.
//! - Manifests: one agent claims the part the same way, exports the resources through API
//!   discovery and stores them.
//! - Any agent settles the whole once every part is final: `Completed` when all succeeded,
//!   `PartiallyFailed` when some did, `Failed` when none did.
//!
//! A part claimed by an agent that then died is taken over by the next instance on the same
//! node (there is one agent per node, so the old one is gone).

use kube::ResourceExt;

use crate::crd::{
    ClusterBackup, ClusterBackupStatus, GroupRef, PartStatus, Phase, VolumeBackup, VolumesStatus,
};

/// The node label kubeadm (and most installers) put on control-plane nodes.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// Which part of a cluster backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The etcd snapshot.
    Etcd,
    /// The resource manifests.
    Manifests,
    /// The container images.
    Images,
}

impl Part {
    /// The part's field in the status.
    pub fn field(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::Manifests => "manifests",
            Self::Images => "images",
        }
    }
}

/// The group a cluster backup's snapshots record.
pub fn group_of(cb: &ClusterBackup) -> GroupRef {
    let id = cb.name_any();
    let series = if cb.spec.series.is_empty() {
        id.clone()
    } else {
        cb.spec.series.clone()
    };
    GroupRef { id, series }
}

/// Counts the VolumeBackups of cluster backup `name`; true with them when every one is final.
pub fn count_volumes(name: &str, backups: &[VolumeBackup]) -> (VolumesStatus, bool) {
    let mut volumes = VolumesStatus::default();
    let mut all_final = true;
    for vb in backups {
        if vb.spec.cluster_backup.as_ref().is_none_or(|g| g.id != name) {
            continue;
        }
        volumes.total += 1;
        match vb.status.as_ref().map_or(Phase::New, |s| s.phase) {
            Phase::Completed => volumes.completed += 1,
            p if p.is_final() => volumes.failed += 1,
            _ => all_final = false,
        }
    }
    (volumes, all_final)
}

/// True when this agent should take `part` now: nobody has; or a previous agent of this same
/// node did and is gone; or this agent did, and its job is no longer running (its final
/// status write was lost).
pub fn should_claim(
    part: Option<&PartStatus>,
    node: &str,
    instance: &str,
    running_here: bool,
) -> bool {
    match part {
        None => true,
        Some(p) if p.phase == Phase::New => true,
        Some(p) if p.phase == Phase::InProgress => {
            p.node.as_deref() == Some(node)
                && (p.agent.as_deref() != Some(instance) || !running_here)
        }
        Some(_) => false,
    }
}

/// The phase of the whole, once every part asked for is final; `None` while one is not.
pub fn settled_phase(
    status: &ClusterBackupStatus,
    wants_etcd: bool,
    wants_manifests: bool,
    wants_images: bool,
    volumes_settled: bool,
) -> Option<Phase> {
    let part = |p: &Option<PartStatus>| p.as_ref().map_or(Phase::New, |p| p.phase);
    let mut outcomes = Vec::new();
    if wants_etcd {
        outcomes.push(part(&status.etcd));
    }
    if wants_manifests {
        outcomes.push(part(&status.manifests));
    }
    if wants_images {
        outcomes.push(part(&status.images));
    }
    if !volumes_settled || outcomes.iter().any(|p| !p.is_final()) {
        return None;
    }
    let v = &status.volumes;
    if v.total > 0 {
        outcomes.push(if v.failed == 0 {
            Phase::Completed
        } else if v.completed > 0 {
            Phase::PartiallyFailed
        } else {
            Phase::Failed
        });
    }
    let ok = outcomes.iter().filter(|p| **p == Phase::Completed).count();
    let bad = outcomes
        .iter()
        .filter(|p| matches!(p, Phase::Failed | Phase::Canceled))
        .count();
    Some(if ok == outcomes.len() {
        Phase::Completed
    } else if bad == outcomes.len() {
        Phase::Failed
    } else {
        Phase::PartiallyFailed
    })
}

/// Why the etcd part failed when no agent could take it.
pub const NO_ETCD_AGENT: &str = "no agent took the etcd snapshot: none runs on a node labelled \
    node-role.kubernetes.io/control-plane (set etcd.controlPlaneOnly: false if etcd is \
    reachable from other nodes)";

/// How long the etcd part may wait for an agent that can take it: ten resyncs, at least
/// five minutes (agents restart, nodes join).
pub fn unclaimed_limit(grace: chrono::Duration) -> chrono::Duration {
    (grace * 10 / 3).max(chrono::Duration::minutes(5))
}

/// When the resource was created (now, if the server did not say).
pub fn created_at(cb: &ClusterBackup) -> chrono::DateTime<chrono::Utc> {
    cb.metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.0.as_second(), 0))
        .unwrap_or_else(chrono::Utc::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(phase: Phase) -> Option<PartStatus> {
        Some(PartStatus {
            phase,
            ..Default::default()
        })
    }

    #[test]
    fn the_whole_settles_only_when_every_part_asked_for_is_final() {
        let mut st = ClusterBackupStatus {
            etcd: part(Phase::Completed),
            manifests: part(Phase::InProgress),
            volumes: VolumesStatus {
                total: 2,
                completed: 2,
                failed: 0,
            },
            ..Default::default()
        };
        assert_eq!(settled_phase(&st, true, true, false, true), None);
        assert_eq!(
            settled_phase(&st, true, false, false, true),
            Some(Phase::Completed)
        );
        assert_eq!(settled_phase(&st, true, false, false, false), None);
        st.manifests = part(Phase::Failed);
        assert_eq!(
            settled_phase(&st, true, true, false, true),
            Some(Phase::PartiallyFailed)
        );
        st.etcd = part(Phase::Failed);
        st.volumes = VolumesStatus {
            total: 1,
            completed: 0,
            failed: 1,
        };
        assert_eq!(
            settled_phase(&st, true, true, false, true),
            Some(Phase::Failed)
        );
        // Asked for etcd, nobody has taken it yet.
        let fresh = ClusterBackupStatus::default();
        assert_eq!(settled_phase(&fresh, true, false, false, true), None);
    }

    #[test]
    fn an_etcd_part_nobody_can_take_fails_after_ten_resyncs_or_five_minutes() {
        let grace = |s| chrono::Duration::seconds(s);
        assert_eq!(unclaimed_limit(grace(30)), chrono::Duration::minutes(5));
        assert_eq!(unclaimed_limit(grace(180)), chrono::Duration::minutes(10));
    }

    #[test]
    fn a_part_is_claimed_when_free_or_left_by_this_nodes_previous_agent() {
        let mine = |agent: &str| {
            Some(PartStatus {
                phase: Phase::InProgress,
                node: Some("n1".into()),
                agent: Some(agent.into()),
                ..Default::default()
            })
        };
        assert!(should_claim(None, "n1", "a2", false));
        assert!(should_claim(mine("a1").as_ref(), "n1", "a2", false));
        assert!(!should_claim(mine("a2").as_ref(), "n1", "a2", true));
        // This agent's own job ended without its final write: run it again.
        assert!(should_claim(mine("a2").as_ref(), "n1", "a2", false));
        assert!(!should_claim(mine("a1").as_ref(), "n2", "b1", false));
        assert!(!should_claim(
            part(Phase::Completed).as_ref(),
            "n1",
            "a2",
            false
        ));
    }
}
