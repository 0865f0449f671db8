//! Prometheus metrics, per PVC and per agent, in the OpenMetrics text format.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A PVC's labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PvcLabels {
    /// The PVC's namespace.
    pub namespace: String,
    /// The PVC's name.
    pub pvc: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

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
    /// Failed backups.
    pub errors: Family<PvcLabels, Counter>,
    /// Unix time of the last successful backup: `time() - this` is the recovery point age.
    pub last_success: Family<PvcLabels, FloatGauge>,
    /// Work accepted on this node but waiting for a free slot.
    pub queue_length: Gauge,
    /// Backups and restores running on this node.
    pub in_flight: Gauge,
    /// Backups and restores finished, by outcome.
    pub jobs_finished: Family<OutcomeLabels, Counter>,
}

/// A job's kind and outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `backup` or `restore`.
    pub kind: String,
    /// `completed`, `failed` or `canceled`.
    pub outcome: String,
}

impl Metrics {
    /// All metrics, registered.
    pub fn new() -> Self {
        let mut m = Self::default();
        let r = &mut m.registry;
        r.register(
            "kairn_volume_bytes_read",
            "Bytes of files read by backups of the PVC",
            m.bytes_read.clone(),
        );
        r.register(
            "kairn_volume_new_bytes_stored",
            "Bytes added to the repository by backups of the PVC, after deduplication and compression",
            m.new_bytes_stored.clone(),
        );
        r.register(
            "kairn_volume_files",
            "Files in the PVC at its last backup",
            m.files.clone(),
        );
        r.register(
            "kairn_volume_backup_duration_seconds",
            "Seconds the PVC's last backup took",
            m.duration.clone(),
        );
        r.register(
            "kairn_volume_backup_errors",
            "Failed backups of the PVC",
            m.errors.clone(),
        );
        r.register(
            "kairn_volume_last_success_timestamp_seconds",
            "Unix time of the PVC's last successful backup (the recovery point)",
            m.last_success.clone(),
        );
        r.register(
            "kairn_agent_queue_length",
            "Backups and restores waiting for a free slot on this node",
            m.queue_length.clone(),
        );
        r.register(
            "kairn_agent_in_flight",
            "Backups and restores running on this node",
            m.in_flight.clone(),
        );
        r.register(
            "kairn_agent_jobs_finished",
            "Backups and restores finished on this node, by outcome",
            m.jobs_finished.clone(),
        );
        m
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
}
