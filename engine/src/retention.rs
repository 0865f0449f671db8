//! Retention: which snapshots a policy keeps, and why. Pure: snapshots in, decisions out.
//!
//! The rules are restic's, so users can carry their policies over: snapshots are grouped by
//! source, each group is sorted newest first, and a snapshot is kept when any rule keeps it.
//! Calendar buckets (hour, day, ISO week, month, year) are taken in UTC, and `--keep-within` is
//! measured back from the group's newest snapshot, not from the clock of the machine running
//! `forget`: a host with a wrong clock cannot make a policy delete more.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Datelike, Duration, Months, Timelike, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::snapshot::{Snapshot, SourceKind};
use crate::id::SnapshotId;

/// What to keep. A policy with no rule is refused: it would delete everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// The newest N snapshots.
    pub last: u32,
    /// The newest snapshot of each of the last N hours that have one.
    pub hourly: u32,
    /// Likewise per day.
    pub daily: u32,
    /// Likewise per ISO week.
    pub weekly: u32,
    /// Likewise per month.
    pub monthly: u32,
    /// Likewise per year.
    pub yearly: u32,
    /// Every snapshot this recent, relative to the group's newest.
    pub within: Option<KeepWithin>,
    /// Every snapshot carrying any of these tags.
    pub tags: Vec<String>,
}

impl RetentionPolicy {
    /// True when no rule is set.
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// A calendar duration like `1y6m2w3d12h`: years, months, weeks, days, hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepWithin {
    /// Whole months (years count twelve).
    pub months: u32,
    /// Whole days (weeks count seven).
    pub days: u32,
    /// Whole hours.
    pub hours: u32,
}

impl std::str::FromStr for KeepWithin {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "bad duration {s:?}: use numbers with units y, m, w, d, h, like 1y6m or 36h"
            ))
        };
        let mut out = KeepWithin::default();
        let mut digits = String::new();
        let mut units = 0;
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let n: u32 = digits.parse().map_err(|_| bad())?;
            digits.clear();
            units += 1;
            let add = |field: &mut u32, by: u32| -> Result<()> {
                *field = n
                    .checked_mul(by)
                    .and_then(|v| field.checked_add(v))
                    .ok_or_else(bad)?;
                Ok(())
            };
            match c {
                'y' => add(&mut out.months, 12)?,
                'm' => add(&mut out.months, 1)?,
                'w' => add(&mut out.days, 7)?,
                'd' => add(&mut out.days, 1)?,
                'h' => add(&mut out.hours, 1)?,
                _ => return Err(bad()),
            }
        }
        if !digits.is_empty() || units == 0 {
            return Err(bad());
        }
        Ok(out)
    }
}

impl KeepWithin {
    /// The earliest time still kept when the newest snapshot is at `newest`.
    fn cutoff(&self, newest: DateTime<Utc>) -> DateTime<Utc> {
        newest
            .checked_sub_months(Months::new(self.months))
            .and_then(|t| t.checked_sub_signed(Duration::days(i64::from(self.days))))
            .and_then(|t| t.checked_sub_signed(Duration::hours(i64::from(self.hours))))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// One snapshot's fate.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The snapshot.
    pub id: SnapshotId,
    /// Its time.
    pub time: String,
    /// True when some rule keeps it.
    pub keep: bool,
    /// The rules that keep it, like "daily snapshot"; empty when it goes.
    pub reasons: Vec<String>,
}

/// The decisions for one group of snapshots of the same source, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct GroupPlan {
    /// The source: `host:paths`, or the Kubernetes identity.
    pub group: String,
    /// Newest first.
    pub snapshots: Vec<Decision>,
}

/// The group a snapshot belongs to: the Kubernetes volume or object it came from when it has
/// one, otherwise its host and set of paths.
pub fn group_key(snap: &Snapshot) -> String {
    let s = &snap.source;
    let kube = [&s.cluster, &s.namespace, &s.pvc]
        .iter()
        .any(|v| v.is_some());
    if kube || !matches!(s.kind, SourceKind::Filesystem | SourceKind::Stdin) {
        let part = |v: &Option<String>| v.clone().unwrap_or_default();
        return format!(
            "{:?}:{}/{}/{}",
            s.kind,
            part(&s.cluster),
            part(&s.namespace),
            part(&s.pvc)
        )
        .to_lowercase();
    }
    let mut paths = snap.paths.clone();
    paths.sort();
    format!("{}:{}", snap.host, paths.join(","))
}

