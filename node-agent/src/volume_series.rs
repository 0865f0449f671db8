//! What the leading agent exports for the whole cluster, as pure data (no I/O; read and
//! published by [`crate::reconcile::volume_series`]):
//!
//! - each PVC's last success, from the repository's snapshots of this cluster's volumes, so
//!   that a restarted agent exports what the one before it did. A snapshot counts when every
//!   file of it was read (not `incomplete`), as a Completed VolumeBackup's does; the
//!   repository does not record a hook's failure, so a snapshot whose hook failed but whose
//!   files were all read counts too. Its time is when the backup ended, as the live gauge
//!   sets it;
//! - a series for every PVC a BackupSchedule selects (not paused, and backing up volumes),
//!   backed up or not, with the schedule's interval ([`crate::schedule::longest_gap`]) and
//!   since when it is selected (the later of the PVC's and the schedule's creation), so that
//!   an alert can tell a volume that was never backed up from one whose schedule has not come
//!   yet.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Utc};
use engine::format::snapshot::{Snapshot, SourceKind};
use kube::ResourceExt;

use crate::crd::BackupSchedule;
use crate::metrics::{PvcLabels, SelectedLabels};
use crate::selection::{ClusterClaims, Selectors};

/// When the snapshot's backup ended: the summary's end, else its start.
fn ended(s: &Snapshot) -> Option<f64> {
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).ok();
    let t = parse(&s.summary.finished).or_else(|| parse(&s.time))?;
    Some(t.timestamp_millis() as f64 / 1000.0)
}

/// Each PVC's newest complete volume snapshot taken in `cluster` (this cluster's name, as the
/// agents record it), as Unix time, sorted by PVC.
pub fn last_successes<'a>(
    snapshots: impl IntoIterator<Item = &'a Snapshot>,
    cluster: Option<&str>,
) -> Vec<(PvcLabels, f64)> {
    let mut newest: BTreeMap<(String, String), f64> = BTreeMap::new();
    for s in snapshots {
        let src = &s.source;
        let volume = matches!(src.kind, SourceKind::Filesystem | SourceKind::BlockDevice);
        if !volume || s.incomplete || src.cluster.as_deref() != cluster {
            continue;
        }
        let (Some(ns), Some(pvc), Some(t)) = (&src.namespace, &src.pvc, ended(s)) else {
            continue;
        };
        let slot = newest.entry((ns.clone(), pvc.clone())).or_insert(t);
        *slot = slot.max(t);
    }
    newest
        .into_iter()
        .map(|((namespace, pvc), t)| (PvcLabels { namespace, pvc }, t))
        .collect()
}

