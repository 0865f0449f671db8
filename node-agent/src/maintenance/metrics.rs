//! The maintenance workload's metrics, in the OpenMetrics text format. What has not happened
//! yet in this process (a prune, a check) has no series rather than a 0: its first pass
//! prunes and checks, and rules that ask how long ago it happened join on
//! `process_start_time_seconds` for the time before.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::exposition::{OptionalGauge, ProcessCollector};

/// A schedule's label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScheduleLabels {
    /// The BackupSchedule's name.
    pub schedule: String,
}

/// What failed.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// `list` (the schedules or the snapshots), `retention`, `prune` or `check`.
    pub stage: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric the maintenance workload exports.
#[derive(Debug, Default)]
pub struct MaintenanceMetrics {
    registry: Registry,
    /// Unix time the last pass ended with every step done: `time() - this` says how long
    /// retention and prune have not run.
    pub last_success: FloatGauge,
    /// Unix time of the last prune that ran to its end.
    pub last_prune: OptionalGauge,
    /// 1 when the last prune ran to its end, 0 when it failed.
    pub last_prune_success: OptionalGauge,
    /// Unix time the last check ran to its end (whatever it found).
    pub last_check: OptionalGauge,
    /// 1 when the last check found nothing wrong, 0 when it found a problem or failed.
    pub last_check_success: OptionalGauge,
    /// Problems the last check that ran to its end found.
    pub check_problems: OptionalGauge,
    /// The settings: seconds between checks, and at most between prunes.
    pub check_interval: FloatGauge,
    pub prune_interval: FloatGauge,
    /// Snapshots forgotten by schedules' retention.
    pub forgotten: Family<ScheduleLabels, Counter>,
    /// Bytes of packs deleted by prunes.
    pub bytes_freed: Counter,
    /// Failed steps, by stage.
    pub failures: Family<StageLabels, Counter>,
}

impl MaintenanceMetrics {
    /// All metrics, registered.
    pub fn new() -> Self {
        let mut m = Self::default();
        let r = &mut m.registry;
        r.register(
            "kairn_maintenance_last_success_timestamp_seconds",
            "Unix time the last maintenance pass ended with retention and prune done",
            m.last_success.clone(),
        );
        r.register(
            "kairn_maintenance_last_prune_timestamp_seconds",
            "Unix time of the last prune that ran to its end",
            m.last_prune.clone(),
        );
        r.register(
            "kairn_maintenance_last_prune_success",
            "1 when the last prune ran to its end, 0 when it failed",
            m.last_prune_success.clone(),
        );
        r.register(
            "kairn_maintenance_last_check_timestamp_seconds",
            "Unix time the last check of the repository ran to its end",
            m.last_check.clone(),
        );
        r.register(
            "kairn_maintenance_last_check_success",
            "1 when the last check found the repository sound, 0 when it found a problem or failed",
            m.last_check_success.clone(),
        );
        r.register(
            "kairn_maintenance_check_problems",
            "Problems the last check of the repository found",
            m.check_problems.clone(),
        );
        r.register(
            "kairn_maintenance_check_interval_seconds",
            "Seconds between checks of the repository (KAIRN_CHECK_INTERVAL_SECONDS)",
            m.check_interval.clone(),
        );
        r.register(
            "kairn_maintenance_prune_interval_seconds",
            "The most seconds between prunes (KAIRN_PRUNE_INTERVAL_SECONDS)",
            m.prune_interval.clone(),
        );
        r.register(
            "kairn_maintenance_snapshots_forgotten",
            "Snapshots forgotten by the schedule's retention",
            m.forgotten.clone(),
        );
        r.register(
            "kairn_maintenance_bytes_freed",
            "Bytes of packs deleted by prunes",
            m.bytes_freed.clone(),
        );
        r.register(
            "kairn_maintenance_failures",
            "Failed maintenance steps, by stage (list, retention, prune, check)",
            m.failures.clone(),
        );
        r.register_collector(Box::new(ProcessCollector::new()));
        for stage in ["list", "retention", "prune", "check"] {
            let _ = m.failures.get_or_create(&StageLabels {
                stage: stage.into(),
            });
        }
        m
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Counts a failed step.
    pub fn failed(&self, stage: &str) {
        self.failures
            .get_or_create(&StageLabels {
                stage: stage.into(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_maintenance_metrics_are_named_for_alerts() {
        let m = MaintenanceMetrics::new();
        m.forgotten
            .get_or_create(&ScheduleLabels {
                schedule: "nightly".into(),
            })
            .inc_by(3);
        m.bytes_freed.inc_by(4096);
        m.last_success.set(1.5e9);
        m.failed("prune");
        let text = m.encode().unwrap();
        // Not yet happened: no series.
        for absent in ["last_prune_timestamp", "last_check", "check_problems"] {
            assert!(!text.contains(absent), "{absent} in:\n{text}");
        }
        m.last_check.set(1.6e9);
        m.last_check_success.set(0.0);
        let text = m.encode().unwrap();
        for want in [
            "kairn_maintenance_last_check_timestamp_seconds 1600000000.0",
            "kairn_maintenance_last_check_success 0.0",
            r#"kairn_maintenance_failures_total{stage="check"} 0"#,
            r#"kairn_maintenance_snapshots_forgotten_total{schedule="nightly"} 3"#,
            "kairn_maintenance_bytes_freed_total 4096",
            "kairn_maintenance_last_success_timestamp_seconds 1500000000",
            r#"kairn_maintenance_failures_total{stage="prune"} 1"#,
        ] {
            assert!(text.contains(want), "{want} in:\n{text}");
        }
    }
}
