//! The model's figures and the page, over snapshots and records made here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{FixedOffset, TimeZone, Utc};
use engine::format::record::{
    CheckRecord, PruneRecord, Record, RecordKind, RecordOutcome, RestoreRecord,
};
use engine::format::snapshot::{Group, Snapshot, Source, SourceKind, Summary};
use engine::id::{BlobId, Id, RecordId, SnapshotId};
use engine::inspect::stats::Stats;

use crate::model::Status;
use crate::options::{ExpectedVolume, ReportOptions};
use crate::{Inputs, build, render};

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 10, 12, 0, 0).unwrap()
}

fn at(hours_ago: i64) -> String {
    (now() - chrono::Duration::hours(hours_ago)).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

struct Snap {
    n: u8,
    hours_ago: i64,
    ns: Option<&'static str>,
    pvc: Option<&'static str>,
    kind: SourceKind,
    group: Option<(&'static str, &'static str)>,
    new: u64,
    total: u64,
    incomplete: bool,
    tags: &'static [&'static str],
}

impl Default for Snap {
    fn default() -> Self {
        Self {
            n: 0,
            hours_ago: 0,
            ns: None,
            pvc: None,
            kind: SourceKind::Filesystem,
            group: None,
            new: 0,
            total: 0,
            incomplete: false,
            tags: &[],
        }
    }
}

fn snap(s: Snap) -> (SnapshotId, Snapshot) {
    let paths = match s.pvc {
        Some(p) => vec![format!("/{p}")],
        None => vec!["/srv/data".to_string()],
    };
    (
        SnapshotId(Id([s.n; 32])),
        Snapshot {
            time: at(s.hours_ago),
            host: "node-a".into(),
            username: "root".into(),
            paths,
            tags: s.tags.iter().map(|t| t.to_string()).collect(),
            tree: BlobId(Id([0; 32])),
            parent: None,
            original: None,
            source: Source {
                kind: s.kind,
                namespace: s.ns.map(String::from),
                pvc: s.pvc.map(String::from),
                ..Default::default()
            },
            group: s.group.map(|(id, series)| Group {
                id: id.into(),
                series: series.into(),
            }),
            incomplete: s.incomplete,
            summary: Summary {
                new_bytes_stored: s.new,
                total_bytes: s.total,
                warnings: u64::from(s.incomplete),
                ..Default::default()
            },
            program: "kairn test".into(),
        },
    )
}

fn record(n: u8, kind: RecordKind, hours_ago: i64, outcome: RecordOutcome) -> (RecordId, Record) {
    (
        RecordId(Id([n; 32])),
        Record {
            kind,
            started: at(hours_ago),
            finished: at(hours_ago),
            host: "ops".into(),
            username: "root".into(),
            program: "kairn test".into(),
            outcome,
            message: String::new(),
            check: (kind == RecordKind::Check).then(|| CheckRecord {
                read_data: if n.is_multiple_of(2) {
                    "all".into()
                } else {
                    "none".into()
                },
                ..Default::default()
            }),
            prune: (kind == RecordKind::Prune).then(|| PruneRecord {
                deleted_bytes: 4096,
                deleted_packs: 1,
                ..Default::default()
            }),
            restore: None,
        },
    )
}

