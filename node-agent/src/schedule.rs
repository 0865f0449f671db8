//! BackupSchedule, carried out by every agent for the PVCs mounted on its own node: no leader
//! election is needed, and a PVC is backed up by the node that can read it.
//!
//! When a schedule's cron time `t` has come (within a window, so a restarted agent does not
//! replay old times), the agent creates one VolumeBackup per matching PVC, named after the
//! schedule, the PVC and `t`. The name makes creation idempotent: a second agent, a restart, or
//! the next reconcile gets AlreadyExists and moves on.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// The label a scheduled VolumeBackup carries: its schedule's name.
pub const SCHEDULE_LABEL: &str = "kairn.dev/schedule";

/// The annotation on what a schedule's run creates: the run's time (RFC 3339), from which the
/// schedule's status is computed.
pub const SCHEDULED_AT_ANNOTATION: &str = "kairn.dev/scheduled-at";

/// The first time of `cron` after `now`; an error for an expression that cannot be read.
pub fn next_after(cron: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let parsed = croner::Cron::from_str(cron).map_err(|e| format!("bad schedule {cron:?}: {e}"))?;
    parsed
        .find_next_occurrence(&now, false)
        .map_err(|e| format!("schedule {cron:?} has no next time: {e}"))
}

/// The most runs [`longest_gap`] looks at: a year of a schedule that runs every minute.
const MAX_RUNS: usize = 530_000;

/// The longest gap between two consecutive runs of `cron` from `from` on: the most a
/// volume's newest backup may age while the schedule keeps every run (its recovery point
/// objective, before the time a backup takes). Runs are followed for a year, and past it
/// until two were seen (a schedule of 29 February); `None` when the expression has fewer than
/// two runs, an error when it cannot be read.
pub fn longest_gap(cron: &str, from: DateTime<Utc>) -> Result<Option<Duration>, String> {
    let parsed = croner::Cron::from_str(cron).map_err(|e| format!("bad schedule {cron:?}: {e}"))?;
    let horizon = from + Duration::days(366);
    let mut last: Option<DateTime<Utc>> = None;
    let mut longest: Option<Duration> = None;
    for t in parsed.iter_after(from).take(MAX_RUNS) {
        if let Some(prev) = last {
            let gap = t - prev;
            longest = Some(longest.map_or(gap, |l| l.max(gap)));
            if t > horizon {
                break;
            }
        }
        last = Some(t);
    }
    Ok(longest)
}

/// The label a ClusterBackup's member VolumeBackups carry: its name (see [`label_value`]).
pub const CLUSTER_BACKUP_LABEL: &str = "kairn.dev/cluster-backup";

/// `name` as a label value: itself when it fits in 63 characters, else a prefix and a hash of
/// the whole, so that distinct names stay distinct.
pub fn label_value(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_string();
    }
    let hash = blake3::hash(name.as_bytes()).to_hex();
    let mut head = name.to_string();
    head.truncate(63 - 13);
    format!("{}-{}", head.trim_end_matches(['-', '.', '_']), &hash[..12])
}

/// The latest time `t` of `cron` with `now - window < t <= now`.
pub fn due(
    cron: &str,
    now: DateTime<Utc>,
    window: Duration,
) -> Result<Option<DateTime<Utc>>, String> {
    let cron = croner::Cron::from_str(cron).map_err(|e| format!("bad schedule {cron:?}: {e}"))?;
    let mut at = now - window;
    let mut last = None;
    loop {
        match cron.find_next_occurrence(&at, false) {
            Ok(t) if t <= now => {
                last = Some(t);
                at = t;
            }
            _ => return Ok(last),
        }
    }
}

/// True when `labels` satisfy `selector` (matchLabels and matchExpressions: In, NotIn, Exists,
/// DoesNotExist); no selector matches everything.
pub fn matches(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(s) = selector else {
        return true;
    };
    let exact = s
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs = s.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        let have = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    });
    exact && exprs
}

