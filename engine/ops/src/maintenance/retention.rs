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

use kairn_format::error::{Error, Result};
use kairn_format::id::SnapshotId;
use kairn_format::snapshot::{Snapshot, SourceKind};

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
    /// The cluster backup it shares its fate with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
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

/// Applies `policy` to `snapshots`, source by source. Snapshots that belong to a cluster
/// backup ([`Group`]) are decided together instead: the policy runs over the groups of each
/// series (a group's time is its earliest snapshot's, its tags all its snapshots' tags), and
/// every snapshot of a group shares the group's fate, so a kept point in time stays whole.
pub fn plan(
    policy: &RetentionPolicy,
    snapshots: &[(SnapshotId, Snapshot)],
) -> Result<Vec<GroupPlan>> {
    if policy.is_empty() {
        return Err(Error::invalid(
            "no retention rule given: refusing to forget every snapshot (use --keep-*)",
        ));
    }
    let mut sources: BTreeMap<String, Vec<Member<'_>>> = BTreeMap::new();
    let mut by_id: BTreeMap<&str, Vec<Member<'_>>> = BTreeMap::new();
    for (id, snap) in snapshots {
        let time = snap
            .datetime()
            .map_err(|e| e.with_context("snapshot", id.short()))?;
        match &snap.group {
            Some(g) => by_id
                .entry(g.id.as_str())
                .or_default()
                .push((*id, snap, time)),
            None => sources
                .entry(group_key(snap))
                .or_default()
                .push((*id, snap, time)),
        }
    }
    // A group is its id, whatever series its snapshots name (they should all name one; if
    // they do not, the smallest decides): a group is never split between two sequences.
    let mut series: BTreeMap<&str, BTreeMap<&str, Vec<Member<'_>>>> = BTreeMap::new();
    for (id, members) in by_id {
        let name = members
            .iter()
            .filter_map(|m| m.1.group.as_ref().map(|g| g.series.as_str()))
            .min()
            .unwrap_or_default();
        series.entry(name).or_default().insert(id, members);
    }
    let mut plans: Vec<GroupPlan> = sources
        .into_iter()
        .map(|(group, mut members)| {
            members.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)));
            let units: Vec<Unit<'_>> = members
                .iter()
                .map(|(_, snap, time)| Unit {
                    time: *time,
                    tags: snap.tags.iter().collect(),
                })
                .collect();
            let snapshots = members
                .iter()
                .zip(reasons(policy, &units))
                .map(|((id, snap, _), reasons)| decision(*id, snap, reasons))
                .collect();
            GroupPlan { group, snapshots }
        })
        .collect();
    for (name, groups) in series {
        let mut groups: Vec<(&str, Vec<Member<'_>>)> = groups.into_iter().collect();
        for (_, members) in &mut groups {
            members.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)));
        }
        let start = |m: &[Member<'_>]| m.iter().map(|x| x.2).min();
        groups.sort_by(|a, b| start(&b.1).cmp(&start(&a.1)).then(b.0.cmp(a.0)));
        let units: Vec<Unit<'_>> = groups
            .iter()
            .map(|(_, members)| Unit {
                time: start(members).unwrap_or(DateTime::<Utc>::MIN_UTC),
                tags: members.iter().flat_map(|m| m.1.tags.iter()).collect(),
            })
            .collect();
        let snapshots = groups
            .iter()
            .zip(reasons(policy, &units))
            .flat_map(|((_, members), reasons)| {
                members
                    .iter()
                    .map(move |(id, snap, _)| decision(*id, snap, reasons.clone()))
            })
            .collect();
        plans.push(GroupPlan {
            group: format!("cluster backups {name:?}"),
            snapshots,
        });
    }
    Ok(plans)
}

type Bucket = fn(DateTime<Utc>) -> (i32, u32, u32, u32);

/// A snapshot of a group, with its parsed time.
type Member<'a> = (SnapshotId, &'a Snapshot, DateTime<Utc>);

/// What the policy looks at: a snapshot, or a whole cluster backup.
struct Unit<'a> {
    time: DateTime<Utc>,
    tags: Vec<&'a String>,
}

fn decision(id: SnapshotId, snap: &Snapshot, reasons: Vec<String>) -> Decision {
    Decision {
        id,
        time: snap.time.clone(),
        group: snap.group.as_ref().map(|g| g.id.clone()),
        keep: !reasons.is_empty(),
        reasons,
    }
}

