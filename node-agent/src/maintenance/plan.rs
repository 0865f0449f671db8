//! What one maintenance pass does, decided without I/O: which schedules' retention to apply,
//! to which PVCs' snapshots, whether a cluster schedule's runs are settled enough for it, and
//! whether to prune.

use std::time::Duration;

use engine::format::snapshot::Snapshot;
use engine::id::SnapshotId;
use engine::retention::RetentionPolicy;
use kube::ResourceExt;

use crate::crd::{BackupSchedule, ClusterBackup, Phase};

/// What a schedule's retention is applied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A volume schedule: to each of these PVCs' snapshots (by the name a volume is stored
    /// as, `/<pvc>`), one PVC at a time, as the agent does after each backup. The engine
    /// groups Kubernetes snapshots by cluster, namespace and PVC, so two namespaces' `db`
    /// are still decided apart.
    Volumes(Vec<String>),
    /// A cluster schedule: to its whole cluster backups at once (the engine decides a
    /// series' cluster backups as units).
    ClusterRuns,
}

/// One schedule's retention work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleWork {
    /// The schedule's name.
    pub schedule: String,
    /// Its uid, for the Events about it.
    pub uid: Option<String>,
    /// The tag its snapshots carry: `schedule:<name>`.
    pub tag: String,
    /// Its retention.
    pub policy: RetentionPolicy,
    /// What the retention is applied to.
    pub scope: Scope,
}

/// The retention work of a pass: every schedule with a retention that made a snapshot.
/// Paused schedules are left alone: a pause is the moment an operator wants nothing to
/// change, deletions least of all.
pub fn plan(
    schedules: &[BackupSchedule],
    snapshots: &[(SnapshotId, Snapshot)],
) -> Vec<ScheduleWork> {
    let mut out = Vec::new();
    for s in schedules.iter().filter(|s| !s.spec.paused) {
        let Some(policy) = s.spec.retention.as_ref().map(|r| r.policy()) else {
            continue;
        };
        if policy.is_empty() {
            continue;
        }
        let name = s.name_any();
        let tag = format!("schedule:{name}");
        let mine = snapshots
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.tags.contains(&tag));
        let scope = if s.spec.etcd.is_some() || s.spec.manifests.is_some() {
            if mine.clone().all(|s| s.group.is_none()) {
                continue;
            }
            Scope::ClusterRuns
        } else {
            let mut pvcs: Vec<String> = mine
                .filter(|s| s.group.is_none() && s.source.pvc.is_some())
                .filter_map(|s| match s.paths.as_slice() {
                    [one] => one.strip_prefix('/').map(String::from),
                    _ => None,
                })
                .collect();
            pvcs.sort();
            pvcs.dedup();
            if pvcs.is_empty() {
                continue;
            }
            Scope::Volumes(pvcs)
        };
        out.push(ScheduleWork {
            schedule: name,
            uid: s.uid(),
            tag,
            policy,
            scope,
        });
    }
    out
}

/// Whether a cluster schedule's retention may run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runs {
    /// Its newest run completed in full, or no run exists any more.
    Settled,
    /// Its newest run (named) is still going or did not complete in full: a run whose
    /// database volume failed must not push out the last run that holds it, so retention
    /// waits for the next complete run, exactly as the agent applies it only after one.
    Waiting(String, Phase),
}

/// Decides [`Runs`] from the ClusterBackups a schedule created.
pub fn cluster_runs(runs: &[ClusterBackup]) -> Runs {
    let newest = runs.iter().max_by(|a, b| {
        let at = |c: &ClusterBackup| c.metadata.creation_timestamp.clone().map(|t| t.0);
        // Run names end in the run's time (YYYYMMDDHHMM): they break a tie within a second.
        (at(a), a.name_any()).cmp(&(at(b), b.name_any()))
    });
    match newest {
        None => Runs::Settled,
        Some(cb) => {
            let phase = cb.status.as_ref().map(|s| s.phase).unwrap_or_default();
            if phase == Phase::Completed {
                Runs::Settled
            } else {
                Runs::Waiting(cb.name_any(), phase)
            }
        }
    }
}