/// The VolumeBackup a schedule creates for a PVC at time `t`: a valid object name (at most 63
/// characters, so it can also be a label value), the same on every agent.
pub fn backup_name(schedule: &str, pvc: &str, t: DateTime<Utc>) -> String {
    let stamp = t.format("%Y%m%d%H%M").to_string();
    let hash = blake3::hash(format!("{schedule}/{pvc}").as_bytes()).to_hex();
    let mut head = format!("{schedule}-{pvc}");
    head.truncate(63 - stamp.len() - 8 - 2);
    format!(
        "{}-{}-{stamp}",
        head.trim_end_matches(['-', '.']),
        &hash[..6]
    )
}

/// The ClusterBackup a schedule creates for its run at `t`: `<schedule>-<YYYYmmddHHMM>`,
/// the same on every agent.
pub fn cluster_backup_name(schedule: &str, t: DateTime<Utc>) -> String {
    let stamp = t.format("%Y%m%d%H%M").to_string();
    let mut head = schedule.to_string();
    head.truncate(253 - stamp.len() - 1);
    format!("{}-{stamp}", head.trim_end_matches(['-', '.']))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_latest_time_within_the_window_is_due() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 2, 7, 30).unwrap();
        let w = Duration::minutes(10);
        let t = due("*/5 * * * *", now, w).unwrap().unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 11, 23, 2, 5, 0).unwrap());
        assert_eq!(due("0 3 * * *", now, w).unwrap(), None);
        assert!(due("not cron", now, w).is_err());
    }

    #[test]
    fn the_longest_gap_between_runs_is_the_schedules_interval() {
        let from = Utc.with_ymd_and_hms(2026, 3, 10, 12, 34, 0).unwrap();
        let gap = |cron: &str| longest_gap(cron, from).unwrap().map(|d| d.num_seconds());
        assert_eq!(gap("*/5 * * * *"), Some(300));
        assert_eq!(gap("0 2 * * *"), Some(86_400));
        // Twice a day, unevenly: the longer gap counts.
        assert_eq!(gap("0 2,8 * * *"), Some(18 * 3600));
        // Weekdays at 01:00: Friday to Monday.
        assert_eq!(gap("0 1 * * 1-5"), Some(3 * 86_400));
        // Monthly on the 31st: months without one make the gap; over a year from March,
        // the longest is 31 May to 31 July (61 days) or 31 August to 31 October.
        assert_eq!(gap("0 0 31 * *"), Some(61 * 86_400));
        // Every minute, a year of runs.
        assert_eq!(gap("* * * * *"), Some(60));
        // Every minute of January only: February to December is the gap.
        let january_end = Utc.with_ymd_and_hms(2027, 1, 31, 23, 59, 0).unwrap();
        let next_january = Utc.with_ymd_and_hms(2028, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            gap("* * * 1 *"),
            Some((next_january - january_end).num_seconds())
        );
        // 29 February: past the year, until a second run.
        assert_eq!(
            gap("0 0 29 2 *"),
            Some(
                (Utc.with_ymd_and_hms(2032, 2, 29, 0, 0, 0).unwrap()
                    - Utc.with_ymd_and_hms(2028, 2, 29, 0, 0, 0).unwrap())
                .num_seconds()
            )
        );
        assert!(longest_gap("not cron", from).is_err());
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let labels: BTreeMap<String, String> = [("tier".to_string(), "db".to_string())]
            .into_iter()
            .collect();
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"tier": "db"},
            "matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}))
        .unwrap();
        assert!(matches(Some(&sel), &labels));
        assert!(matches(None, &labels));
        let other: LabelSelector =
            serde_json::from_value(serde_json::json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]})).unwrap();
        assert!(!matches(Some(&other), &labels));
    }

    #[test]
    fn names_are_stable_valid_and_short() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 2, 5, 0).unwrap();
        let a = backup_name("nightly", "db", t);
        assert_eq!(a, backup_name("nightly", "db", t));
        assert!(
            a.starts_with("nightly-db-") && a.ends_with("-202611230205"),
            "{a}"
        );
        let long = backup_name(&"s".repeat(60), &"p".repeat(60), t);
        assert!(long.len() <= 63, "{long}");
        assert_eq!(label_value("nightly-202611230205"), "nightly-202611230205");
        let (a, b) = (
            format!("{}-1", "c".repeat(70)),
            format!("{}-2", "c".repeat(70)),
        );
        assert!(label_value(&a).len() <= 63);
        assert_ne!(label_value(&a), label_value(&b));
    }
}
