//! The report as one self-contained HTML page: inline CSS and inline SVG, no script, nothing
//! fetched, so it opens offline and can be archived as evidence. Every name from the
//! repository is escaped.

use std::fmt::Write;

use chrono::FixedOffset;
use engine::format::record::RecordOutcome;

use crate::model::{Operation, Report};
use crate::svg::{Bar, Point, area, bars};
use crate::table::{cluster_backups, operations, outcome_class, outcome_word, sources, time_tag};
use crate::text::{age, bytes, esc, local_date, local_time, parse_time};

const STYLE: &str = include_str!("page.css");

/// Renders the page; times are shown in `zone` (the generating machine's local zone, say).
pub fn render(report: &Report, zone: FixedOffset) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = format!("Kairn restore readiness: {}", report.repository.location);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>",
        esc(&title)
    );
    header(&mut out, report, zone);
    verdict(&mut out, report);
    cards(&mut out, report);
    charts(&mut out, report, zone);
    sources(&mut out, report, zone);
    cluster_backups(&mut out, report, zone);
    operations(&mut out, report, zone);
    unreadable(&mut out, report);
    legend(&mut out, report);
    out.push_str("</main></body></html>\n");
    out
}

fn header(out: &mut String, r: &Report, zone: FixedOffset) {
    let repo = &r.repository;
    let _ = write!(
        out,
        r#"<header><h1>Restore readiness</h1><p class="sub">Repository <code>{loc}</code> · id <code>{id}</code> · generated {gen} by {prog}</p></header>"#,
        loc = esc(&repo.location),
        id = esc(repo.id.get(..16).unwrap_or(&repo.id)),
        gen = time_tag(&r.generated, zone),
        prog = esc(&r.program),
    );
}

/// One sentence that says whether everything could be restored now, and what is wrong if not.
fn verdict(out: &mut String, r: &Report) {
    let s = &r.summary;
    let mut wrong: Vec<String> = Vec::new();
    for (n, what) in [
        (s.late, "late"),
        (s.never, "never backed up"),
        (s.incomplete, "with an incomplete last snapshot"),
    ] {
        if n > 0 {
            wrong.push(format!("{n} source(s) {what}"));
        }
    }
    if s.cluster_backups_incomplete > 0 {
        wrong.push(format!(
            "{} cluster backup(s) incomplete",
            s.cluster_backups_incomplete
        ));
    }
    match &r.operations.last_check {
        None => wrong.push("no check recorded".into()),
        Some(c) if c.outcome != RecordOutcome::Ok => {
            wrong.push(format!("the last check: {}", outcome_word(c.outcome)))
        }
        Some(_) => {}
    }
    if !r.unreadable.is_empty() {
        wrong.push(format!("{} unreadable file(s)", r.unreadable.len()));
    }
    let total = r.sources.len();
    let (class, text) = if wrong.is_empty() {
        (
            "ok",
            format!("All {total} source(s) have a recent, complete snapshot."),
        )
    } else {
        let urgent = s.late + s.never > 0
            || r.operations
                .last_check
                .as_ref()
                .is_some_and(|c| c.outcome == RecordOutcome::Failed);
        let class = if urgent { "late" } else { "incomplete" };
        (class, format!("Needs attention: {}.", wrong.join(", ")))
    };
    let _ = write!(
        out,
        r#"<section class="verdict {class}"><strong>{}</strong> <span>{} of {total} source(s) OK · {} unknown (no expected interval)</span></section>"#,
        esc(&text),
        s.ok,
        s.unknown
    );
}

fn card(out: &mut String, label: &str, value: &str, note: &str, class: &str) {
    let _ = write!(
        out,
        r#"<div class="card {class}"><div class="label">{}</div><div class="value">{}</div><div class="note">{}</div></div>"#,
        esc(label),
        esc(value),
        esc(note)
    );
}

fn operation_card(
    out: &mut String,
    label: &str,
    op: Option<&Operation>,
    detail: &dyn Fn(&Operation) -> String,
) {
    match op {
        None => card(
            out,
            label,
            "not recorded",
            "no record in the repository",
            "missing",
        ),
        Some(op) => {
            let value = format!("{} ago", age(op.age_secs));
            let note = format!("{} · {}", outcome_word(op.outcome), detail(op));
            card(out, label, &value, &note, outcome_class(op.outcome));
        }
    }
}

