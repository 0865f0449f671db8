//! Prometheus metrics, per PVC and per agent, in the OpenMetrics text format (and the classic
//! text format for clients that do not ask for it, see [`crate::exposition`]).
//!
//! Every agent exports what it does itself: its queue, its jobs, and the per-PVC figures of the
//! backups it ran. The leading agent ([`crate::context::Context::leads`]) also exports, for the
//! whole cluster, what it reads from the API and the repository at its first pass and then
//! every history interval ([`crate::reconcile::volume_series`]): each PVC's last success
//! recomputed from the repository (so a restart loses nothing), a series for every PVC a
//! schedule selects (so a volume never backed up is seen), and the repository's size. One
//! agent, not each, so that a cluster of N nodes does not export N copies; an agent that stops
//! leading drops those series. A PVC's last success may still be exported by the agent that
//! ran its backup too: rules aggregate with `max by (namespace, pvc)`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::exposition::{OptionalGauge, ProcessCollector};

/// A PVC's labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PvcLabels {
    /// The PVC's namespace.
    pub namespace: String,
    /// The PVC's name.
    pub pvc: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// A PVC a schedule selects: the labels of the per-schedule series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct SelectedLabels {
    /// The PVC's namespace.
    pub namespace: String,
    /// The PVC's name.
    pub pvc: String,
    /// The BackupSchedule's name.
    pub schedule: String,
}

/// Every metric the agent exports.
#[derive(Debug, Default)]
pub struct Metrics {
    registry: Registry,
    /// Bytes of files read by backups.
    pub bytes_read: Family<PvcLabels, Counter>,
    /// Bytes added to the repository after deduplication and compression.
    pub new_bytes_stored: Family<PvcLabels, Counter>,
    /// Files in the volume at its last backup.
    pub files: Family<PvcLabels, Gauge>,
    /// Seconds the last backup took.
    pub duration: Family<PvcLabels, FloatGauge>,
    /// Failed and partially failed backups.
    pub errors: Family<PvcLabels, Counter>,
    /// Unix time of the last successful backup: `time() - this` is the recovery point age.
    pub last_success: Family<PvcLabels, FloatGauge>,
    /// Leader: 1 for each PVC a schedule selects.
    pub selected: Family<SelectedLabels, Gauge>,
    /// Leader: the longest gap between two runs of the selecting schedule, in seconds.
    pub backup_interval: Family<SelectedLabels, FloatGauge>,
    /// Leader: the later of the PVC's and the schedule's creation times.
    pub selected_since: Family<SelectedLabels, FloatGauge>,
    /// Leader: bytes of the repository's packs.
    pub repository_size: OptionalGauge,
    /// Leader: snapshots in the repository.
    pub repository_snapshots: OptionalGauge,
    /// Leader: Unix time the repository was last read for these metrics.
    pub repository_read: OptionalGauge,
    /// Work accepted on this node but waiting for a free slot.
    pub queue_length: Gauge,
    /// Backups and restores running on this node.
    pub in_flight: Gauge,
    /// Backups and restores finished, by outcome.
    pub jobs_finished: Family<OutcomeLabels, Counter>,
    /// 1 while `/readyz` would answer ready.
    pub ready: Gauge,
    /// 1 while this agent leads (and exports the cluster-wide series).
    pub leading: Gauge,
}

/// A job's kind and outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `backup` or `restore`.
    pub kind: String,
    /// One of [`OUTCOMES`].
    pub outcome: String,
}

/// The job kinds, each of whose outcome counters exists from the start (at 0), so that the
/// first failure after a restart is an increase a rule can see.
pub const KINDS: [&str; 2] = ["backup", "restore"];

/// The outcomes of a job.
pub const OUTCOMES: [&str; 4] = ["completed", "partially-failed", "failed", "canceled"];

/// What the leading agent read for its cluster-wide series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeaderSeries {
    /// Each PVC's newest complete snapshot's time, from the repository.
    pub last_success: Vec<(PvcLabels, f64)>,
    /// Each PVC a schedule selects, with the schedule's interval (`None`: it could not be
    /// computed) and since when it is selected.
    pub selected: Vec<(SelectedLabels, Option<f64>, f64)>,
    /// The repository's pack bytes and snapshot count, when it could be read.
    pub repository: Option<(u64, u64)>,
}