/// When to prune.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneClock {
    /// Time since the last prune of this process (none yet: it cannot know what a previous
    /// instance left, so the first pass prunes).
    pub since_last: Option<Duration>,
    /// The last prune left deletions waiting for writers that were running then.
    pub pending: bool,
}

/// Prune after a pass that forgot something (that is when there is space to free), after one
/// whose sweep still waits for running backups (the next prune finishes it), and otherwise
/// every `interval`, for what interrupted backups of append-only agents leave behind.
pub fn prune_due(clock: PruneClock, forgotten: usize, interval: Duration) -> bool {
    forgotten > 0 || clock.pending || clock.since_last.is_none_or(|d| d >= interval)
}

/// Check when this process has not yet (it cannot know when a previous one did), and then
/// every `interval`.
pub fn check_due(since_last: Option<Duration>, interval: Duration) -> bool {
    since_last.is_none_or(|d| d >= interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{BackupScheduleSpec, ClusterBackupSpec, ClusterBackupStatus, Retention};
    use engine::format::snapshot::{Group, Source};

    fn schedule(name: &str, retention: Option<Retention>, cluster: bool) -> BackupSchedule {
        let mut spec: BackupScheduleSpec = serde_json::from_value(serde_json::json!({
            "schedule": "0 2 * * *"
        }))
        .unwrap();
        spec.retention = retention;
        if cluster {
            spec.etcd = Some(serde_json::from_value(serde_json::json!({"endpoints": []})).unwrap());
        }
        let mut s = BackupSchedule::new(name, spec);
        s.metadata.uid = Some(format!("uid-{name}"));
        s
    }

    fn keep_last(n: u32) -> Option<Retention> {
        Some(Retention {
            keep_last: n,
            ..Default::default()
        })
    }

    fn snap(
        tags: &[&str],
        path: &str,
        pvc: Option<&str>,
        group: Option<&str>,
    ) -> (SnapshotId, Snapshot) {
        let mut s: Snapshot = serde_json::from_value(serde_json::json!({
            "time": "2026-01-01T00:00:00Z", "host": "node-a", "username": "root",
            "paths": [path], "tree": "00".repeat(32)
        }))
        .unwrap_or_else(|e| panic!("a test snapshot: {e}"));
        s.tags = tags.iter().map(|t| t.to_string()).collect();
        s.source = Source {
            pvc: pvc.map(String::from),
            namespace: pvc.map(|_| "shop".to_string()),
            ..Default::default()
        };
        s.group = group.map(|g| Group {
            id: g.to_string(),
            series: "nightly".to_string(),
        });
        (SnapshotId::default(), s)
    }

    #[test]
    fn a_volume_schedule_applies_its_retention_to_each_pvc_it_backed_up_once() {
        let schedules = [schedule("nightly", keep_last(1), false)];
        let snaps = [
            snap(&["schedule:nightly"], "/db", Some("db"), None),
            snap(&["schedule:nightly"], "/logs", Some("logs"), None),
            snap(&["schedule:nightly"], "/db", Some("db"), None),
            // A manual backup, and another schedule's: not this schedule's to decide.
            snap(&[], "/cache", Some("cache"), None),
            snap(&["schedule:hourly"], "/tmp", Some("tmp"), None),
        ];
        let work = plan(&schedules, &snaps);
        assert_eq!(work.len(), 1);
        assert_eq!(work[0].schedule, "nightly");
        assert_eq!(work[0].tag, "schedule:nightly");
        assert_eq!(work[0].uid.as_deref(), Some("uid-nightly"));
        assert_eq!(work[0].policy.last, 1);
        assert_eq!(
            work[0].scope,
            Scope::Volumes(vec!["db".into(), "logs".into()])
        );
    }

    #[test]
    fn schedules_without_retention_paused_or_without_snapshots_are_left_alone() {
        let mut paused = schedule("paused", keep_last(1), false);
        paused.spec.paused = true;
        let schedules = [
            schedule("none", None, false),
            schedule("empty", Some(Retention::default()), false),
            paused,
            schedule("fresh", keep_last(1), false),
        ];
        let snaps = [
            snap(&["schedule:none"], "/a", Some("a"), None),
            snap(&["schedule:empty"], "/b", Some("b"), None),
            snap(&["schedule:paused"], "/c", Some("c"), None),
        ];
        assert_eq!(plan(&schedules, &snaps), vec![]);
    }

    #[test]
    fn a_cluster_schedule_decides_whole_runs_and_a_volume_schedule_ignores_grouped_snapshots() {
        let schedules = [
            schedule("cluster", keep_last(2), true),
            schedule("switched", keep_last(2), false),
        ];
        let snaps = [
            snap(
                &["schedule:cluster"],
                "/etcd-snapshot.db",
                None,
                Some("cluster-1"),
            ),
            snap(&["schedule:cluster"], "/db", Some("db"), Some("cluster-1")),
            // A schedule that once made cluster backups and now makes VolumeBackups.
            snap(
                &["schedule:switched"],
                "/db",
                Some("db"),
                Some("switched-1"),
            ),
            snap(&["schedule:switched"], "/etcd-snapshot.db", None, None),
        ];
        let work = plan(&schedules, &snaps);
        assert_eq!(work.len(), 1, "{work:?}");
        assert_eq!(work[0].schedule, "cluster");
        assert_eq!(work[0].scope, Scope::ClusterRuns);
    }

    fn run(name: &str, secs: i64, phase: Option<Phase>) -> ClusterBackup {
        let spec: ClusterBackupSpec = serde_json::from_value(serde_json::json!({})).unwrap();
        let mut cb = ClusterBackup::new(name, spec);
        let t = k8s_openapi::jiff::Timestamp::from_second(secs).unwrap();
        cb.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t));
        cb.status = phase.map(|phase| ClusterBackupStatus {
            phase,
            ..Default::default()
        });
        cb
    }

    #[test]
    fn cluster_retention_waits_until_the_newest_run_completed_in_full() {
        assert_eq!(cluster_runs(&[]), Runs::Settled);
        let done = run("c-202601010200", 100, Some(Phase::Completed));
        assert_eq!(cluster_runs(std::slice::from_ref(&done)), Runs::Settled);
        for phase in [
            None,
            Some(Phase::InProgress),
            Some(Phase::PartiallyFailed),
            Some(Phase::Failed),
        ] {
            let newer = run("c-202601020200", 200, phase);
            assert_eq!(
                cluster_runs(&[newer, done.clone()]),
                Runs::Waiting("c-202601020200".into(), phase.unwrap_or_default())
            );
        }
        let older_partial = run("c-202512310200", 50, Some(Phase::PartiallyFailed));
        assert_eq!(cluster_runs(&[older_partial, done.clone()]), Runs::Settled);
        // Created in the same second: the name's time decides.
        let same_second = run("c-202601010300", 100, Some(Phase::InProgress));
        assert!(matches!(
            cluster_runs(&[done, same_second]),
            Runs::Waiting(..)
        ));
    }

    #[test]
    fn prune_follows_a_forget_a_pending_sweep_or_the_interval() {
        let day = Duration::from_secs(86_400);
        let fresh = PruneClock {
            since_last: Some(Duration::from_secs(60)),
            pending: false,
        };
        assert!(
            prune_due(PruneClock::default(), 0, day),
            "the first pass prunes"
        );
        assert!(!prune_due(fresh, 0, day));
        assert!(prune_due(fresh, 1, day));
        assert!(prune_due(
            PruneClock {
                pending: true,
                ..fresh
            },
            0,
            day
        ));
        assert!(prune_due(
            PruneClock {
                since_last: Some(day),
                pending: false
            },
            0,
            day
        ));
    }

    #[test]
    fn a_check_comes_at_the_first_pass_then_every_interval() {
        let day = Duration::from_secs(86_400);
        assert!(check_due(None, day), "the first pass checks");
        assert!(!check_due(Some(Duration::from_secs(60)), day));
        assert!(check_due(Some(day), day));
    }
}