/// Two volumes of a nightly schedule, one late; a host's files; a cluster backup series whose
/// second run lacks etcd and the web volume, and whose web volume is incomplete in the third.
fn inputs() -> Inputs {
    let db = |n, hours_ago, new, group| {
        snap(Snap {
            n,
            hours_ago,
            ns: Some("shop"),
            pvc: Some("db"),
            new,
            total: 1000 + new,
            group,
            tags: &["schedule:nightly"],
            ..Default::default()
        })
    };
    let web = |n, hours_ago, incomplete, group| {
        snap(Snap {
            n,
            hours_ago,
            ns: Some("shop"),
            pvc: Some("<script>alert(1)</script>"),
            new: 10,
            total: 500,
            incomplete,
            group,
            ..Default::default()
        })
    };
    let etcd = |n, hours_ago, group| {
        snap(Snap {
            n,
            hours_ago,
            kind: SourceKind::Etcd,
            new: 7,
            total: 70,
            group,
            ..Default::default()
        })
    };
    let mut restore = record(40, RecordKind::RestoreVerify, 2, RecordOutcome::Ok);
    restore.1.restore = Some(RestoreRecord {
        snapshot: SnapshotId(Id([3; 32])),
        snapshot_time: at(30),
        host: "node-a".into(),
        paths: vec!["/db".into()],
        source: Source::default(),
        path: "/".into(),
        filtered: false,
        files: 3,
        bytes: 1200,
        verified: 3,
        errors: 0,
    });
    Inputs {
        repository_id: "ab".repeat(32),
        snapshots: vec![
            db(1, 72, 1000, Some(("run-1", "nightly"))),
            web(2, 72, false, Some(("run-1", "nightly"))),
            etcd(9, 72, Some(("run-1", "nightly"))),
            snap(Snap {
                n: 5,
                hours_ago: 60,
                new: 3,
                total: 30,
                ..Default::default()
            }),
            db(3, 48, 200, Some(("run-2", "nightly"))),
            db(6, 30, 50, Some(("run-3", "nightly"))),
            web(4, 20, true, Some(("run-3", "nightly"))),
            etcd(10, 20, Some(("run-3", "nightly"))),
        ],
        records: vec![
            record(20, RecordKind::Check, 50, RecordOutcome::Ok),
            record(21, RecordKind::Check, 5, RecordOutcome::Problems),
            record(22, RecordKind::Prune, 4, RecordOutcome::Ok),
            restore,
        ],
        stats: Ok(Stats {
            snapshots: 8,
            logical_bytes: 5000,
            pack_bytes: 1300,
            dedup_ratio: 2.5,
            compression_ratio: 1.5,
            ..Default::default()
        }),
        unreadable: Vec::new(),
    }
}

fn options() -> ReportOptions {
    ReportOptions {
        now: now(),
        default_interval: Some(Duration::from_secs(36 * 3600)),
        schedule_intervals: [("nightly".to_string(), Duration::from_secs(24 * 3600))].into(),
        expected_volumes: vec![ExpectedVolume {
            cluster: None,
            namespace: "shop".into(),
            pvc: "cache".into(),
            interval: None,
        }],
        location: "/srv/<repo>".into(),
        history_limit: 2,
        program: "kairn test".into(),
    }
}

#[test]
fn each_source_is_judged_against_its_interval() {
    let r = build(inputs(), &options());
    let by_label = |l: &str| r.sources.iter().find(|s| s.label == l).expect(l);
    let db = by_label("shop/db");
    // Newest db snapshot 30 h old, nightly: 24 h.
    assert_eq!(db.status, Status::Late);
    assert_eq!(db.expected_interval_secs, Some(86_400));
    assert_eq!(db.interval_from.as_deref(), Some("schedule nightly"));
    assert_eq!(db.snapshots, 3);
    assert_eq!(db.last.as_ref().unwrap().age_secs, 30 * 3600);
    assert_eq!(db.last.as_ref().unwrap().total_bytes, 1050);
    let new: Vec<u64> = db.history.iter().map(|h| h.new_bytes_stored).collect();
    assert_eq!(
        new,
        vec![200, 50],
        "the newest history_limit points, oldest first"
    );
    let restore = db
        .last_verified_restore
        .as_ref()
        .expect("restore of snapshot 3");
    assert_eq!((restore.verified, restore.age_secs), (3, 7200));

    // The web volume's newest snapshot is incomplete but within its series' 24 h.
    let web = by_label("shop/<script>alert(1)</script>");
    assert_eq!(web.status, Status::Incomplete);
    assert_eq!(web.interval_from.as_deref(), Some("schedule nightly"));
    assert_eq!(web.last_complete.as_ref().unwrap().short_id, "02020202");
    assert!(web.last_verified_restore.is_none());

    let files = by_label("node-a:/srv/data");
    assert_eq!((files.kind.as_str(), files.status), ("files", Status::Late));
    assert_eq!(files.interval_from.as_deref(), Some("default"));
    assert_eq!(files.expected_interval_secs, Some(36 * 3600));
    let cache = by_label("shop/cache");
    assert_eq!(cache.status, Status::Never);
    assert_eq!(by_label("etcd").status, Status::Ok);
    assert_eq!(r.sources[0].kind, "volume", "volumes first");
    assert_eq!(
        (
            r.summary.ok,
            r.summary.late,
            r.summary.never,
            r.summary.incomplete
        ),
        (1, 2, 1, 1)
    );
}