fn cards(out: &mut String, r: &Report) {
    let repo = &r.repository;
    out.push_str(r#"<section class="cards">"#);
    match &repo.stats {
        Some(st) => {
            card(
                out,
                "Stored",
                &bytes(st.pack_bytes),
                &format!("in {} packs", st.packs),
                "",
            );
            card(
                out,
                "Logical",
                &bytes(st.logical_bytes),
                "what a restore of every snapshot writes",
                "",
            );
            card(
                out,
                "Deduplication",
                &format!("{:.2}×", st.dedup_ratio),
                "logical ÷ unique data",
                "",
            );
            card(
                out,
                "Compression",
                &format!("{:.2}×", st.compression_ratio),
                &format!("overall {:.2}×", st.total_ratio),
                "",
            );
        }
        None => card(
            out,
            "Sizes",
            "unavailable",
            repo.stats_error.as_deref().unwrap_or(""),
            "late",
        ),
    }
    card(
        out,
        "Snapshots",
        &repo.snapshots.to_string(),
        &format!("{} incomplete", repo.incomplete_snapshots),
        if repo.incomplete_snapshots > 0 {
            "incomplete"
        } else {
            ""
        },
    );
    let ops = &r.operations;
    let check_detail = |op: &Operation| {
        op.check.as_ref().map_or_else(String::new, |c| {
            format!("data read: {}, {} problem(s)", c.read_data, c.problems)
        })
    };
    operation_card(out, "Last check", ops.last_check.as_ref(), &check_detail);
    operation_card(
        out,
        "Last full data check",
        ops.last_read_data_check.as_ref(),
        &check_detail,
    );
    operation_card(out, "Last prune", ops.last_prune.as_ref(), &|op| {
        op.prune
            .as_ref()
            .map_or_else(String::new, |p| format!("{} freed", bytes(p.deleted_bytes)))
    });
    out.push_str("</section>");
}

fn charts(out: &mut String, r: &Report, zone: FixedOffset) {
    let growth = &r.repository.growth;
    if growth.is_empty() {
        return;
    }
    let first = local_date(&growth[0].time, zone);
    let last = local_date(&growth[growth.len() - 1].time, zone);
    let points: Vec<Point> = growth
        .iter()
        .map(|g| Point {
            t: parse_time(&g.time).map_or(0, |t| t.timestamp()),
            value: g.cumulative_bytes,
            label: format!(
                "{} {}: {} stored in all",
                local_time(&g.time, zone),
                g.snapshot,
                bytes(g.cumulative_bytes)
            ),
        })
        .collect();
    let recent = &growth[growth.len().saturating_sub(120)..];
    let items: Vec<Bar> = recent
        .iter()
        .map(|g| Bar {
            label: format!(
                "{} {}: {} new",
                local_time(&g.time, zone),
                g.snapshot,
                bytes(g.new_bytes_stored)
            ),
            value: g.new_bytes_stored,
            flagged: false,
        })
        .collect();
    let recent_first = local_date(&recent[0].time, zone);
    let _ = write!(
        out,
        r#"<section class="charts"><figure><figcaption>Repository size over time (bytes stored by each snapshot, added up; prunes not subtracted)</figcaption>{}</figure><figure><figcaption>New bytes stored per backup (last {} snapshots)</figcaption>{}</figure></section>"#,
        area(
            &points,
            560,
            170,
            "repository size over time",
            (&first, &last)
        ),
        recent.len(),
        bars(
            &items,
            560,
            170,
            "new bytes per backup",
            Some((&recent_first, &last))
        ),
    );
}

fn unreadable(out: &mut String, r: &Report) {
    if r.unreadable.is_empty() {
        return;
    }
    out.push_str(r#"<section class="damage"><h2>Unreadable files</h2><p>These files fail their hash or authentication: they were not believed. A snapshot file among them may be the newest of its volume.</p><ul>"#);
    for u in &r.unreadable {
        let _ = write!(
            out,
            "<li>{} <code>{}</code>: {}</li>",
            esc(&u.kind),
            esc(&u.name),
            esc(&u.reason)
        );
    }
    out.push_str("</ul></section>");
}

fn legend(out: &mut String, r: &Report) {
    let _ = write!(
        out,
        r#"<footer><h2>How to read this page</h2><ul><li><b>OK</b>: the newest snapshot is complete and younger than the expected interval (the recovery point objective); <b>late</b>: older than that; <b>incomplete</b>: some files could not be read; <b>never backed up</b>: a volume a schedule selects has no snapshot.</li><li>Ages are measured from when the backup started to when this page was made. Times are shown in the zone of the machine that made it; hover for UTC.</li><li>Sizes and ratios are those of <code>repo stats</code>: deduplication is the logical size over the unique data; compression the plain over the stored blob bytes.</li><li>A cluster backup is incomplete when a part is incomplete, when it has no etcd or manifests snapshot while others of its series do, or when it lacks a volume the previous one had.</li><li>Schema version {}. The same figures: <code>repo report --json</code>.</li></ul></footer>"#,
        r.schema_version
    );
}