/// Applies `policy` to `snapshots`, group by group.
pub fn plan(
    policy: &RetentionPolicy,
    snapshots: &[(SnapshotId, Snapshot)],
) -> Result<Vec<GroupPlan>> {
    if policy.is_empty() {
        return Err(Error::invalid(
            "no retention rule given: refusing to forget every snapshot (use --keep-*)",
        ));
    }
    let mut groups: BTreeMap<String, Vec<Member<'_>>> = BTreeMap::new();
    for (id, snap) in snapshots {
        let time = snap
            .datetime()
            .map_err(|e| e.with_context("snapshot", id.short()))?;
        groups
            .entry(group_key(snap))
            .or_default()
            .push((*id, snap, time));
    }
    Ok(groups
        .into_iter()
        .map(|(group, mut members)| {
            members.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)));
            GroupPlan {
                group,
                snapshots: decide(policy, &members),
            }
        })
        .collect())
}

type Bucket = fn(DateTime<Utc>) -> (i32, u32, u32, u32);

/// A snapshot of a group, with its parsed time.
type Member<'a> = (SnapshotId, &'a Snapshot, DateTime<Utc>);

fn decide(policy: &RetentionPolicy, newest_first: &[Member<'_>]) -> Vec<Decision> {
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); newest_first.len()];
    for r in reasons.iter_mut().take(policy.last as usize) {
        r.push("last snapshot".into());
    }
    let buckets: [(u32, &str, Bucket); 5] = [
        (policy.hourly, "hourly snapshot", |t| {
            (t.year(), t.ordinal(), t.hour(), 0)
        }),
        (policy.daily, "daily snapshot", |t| {
            (t.year(), t.ordinal(), 0, 0)
        }),
        (policy.weekly, "weekly snapshot", |t| {
            let w = t.iso_week();
            (w.year(), w.week(), 0, 0)
        }),
        (policy.monthly, "monthly snapshot", |t| {
            (t.year(), t.month(), 0, 0)
        }),
        (policy.yearly, "yearly snapshot", |t| (t.year(), 0, 0, 0)),
    ];
    for (count, reason, bucket) in buckets {
        let mut seen = HashSet::new();
        for (i, (_, _, time)) in newest_first.iter().enumerate() {
            if seen.len() as u32 >= count {
                break;
            }
            if seen.insert(bucket(*time)) {
                reasons[i].push(reason.into());
            }
        }
    }
    if let (Some(within), Some(newest)) = (policy.within, newest_first.first()) {
        let cutoff = within.cutoff(newest.2);
        for (i, (_, _, time)) in newest_first.iter().enumerate() {
            if *time >= cutoff {
                reasons[i].push("within the kept period".into());
            }
        }
    }
    for (i, (_, snap, _)) in newest_first.iter().enumerate() {
        for tag in &policy.tags {
            if snap.tags.contains(tag) {
                reasons[i].push(format!("tagged {tag}"));
            }
        }
    }
    newest_first
        .iter()
        .zip(reasons)
        .map(|((id, snap, _), reasons)| Decision {
            id: *id,
            time: snap.time.clone(),
            keep: !reasons.is_empty(),
            reasons,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::Source;
    use crate::id::{BlobId, Id};

    fn snap(n: u8, time: &str, host: &str, tags: &[&str]) -> (SnapshotId, Snapshot) {
        (
            SnapshotId(Id([n; 32])),
            Snapshot {
                time: time.into(),
                host: host.into(),
                username: "root".into(),
                paths: vec!["/data".into()],
                tags: tags.iter().map(|t| t.to_string()).collect(),
                tree: BlobId(Id([0; 32])),
                parent: None,
                original: None,
                source: Source::default(),
                incomplete: false,
                summary: Default::default(),
                program: String::new(),
            },
        )
    }

    fn kept(plan: &[GroupPlan]) -> Vec<String> {
        plan.iter()
            .flat_map(|g| g.snapshots.iter().filter(|d| d.keep))
            .map(|d| d.time[..13].to_string())
            .collect()
    }

    /// Two snapshots a day, at 06:00 and 18:00, for 40 days from 2026-01-01.
    fn twice_daily() -> Vec<(SnapshotId, Snapshot)> {
        let start = DateTime::parse_from_rfc3339("2026-01-01T06:00:00Z").unwrap();
        (0..80)
            .map(|i| {
                let t = start + Duration::hours(12 * i64::from(i));
                snap(i as u8, &t.to_rfc3339(), "node-a", &[])
            })
            .collect()
    }

    #[test]
    fn an_empty_policy_is_refused() {
        let err = plan(&RetentionPolicy::default(), &twice_daily()).unwrap_err();
        assert!(err.to_string().contains("no retention rule"), "{err}");
    }

    #[test]
    fn keep_last_and_daily_pick_the_newest_of_each_day() {
        let policy = RetentionPolicy {
            last: 1,
            daily: 3,
            ..Default::default()
        };
        let p = plan(&policy, &twice_daily()).unwrap();
        assert_eq!(
            kept(&p),
            ["2026-02-09T18", "2026-02-08T18", "2026-02-07T18"]
        );
        let newest = &p[0].snapshots[0];
        assert_eq!(newest.reasons, ["last snapshot", "daily snapshot"]);
        assert_eq!(p[0].snapshots.iter().filter(|d| !d.keep).count(), 77);
    }

    #[test]
    fn weekly_buckets_are_iso_weeks() {
        let policy = RetentionPolicy {
            weekly: 2,
            ..Default::default()
        };
        // 2026-02-09 is a Monday: its week holds only the two newest snapshots.
        let p = plan(&policy, &twice_daily()).unwrap();
        assert_eq!(kept(&p), ["2026-02-09T18", "2026-02-08T18"]);
    }

    #[test]
    fn monthly_and_yearly() {
        let policy = RetentionPolicy {
            monthly: 5,
            yearly: 1,
            ..Default::default()
        };
        let p = plan(&policy, &twice_daily()).unwrap();
        assert_eq!(kept(&p), ["2026-02-09T18", "2026-01-31T18"]);
    }

    #[test]
    fn within_counts_back_from_the_newest_snapshot_not_the_clock() {
        let policy = RetentionPolicy {
            within: Some("2d".parse().unwrap()),
            ..Default::default()
        };
        let p = plan(&policy, &twice_daily()).unwrap();
        assert_eq!(
            kept(&p),
            [
                "2026-02-09T18",
                "2026-02-09T06",
                "2026-02-08T18",
                "2026-02-08T06",
                "2026-02-07T18"
            ]
        );
    }

    #[test]
    fn tags_keep_and_groups_are_separate() {
        let mut snaps = twice_daily();
        snaps[3].1.tags = vec!["legal-hold".into()];
        snaps.push(snap(200, "2025-06-01T00:00:00Z", "node-b", &[]));
        let policy = RetentionPolicy {
            last: 1,
            tags: vec!["legal-hold".into()],
            ..Default::default()
        };
        let p = plan(&policy, &snaps).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            kept(&p),
            ["2026-02-09T18", "2026-01-02T18", "2025-06-01T00"]
        );
        assert_eq!(p[0].snapshots[76].reasons, ["tagged legal-hold"]);
    }

    #[test]
    fn kubernetes_sources_group_by_volume_not_by_node() {
        let (_, mut a) = snap(1, "2026-01-01T00:00:00Z", "node-a", &[]);
        a.source.namespace = Some("shop".into());
        a.source.pvc = Some("db".into());
        let mut b = a.clone();
        b.host = "node-b".into();
        b.paths = vec!["/var/lib/kubelet/pods/x".into()];
        assert_eq!(group_key(&a), group_key(&b));
        let (_, c) = snap(2, "2026-01-01T00:00:00Z", "node-a", &[]);
        assert_ne!(group_key(&a), group_key(&c));
    }

    #[test]
    fn durations_parse() {
        let d: KeepWithin = "1y2m3w4d5h".parse().unwrap();
        assert_eq!(
            d,
            KeepWithin {
                months: 14,
                days: 25,
                hours: 5
            }
        );
        for bad in ["", "5", "3x", "d", "99999999999y"] {
            assert!(bad.parse::<KeepWithin>().is_err(), "{bad:?}");
        }
    }
}
