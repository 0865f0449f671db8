//! The page's tables: sources, cluster backups, and the records of checks and prunes.

use std::fmt::Write;

use chrono::FixedOffset;
use engine::format::record::RecordOutcome;

use crate::model::{ClusterBackupFacts, Operation, Report, SourceFacts, Status};
use crate::options::format_interval;
use crate::svg::{Bar, bars};
use crate::text::{age, bytes, esc, local_time};

pub(crate) fn time_tag(time: &str, zone: FixedOffset) -> String {
    format!(
        r#"<time datetime="{}" title="{} UTC">{}</time>"#,
        esc(time),
        esc(time),
        esc(&local_time(time, zone))
    )
}

pub(crate) fn outcome_word(o: RecordOutcome) -> &'static str {
    match o {
        RecordOutcome::Ok => "OK",
        RecordOutcome::Problems => "problems found",
        RecordOutcome::Failed => "failed",
        RecordOutcome::Other => "unknown outcome",
    }
}

pub(crate) fn outcome_class(o: RecordOutcome) -> &'static str {
    match o {
        RecordOutcome::Ok => "ok",
        RecordOutcome::Problems | RecordOutcome::Other => "incomplete",
        RecordOutcome::Failed => "late",
    }
}

fn pill(status: Status) -> String {
    let class = match status {
        Status::Ok => "ok",
        Status::Late | Status::Never => "late",
        Status::Incomplete => "incomplete",
        Status::Unknown => "unknown",
    };
    format!(
        r#"<span class="pill {class}">{}</span>"#,
        esc(status.label())
    )
}

/// The status as the JSON names it.
fn status_word(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Late => "late",
        Status::Never => "never",
        Status::Incomplete => "incomplete",
        Status::Unknown => "unknown",
    }
}

fn source_name(s: &SourceFacts) -> String {
    let mut extra = vec![esc(&s.kind)];
    if let Some(c) = &s.cluster {
        extra.push(format!("cluster {}", esc(c)));
    }
    if matches!(s.kind.as_str(), "volume" | "etcd" | "manifests") && !s.host.is_empty() {
        extra.push(format!("last on {}", esc(&s.host)));
    }
    if !s.schedules.is_empty() {
        extra.push(format!("schedule {}", esc(&s.schedules.join(", "))));
    }
    format!(
        r#"<div class="name">{}</div><div class="meta">{}</div>"#,
        esc(&s.label),
        extra.join(" · ")
    )
}

fn source_last(s: &SourceFacts, zone: FixedOffset) -> (String, String) {
    let Some(last) = &s.last else {
        return ("—".into(), "never".into());
    };
    let mut snap = format!(
        r#"<code>{}</code> {}"#,
        esc(&last.short_id),
        time_tag(&last.time, zone)
    );
    if last.incomplete {
        let _ = write!(
            snap,
            r#" <span class="flag">incomplete: {} warning(s)</span>"#,
            last.warnings
        );
    }
    if let Some(ok) = &s.last_complete {
        let _ = write!(
            snap,
            r#"<div class="meta">last complete: <code>{}</code>, {} ago</div>"#,
            esc(&ok.short_id),
            age(ok.age_secs)
        );
    }
    let expected = s.expected_interval_secs.map_or_else(
        || "no expected interval".to_string(),
        |i| {
            format!(
                "expected every {} ({})",
                format_interval(i),
                s.interval_from.as_deref().unwrap_or("")
            )
        },
    );
    (
        snap,
        format!(
            r#"{}<div class="meta">{}</div>"#,
            esc(&age(last.age_secs)),
            esc(&expected)
        ),
    )
}