impl Metrics {
    /// All metrics, registered.
    pub fn new() -> Self {
        let mut m = Self::default();
        m.register_volumes();
        m.register_cluster();
        m.register_agent();
        for kind in KINDS {
            for outcome in OUTCOMES {
                let _ = m.jobs_finished.get_or_create(&OutcomeLabels {
                    kind: kind.into(),
                    outcome: outcome.into(),
                });
            }
        }
        m
    }

    fn register_volumes(&mut self) {
        let r = &mut self.registry;
        r.register(
            "kairn_volume_bytes_read",
            "Bytes of files read by backups of the PVC",
            self.bytes_read.clone(),
        );
        r.register(
            "kairn_volume_new_bytes_stored",
            "Bytes added to the repository by backups of the PVC, after deduplication and compression",
            self.new_bytes_stored.clone(),
        );
        r.register(
            "kairn_volume_files",
            "Files in the PVC at its last backup",
            self.files.clone(),
        );
        r.register(
            "kairn_volume_backup_duration_seconds",
            "Seconds the PVC's last backup took",
            self.duration.clone(),
        );
        r.register(
            "kairn_volume_backup_errors",
            "Failed and partially failed backups of the PVC",
            self.errors.clone(),
        );
        r.register(
            "kairn_volume_last_success_timestamp_seconds",
            "Unix time of the PVC's last successful backup (the recovery point); the leading \
             agent recomputes it from the repository's complete snapshots",
            self.last_success.clone(),
        );
    }

    fn register_cluster(&mut self) {
        let r = &mut self.registry;
        r.register(
            "kairn_volume_selected",
            "1 for each PVC a BackupSchedule selects, backed up or not (leading agent)",
            self.selected.clone(),
        );
        r.register(
            "kairn_volume_backup_interval_seconds",
            "The longest gap between two runs of the schedule that selects the PVC (leading agent)",
            self.backup_interval.clone(),
        );
        r.register(
            "kairn_volume_selected_since_timestamp_seconds",
            "Unix time since when the schedule selects the PVC: the later of their creation \
             times (leading agent)",
            self.selected_since.clone(),
        );
        r.register(
            "kairn_repository_size_bytes",
            "Bytes of the repository's packs, as stored (leading agent)",
            self.repository_size.clone(),
        );
        r.register(
            "kairn_repository_snapshots",
            "Snapshots in the repository (leading agent)",
            self.repository_snapshots.clone(),
        );
        r.register(
            "kairn_repository_read_timestamp_seconds",
            "Unix time the leading agent last read the repository for these metrics",
            self.repository_read.clone(),
        );
    }