#[test]
fn the_repository_grows_by_what_each_snapshot_stored_and_the_newest_records_count() {
    let r = build(inputs(), &options());
    let growth: Vec<u64> = r
        .repository
        .growth
        .iter()
        .map(|g| g.cumulative_bytes)
        .collect();
    assert_eq!(growth, vec![1000, 1010, 1017, 1020, 1220, 1270, 1280, 1287]);
    assert_eq!(r.repository.snapshots, 8);
    assert_eq!(r.repository.incomplete_snapshots, 1);
    let ops = &r.operations;
    assert_eq!(ops.records, 4);
    let check = ops.last_check.as_ref().unwrap();
    assert_eq!(
        (check.outcome, check.age_secs),
        (RecordOutcome::Problems, 5 * 3600)
    );
    assert_eq!(
        ops.last_read_data_check.as_ref().unwrap().age_secs,
        50 * 3600
    );
    assert_eq!(
        ops.last_prune
            .as_ref()
            .unwrap()
            .prune
            .as_ref()
            .unwrap()
            .deleted_bytes,
        4096
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["schema_version"], 1);
    let db = json["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == "shop/db");
    assert_eq!(db.unwrap()["status"], "late");
    assert_eq!(db.unwrap()["last"]["age_secs"], 30 * 3600);
}

#[test]
fn a_cluster_backup_missing_a_part_its_series_has_is_incomplete() {
    let r = build(inputs(), &options());
    let ids: Vec<&str> = r.cluster_backups.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, vec!["run-1", "run-2", "run-3"]);
    let [one, two, three] = &r.cluster_backups[..] else {
        panic!()
    };
    assert!(one.complete, "{:?}", one.problems);
    assert_eq!((one.volumes, one.etcd, one.manifests), (2, 1, 0));
    assert!(!two.complete);
    assert!(
        two.problems
            .iter()
            .any(|p| p.starts_with("no etcd snapshot")),
        "{:?}",
        two.problems
    );
    assert!(
        two.problems
            .iter()
            .any(|p| p.contains("<script>alert(1)</script> missing (cluster backup run-1")),
        "{:?}",
        two.problems
    );
    assert!(!three.complete);
    assert_eq!(three.problems.len(), 1, "{:?}", three.problems);
    assert!(three.problems[0].contains("is incomplete"));
    assert_eq!(r.summary.cluster_backups_incomplete, 2);
}

#[test]
fn the_page_escapes_names_and_fetches_nothing() {
    let r = build(inputs(), &options());
    let page = render(&r, FixedOffset::east_opt(3600).unwrap());
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(
        !page.contains("<script"),
        "no script, and names are escaped"
    );
    assert!(page.contains("shop/&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("/srv/&lt;repo&gt;"));
    for fetch in ["http://", "https://", "src=", "url(", "@import", "<link"] {
        assert!(!page.contains(fetch), "{fetch}");
    }
    // One row per source, with its state; local times with the offset.
    assert_eq!(page.matches(r#"<tr class="source""#).count(), 5);
    assert_eq!(page.matches(r#"data-status="late""#).count(), 2);
    assert!(
        page.contains("2026-12-09 07:00 +01:00"),
        "db's last snapshot, 30 h ago, at +01:00"
    );
    assert!(page.contains("Needs attention"));
    assert!(page.contains("2 cluster backup(s) incomplete"));
    assert_eq!(
        page.matches("<svg").count(),
        2 + 4,
        "two charts, four sparklines"
    );
}

#[test]
fn without_records_the_page_says_not_recorded_and_without_stats_why() {
    let mut i = inputs();
    i.records.clear();
    i.stats = Err("1 snapshot file(s) cannot be read".into());
    let r = build(i, &options());
    assert!(r.operations.last_check.is_none());
    let page = render(&r, FixedOffset::east_opt(0).unwrap());
    assert!(page.contains("not recorded"));
    assert!(page.contains("no check recorded"));
    assert!(page.contains("1 snapshot file(s) cannot be read"));
    assert!(r.sources.iter().all(|s| s.last_verified_restore.is_none()));
}