fn source_restore(s: &SourceFacts, zone: FixedOffset) -> String {
    let Some(v) = &s.last_verified_restore else {
        return r#"<span class="missing">none recorded</span>"#.into();
    };
    let scope = if v.path == "/" && !v.filtered {
        String::new()
    } else {
        format!(
            " of {}{}",
            esc(&v.path),
            if v.filtered { " (filtered)" } else { "" }
        )
    };
    format!(
        r#"<span class="pill {}">{}</span> {} ago<div class="meta"><code>{}</code>{scope}: {} of {} files verified, {}, {} error(s); finished {}</div>"#,
        outcome_class(v.outcome),
        outcome_word(v.outcome),
        age(v.age_secs),
        esc(&v.snapshot),
        v.verified,
        v.files,
        bytes(v.bytes),
        v.errors,
        time_tag(&v.finished, zone),
    )
}

fn source_row(out: &mut String, s: &SourceFacts, zone: FixedOffset) {
    let (snap, age_cell) = source_last(s, zone);
    let items: Vec<Bar> = s
        .history
        .iter()
        .map(|h| Bar {
            label: format!(
                "{} {}: {} new, {} in all{}",
                local_time(&h.time, zone),
                h.snapshot,
                bytes(h.new_bytes_stored),
                bytes(h.total_bytes),
                if h.incomplete { ", incomplete" } else { "" }
            ),
            value: h.new_bytes_stored,
            flagged: h.incomplete,
        })
        .collect();
    let spark = if items.is_empty() {
        String::new()
    } else {
        bars(
            &items,
            150,
            28,
            &format!("new bytes per backup of {}", s.label),
            None,
        )
    };
    let last_new = s.last.as_ref().map_or(0, |l| l.new_bytes_stored);
    let size = s.last.as_ref().map_or("—".into(), |l| bytes(l.total_bytes));
    let _ = write!(
        out,
        r#"<tr class="source" data-status="{status}" data-key="{key}"><td>{pill}</td><td>{name}</td><td>{snap}</td><td>{age_cell}</td><td class="num">{size}</td><td class="num">{n}<div class="meta">{inc} incomplete</div></td><td>{spark}<div class="meta">last: {last_new}</div></td><td>{restore}</td></tr>"#,
        status = status_word(s.status),
        key = esc(&s.key),
        pill = pill(s.status),
        name = source_name(s),
        n = s.snapshots,
        inc = s.incomplete_snapshots,
        last_new = bytes(last_new),
        restore = source_restore(s, zone),
    );
}