    fn register_agent(&mut self) {
        let r = &mut self.registry;
        r.register(
            "kairn_agent_queue_length",
            "Backups and restores waiting for a free slot on this node",
            self.queue_length.clone(),
        );
        r.register(
            "kairn_agent_in_flight",
            "Backups and restores running on this node",
            self.in_flight.clone(),
        );
        r.register(
            "kairn_agent_jobs_finished",
            "Backups and restores finished on this node, by kind and outcome",
            self.jobs_finished.clone(),
        );
        r.register(
            "kairn_agent_ready",
            "1 while the agent is ready: its loop turns and its last pass reached the API server",
            self.ready.clone(),
        );
        r.register(
            "kairn_agent_leading",
            "1 while this agent leads and exports the cluster-wide series",
            self.leading.clone(),
        );
        r.register_collector(Box::new(ProcessCollector::new()));
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Counts a finished job.
    pub fn finished(&self, kind: &str, outcome: &str) {
        self.jobs_finished
            .get_or_create(&OutcomeLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Exports what the leading agent read: the selected PVCs' series replace the previous
    /// ones (a PVC no longer selected goes), a last success only ever moves forward (a backup
    /// this agent just ran may be newer than what was read), and the repository's size when
    /// it could be read.
    pub fn publish_leader(&self, s: &LeaderSeries, read_at: f64) {
        for (pvc, t) in &s.last_success {
            let g = self.last_success.get_or_create(pvc);
            if g.get() < *t {
                g.set(*t);
            }
        }
        self.selected.clear();
        self.backup_interval.clear();
        self.selected_since.clear();
        for (labels, interval, since) in &s.selected {
            self.selected.get_or_create(labels).set(1);
            if let Some(i) = interval {
                self.backup_interval.get_or_create(labels).set(*i);
            }
            self.selected_since.get_or_create(labels).set(*since);
        }
        if let Some((bytes, snapshots)) = s.repository {
            self.repository_size.set(bytes as f64);
            self.repository_snapshots.set(snapshots as f64);
            self.repository_read.set(read_at);
        }
    }

    /// Drops the series only the leading agent exports (this agent no longer leads). The last
    /// successes stay: they are true, and rules take the newest of every agent's.
    pub fn drop_leader_series(&self) {
        self.selected.clear();
        self.backup_interval.clear();
        self.selected_since.clear();
        self.repository_size.clear();
        self.repository_snapshots.clear();
        self.repository_read.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_pvc_metrics_carry_their_labels() {
        let m = Metrics::new();
        let l = PvcLabels {
            namespace: "shop".into(),
            pvc: "db".into(),
        };
        m.bytes_read.get_or_create(&l).inc_by(42);
        m.last_success.get_or_create(&l).set(1.5e9);
        m.in_flight.set(1);
        let text = m.encode().unwrap();
        assert!(
            text.contains(r#"kairn_volume_bytes_read_total{namespace="shop",pvc="db"} 42"#),
            "{text}"
        );
        assert!(
            text.contains("kairn_volume_last_success_timestamp_seconds{"),
            "{text}"
        );
        assert!(text.contains("kairn_agent_in_flight 1"), "{text}");
    }

    fn selected(ns: &str, pvc: &str, schedule: &str) -> SelectedLabels {
        SelectedLabels {
            namespace: ns.into(),
            pvc: pvc.into(),
            schedule: schedule.into(),
        }
    }

    #[test]
    fn the_leaders_series_replace_the_last_and_a_success_only_moves_forward() {
        let m = Metrics::new();
        let db = PvcLabels {
            namespace: "shop".into(),
            pvc: "db".into(),
        };
        // A backup this agent just ran is newer than what the repository said.
        m.last_success.get_or_create(&db).set(2e9);
        let first = LeaderSeries {
            last_success: vec![(db.clone(), 1e9)],
            selected: vec![
                (selected("shop", "db", "nightly"), Some(86_400.0), 1e9),
                (selected("shop", "new", "nightly"), None, 1.2e9),
            ],
            repository: Some((4096, 3)),
        };
        m.publish_leader(&first, 1.7e9);
        let text = m.encode().unwrap();
        for want in [
            r#"kairn_volume_last_success_timestamp_seconds{namespace="shop",pvc="db"} 2000000000.0"#,
            r#"kairn_volume_selected{namespace="shop",pvc="new",schedule="nightly"} 1"#,
            r#"kairn_volume_backup_interval_seconds{namespace="shop",pvc="db",schedule="nightly"} 86400.0"#,
            r#"kairn_volume_selected_since_timestamp_seconds{namespace="shop",pvc="new",schedule="nightly"} 1200000000.0"#,
            "kairn_repository_size_bytes 4096.0",
            "kairn_repository_snapshots 3.0",
            r#"kairn_agent_jobs_finished_total{kind="backup",outcome="partially-failed"} 0"#,
        ] {
            assert!(text.contains(want), "{want} in:\n{text}");
        }
        assert!(
            !text.contains(r#"kairn_volume_backup_interval_seconds{namespace="shop",pvc="new""#),
            "{text}"
        );
        // The next read no longer selects `new`, and the repository could not be read.
        let second = LeaderSeries {
            last_success: vec![(db.clone(), 2.5e9)],
            selected: vec![(selected("shop", "db", "nightly"), Some(86_400.0), 1e9)],
            repository: None,
        };
        m.publish_leader(&second, 1.8e9);
        let text = m.encode().unwrap();
        assert!(!text.contains(r#"pvc="new""#), "{text}");
        assert!(text.contains("pvc=\"db\"} 2500000000.0"), "{text}");
        assert!(
            text.contains("kairn_repository_size_bytes 4096.0"),
            "{text}"
        );
        // No longer leading: the cluster-wide series go, the last successes stay.
        m.drop_leader_series();
        let text = m.encode().unwrap();
        assert!(!text.contains("kairn_volume_selected"), "{text}");
        assert!(!text.contains("kairn_repository_size_bytes"), "{text}");
        assert!(
            text.contains("kairn_volume_last_success_timestamp_seconds{"),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
    }
}