/// Every PVC of `claims` each schedule selects: its labels, the schedule's interval in
/// seconds (from `interval`, by cron expression; `None` when it cannot be computed) and since
/// when it is selected (Unix time). Paused schedules and those that back up no volumes select
/// nothing: they promise no backup.
pub fn selected(
    schedules: &[BackupSchedule],
    claims: &ClusterClaims,
    mut interval: impl FnMut(&str) -> Option<f64>,
) -> Vec<(SelectedLabels, Option<f64>, f64)> {
    let mut out = Vec::new();
    for s in schedules
        .iter()
        .filter(|s| !s.spec.paused && s.spec.volumes)
    {
        let every = interval(&s.spec.schedule);
        let created = s
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second());
        let selectors = Selectors {
            namespaces: s.spec.namespace_selector.as_ref(),
            pvcs: s.spec.pvc_selector.as_ref(),
        };
        for (namespace, pvc) in claims.select(selectors) {
            let pvc_created = claims.created.get(&(namespace.clone(), pvc.clone()));
            let since = created.max(pvc_created.copied()).unwrap_or_default();
            let labels = SelectedLabels {
                namespace,
                pvc,
                schedule: s.name_any(),
            };
            out.push((labels, every, since as f64));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The leading agent's bookkeeping for these series.
#[derive(Debug, Default)]
pub struct SeriesState {
    /// When they were last read.
    pub last: Mutex<Option<std::time::Instant>>,
    /// This agent exported them at its last pass (it led).
    pub exported: AtomicBool,
    /// Each cron expression's interval in seconds, computed once.
    intervals: Mutex<BTreeMap<String, Option<f64>>>,
}

impl SeriesState {
    /// The interval of `cron` in seconds ([`crate::schedule::longest_gap`] from `now`),
    /// computed the first time it is asked for.
    pub fn interval(&self, cron: &str, now: DateTime<Utc>) -> Option<f64> {
        let mut known = self.intervals.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = known.get(cron) {
            return *v;
        }
        let v = crate::schedule::longest_gap(cron, now)
            .ok()
            .flatten()
            .map(|d| d.num_milliseconds() as f64 / 1000.0);
        known.insert(cron.to_string(), v);
        v
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use engine::format::snapshot::Source;

    fn snap(cluster: Option<&str>, ns: &str, pvc: &str, finished: &str) -> Snapshot {
        let mut s: Snapshot = serde_json::from_value(serde_json::json!({
            "time": "2026-01-01T00:00:00Z", "host": "h", "username": "u", "paths": [format!("/{pvc}")],
            "tree": "00".repeat(32),
        }))
        .unwrap();
        s.source = Source {
            kind: SourceKind::Filesystem,
            cluster: cluster.map(String::from),
            namespace: Some(ns.into()),
            pvc: Some(pvc.into()),
            ..Default::default()
        };
        s.summary.finished = finished.into();
        s
    }

    fn unix(t: &str) -> f64 {
        DateTime::parse_from_rfc3339(t).unwrap().timestamp() as f64
    }

    #[test]
    fn the_last_success_is_the_newest_complete_snapshot_of_this_clusters_volume() {
        let here = Some("prod");
        let mut incomplete = snap(here, "shop", "db", "2026-01-05T00:00:00Z");
        incomplete.incomplete = true;
        let mut etcd = snap(here, "shop", "db", "2026-01-06T00:00:00Z");
        etcd.source.kind = SourceKind::Etcd;
        let mut no_summary = snap(here, "shop", "cache", "");
        no_summary.time = "2026-01-02T03:04:05Z".into();
        let mut block = snap(here, "shop", "disk", "2026-01-01T00:00:00Z");
        block.source.kind = SourceKind::BlockDevice;
        let snaps = [
            snap(here, "shop", "db", "2026-01-03T00:00:00Z"),
            snap(here, "shop", "db", "2026-01-02T00:00:00Z"),
            // Newer, but not a success, not this cluster's, or not a volume.
            incomplete,
            snap(Some("staging"), "shop", "db", "2026-01-07T00:00:00Z"),
            snap(None, "shop", "db", "2026-01-08T00:00:00Z"),
            etcd,
            no_summary,
            block,
            snap(here, "other", "db", "2026-01-04T00:00:00Z"),
        ];
        let got = last_successes(&snaps, here);
        let want = |ns: &str, pvc: &str, t: &str| {
            (
                PvcLabels {
                    namespace: ns.into(),
                    pvc: pvc.into(),
                },
                unix(t),
            )
        };
        assert_eq!(
            got,
            vec![
                want("other", "db", "2026-01-04T00:00:00Z"),
                want("shop", "cache", "2026-01-02T03:04:05Z"),
                want("shop", "db", "2026-01-03T00:00:00Z"),
                want("shop", "disk", "2026-01-01T00:00:00Z"),
            ]
        );
        // An agent without a cluster name takes the snapshots recorded without one.
        let unnamed = last_successes(&snaps, None);
        assert_eq!(unnamed, vec![want("shop", "db", "2026-01-08T00:00:00Z")]);
    }

    fn schedule(name: &str, cron: &str, created: &str, spec: serde_json::Value) -> BackupSchedule {
        let mut spec = spec;
        spec["schedule"] = cron.into();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kairn.dev/v1alpha1", "kind": "BackupSchedule",
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn every_selected_pvc_has_a_series_with_its_schedules_interval_and_since() {
        let mut claims = ClusterClaims::default();
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        claims.namespaces.insert("shop".into(), labels(&[]));
        claims.namespaces.insert("lab".into(), labels(&[]));
        for (ns, pvc, tier, created) in [
            ("shop", "db", "gold", "2026-01-01T00:00:00Z"),
            ("shop", "web", "bronze", "2026-01-01T00:00:00Z"),
            ("lab", "scratch", "gold", "2026-03-01T00:00:00Z"),
        ] {
            let key = (ns.to_string(), pvc.to_string());
            claims.pvcs.insert(key.clone(), labels(&[("tier", tier)]));
            claims.created.insert(key, unix(created) as i64);
        }
        let gold = serde_json::json!({"pvcSelector": {"matchLabels": {"tier": "gold"}}});
        let schedules = [
            schedule("nightly", "0 2 * * *", "2026-02-01T00:00:00Z", gold.clone()),
            schedule("paused", "0 3 * * *", "2026-02-01T00:00:00Z", {
                let mut s = gold.clone();
                s["paused"] = true.into();
                s
            }),
            schedule("state-only", "0 4 * * *", "2026-02-01T00:00:00Z", {
                let mut s = gold.clone();
                s["volumes"] = false.into();
                s["manifests"] = serde_json::json!({});
                s
            }),
            schedule("broken", "not cron", "2026-02-01T00:00:00Z", gold),
        ];
        let state = SeriesState::default();
        let now = DateTime::parse_from_rfc3339("2026-04-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let got = selected(&schedules, &claims, |cron| state.interval(cron, now));
        let row = |ns: &str, pvc: &str, schedule: &str, every: Option<f64>, since: &str| {
            (
                SelectedLabels {
                    namespace: ns.into(),
                    pvc: pvc.into(),
                    schedule: schedule.into(),
                },
                every,
                unix(since),
            )
        };
        assert_eq!(
            got,
            vec![
                // The PVC is newer than the schedule: selected since its creation.
                row("lab", "scratch", "broken", None, "2026-03-01T00:00:00Z"),
                row(
                    "lab",
                    "scratch",
                    "nightly",
                    Some(86_400.0),
                    "2026-03-01T00:00:00Z"
                ),
                // The schedule is newer than the PVC.
                row("shop", "db", "broken", None, "2026-02-01T00:00:00Z"),
                row(
                    "shop",
                    "db",
                    "nightly",
                    Some(86_400.0),
                    "2026-02-01T00:00:00Z"
                ),
            ]
        );
    }
}