pub(crate) fn sources(out: &mut String, r: &Report, zone: FixedOffset) {
    out.push_str(r#"<section><h2>Volumes and other sources</h2>"#);
    if r.sources.is_empty() {
        out.push_str(r#"<p class="missing">No snapshot yet.</p></section>"#);
        return;
    }
    out.push_str(
        r#"<table class="sources"><thead><tr><th>Status</th><th>Source</th><th>Last snapshot</th><th>Age</th><th>Size</th><th>Snapshots</th><th>New bytes per backup</th><th>Last verified restore</th></tr></thead><tbody>"#,
    );
    for s in &r.sources {
        source_row(out, s, zone);
    }
    out.push_str("</tbody></table></section>");
}

fn cluster_row(out: &mut String, g: &ClusterBackupFacts, zone: FixedOffset) {
    let (class, word) = if g.complete {
        ("ok", "complete")
    } else {
        ("incomplete", "incomplete")
    };
    let tick = |n: u64| if n > 0 { format!("{n}") } else { "none".into() };
    let members: Vec<String> = g
        .members
        .iter()
        .map(|m| {
            format!(
                r#"<li><code>{}</code> {}{}</li>"#,
                esc(&m.snapshot.short_id),
                esc(&m.label),
                if m.snapshot.incomplete {
                    r#" <span class="flag">incomplete</span>"#
                } else {
                    ""
                }
            )
        })
        .collect();
    let problems: Vec<String> = g
        .problems
        .iter()
        .map(|p| format!("<li>{}</li>", esc(p)))
        .collect();
    let series = if g.series.is_empty() {
        String::new()
    } else {
        format!(r#"<div class="meta">series {}</div>"#, esc(&g.series))
    };
    let _ = write!(
        out,
        r#"<tr class="cluster-backup" data-complete="{complete}"><td><span class="pill {class}">{word}</span></td><td><div class="name">{id}</div>{series}</td><td>{time}</td><td>{vols} volume(s) · etcd {etcd} · manifests {man}</td><td class="num">{size}</td><td><ul class="problems">{problems}</ul><details><summary>{n} snapshot(s)</summary><ul>{members}</ul></details></td></tr>"#,
        complete = g.complete,
        id = esc(&g.id),
        time = time_tag(&g.time, zone),
        vols = g.volumes,
        etcd = tick(g.etcd),
        man = tick(g.manifests),
        size = bytes(g.total_bytes),
        problems = problems.join(""),
        n = g.members.len(),
        members = members.join(""),
    );
}

pub(crate) fn cluster_backups(out: &mut String, r: &Report, zone: FixedOffset) {
    out.push_str("<section><h2>Cluster backups</h2>");
    if r.cluster_backups.is_empty() {
        out.push_str(r#"<p class="missing">No cluster backup (snapshots with a group) in this repository.</p></section>"#);
        return;
    }
    out.push_str(r#"<table class="groups"><thead><tr><th>Status</th><th>Cluster backup</th><th>Time</th><th>Parts</th><th>Size</th><th>Problems and members</th></tr></thead><tbody>"#);
    for g in r.cluster_backups.iter().rev() {
        cluster_row(out, g, zone);
    }
    out.push_str("</tbody></table></section>");
}

fn operation_row(out: &mut String, what: &str, op: Option<&Operation>, zone: FixedOffset) {
    let Some(op) = op else {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td colspan="4" class="missing">not recorded</td></tr>"#,
            esc(what)
        );
        return;
    };
    let detail = match (&op.check, &op.prune) {
        (Some(c), _) => format!(
            "data read: {}; {} snapshot(s), {} pack(s) read, {} blob(s) verified, {} problem(s)",
            c.read_data, c.snapshots, c.packs_read, c.blobs_verified, c.problems
        ),
        (_, Some(p)) => format!(
            "{} pack(s) deleted ({} freed), {} pack(s) left for a later prune",
            p.deleted_packs,
            bytes(p.deleted_bytes),
            p.pending_packs
        ),
        _ => String::new(),
    };
    let message = if op.message.is_empty() {
        String::new()
    } else {
        format!(r#"<div class="meta">{}</div>"#, esc(&op.message))
    };
    let _ = write!(
        out,
        r#"<tr><td>{}</td><td><span class="pill {}">{}</span></td><td>{} <div class="meta">{} ago, on {}</div></td><td>{}{message}</td><td><code>{}</code></td></tr>"#,
        esc(what),
        outcome_class(op.outcome),
        outcome_word(op.outcome),
        time_tag(&op.finished, zone),
        age(op.age_secs),
        esc(&op.host),
        esc(&detail),
        esc(&op.record),
    );
}

pub(crate) fn operations(out: &mut String, r: &Report, zone: FixedOffset) {
    let ops = &r.operations;
    let _ = write!(
        out,
        r#"<section><h2>Checks and prunes</h2><p class="meta">{} record(s) in the repository, each sealed with its keys: written by <code>repo check</code>, <code>repo prune</code> and <code>repo restore --verify</code>.</p><table class="ops"><thead><tr><th>Operation</th><th>Outcome</th><th>Finished</th><th>What it did</th><th>Record</th></tr></thead><tbody>"#,
        ops.records
    );
    operation_row(out, "check", ops.last_check.as_ref(), zone);
    operation_row(
        out,
        "check --read-data",
        ops.last_read_data_check.as_ref(),
        zone,
    );
    operation_row(out, "prune", ops.last_prune.as_ref(), zone);
    out.push_str("</tbody></table></section>");
}