/// The rules that keep each unit, newest first.
fn reasons(policy: &RetentionPolicy, newest_first: &[Unit<'_>]) -> Vec<Vec<String>> {
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
        for (i, unit) in newest_first.iter().enumerate() {
            if seen.len() as u32 >= count {
                break;
            }
            if seen.insert(bucket(unit.time)) {
                reasons[i].push(reason.into());
            }
        }
    }
    if let (Some(within), Some(newest)) = (policy.within, newest_first.first()) {
        let cutoff = within.cutoff(newest.time);
        for (i, unit) in newest_first.iter().enumerate() {
            if unit.time >= cutoff {
                reasons[i].push("within the kept period".into());
            }
        }
    }
    for (i, unit) in newest_first.iter().enumerate() {
        for tag in &policy.tags {
            if unit.tags.contains(&tag) && !reasons[i].contains(&format!("tagged {tag}")) {
                reasons[i].push(format!("tagged {tag}"));
            }
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairn_format::id::{BlobId, Id};
    use kairn_format::snapshot::Source;

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
                group: None,
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

    fn member(n: u8, time: &str, pvc: &str, group: &str, tags: &[&str]) -> (SnapshotId, Snapshot) {
        let (id, mut s) = snap(n, time, "node-a", tags);
        s.source.pvc = Some(pvc.into());
        s.source.namespace = Some("app".into());
        s.group = Some(kairn_format::snapshot::Group {
            id: group.into(),
            series: "nightly".into(),
        });
        (id, s)
    }

    #[test]
    fn cluster_backups_are_kept_or_dropped_whole() {
        let snaps = vec![
            // Day 1: the etcd snapshot, and two volumes.
            member(1, "2026-03-01T02:00:00Z", "etcd", "n-1", &[]),
            member(2, "2026-03-01T02:05:00Z", "db", "n-1", &[]),
            member(3, "2026-03-01T02:06:00Z", "web", "n-1", &[]),
            // Day 2: the web volume failed that night.
            member(4, "2026-03-02T02:00:00Z", "etcd", "n-2", &[]),
            member(5, "2026-03-02T02:05:00Z", "db", "n-2", &[]),
            // Day 3.
            member(6, "2026-03-03T02:00:00Z", "etcd", "n-3", &[]),
            member(7, "2026-03-03T02:05:00Z", "db", "n-3", &["legal-hold"]),
            member(8, "2026-03-03T02:06:00Z", "web", "n-3", &[]),
            // Day 4.
            member(9, "2026-03-04T02:00:00Z", "etcd", "n-4", &[]),
            member(10, "2026-03-04T02:05:00Z", "db", "n-4", &[]),
            member(11, "2026-03-04T02:06:00Z", "web", "n-4", &[]),
            // Not part of any cluster backup.
            snap(12, "2026-03-04T03:00:00Z", "node-b", &[]),
        ];
        let mut snaps = snaps;
        // Day 1's web volume names another series by mistake: it still goes with its group.
        if let Some(g) = snaps[2].1.group.as_mut() {
            g.series = "other".into();
        }
        let policy = RetentionPolicy {
            last: 1,
            tags: vec!["legal-hold".into()],
            ..Default::default()
        };
        let p = plan(&policy, &snaps).unwrap();
        let fate = |n: u8| {
            p.iter()
                .flat_map(|g| &g.snapshots)
                .find(|d| d.id == SnapshotId(Id([n; 32])))
                .map(|d| d.keep)
                .unwrap()
        };
        // Per source, keep-last 1 would keep day 1's `web` (day 2 has none); by group, day 1
        // goes whole, day 3 stays whole because one of its snapshots is on legal hold.
        let kept: Vec<u8> = (1..=12).filter(|&n| fate(n)).collect();
        assert_eq!(kept, [6, 7, 8, 9, 10, 11, 12]);
        let series = p.iter().find(|g| g.group.contains("nightly")).unwrap();
        assert_eq!(series.snapshots.len(), 11);
        assert!(series.snapshots.iter().all(|d| d.group.is_some()));
        let day3 = series
            .snapshots
            .iter()
            .find(|d| d.id == SnapshotId(Id([6; 32])))
            .unwrap();
        assert_eq!(day3.reasons, ["tagged legal-hold"]);
    }
}
