//! `repo report`: the restore-readiness report, as one self-contained HTML page (`--html`),
//! as JSON (`--json`), or as a short table.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Offset;
use clap::Args;
use report::options::format_interval;
use report::{ExpectedVolume, ReportOptions, parse_interval};

use crate::args::Global;
use crate::output;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write the page to this file: one HTML file with everything inline, that opens offline
    /// (written to a temporary file beside it, then renamed over it).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// The most time that may pass between two snapshots of a source (its RPO) when no schedule
    /// or volume interval applies: 24h, 1d12h, 30min, 1w.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = interval)]
    expect_interval: Duration,
    /// The interval of a schedule, NAME=DURATION (repeatable): for sources whose newest snapshot
    /// is tagged `schedule:NAME` or belongs to a cluster backup of series NAME.
    #[arg(long = "schedule-interval", value_name = "NAME=DURATION", value_parser = schedule_interval)]
    schedule_intervals: Vec<(String, Duration)>,
    /// A volume that should have snapshots, NAMESPACE/PVC (repeatable): one that has none is
    /// shown as never backed up.
    #[arg(long = "expect-volume", value_name = "NAMESPACE/PVC", value_parser = volume)]
    expect_volumes: Vec<ExpectedVolume>,
}

fn interval(s: &str) -> std::result::Result<Duration, String> {
    parse_interval(s).map_err(|e| e.to_string())
}

fn schedule_interval(s: &str) -> std::result::Result<(String, Duration), String> {
    let (name, d) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: use NAME=DURATION, like nightly=24h"))?;
    Ok((name.to_string(), interval(d)?))
}

fn volume(s: &str) -> std::result::Result<ExpectedVolume, String> {
    match s.split_once('/') {
        Some((ns, pvc)) if !ns.is_empty() && !pvc.is_empty() && !pvc.contains('/') => {
            Ok(ExpectedVolume {
                cluster: None,
                namespace: ns.to_string(),
                pvc: pvc.to_string(),
                interval: None,
            })
        }
        _ => Err(format!("{s:?}: use NAMESPACE/PVC")),
    }
}

pub fn run(g: &Global, a: ReportArgs) -> Result<()> {
    let (repo, index) = g.open_indexed()?;
    let opts = ReportOptions {
        default_interval: Some(a.expect_interval),
        schedule_intervals: a.schedule_intervals.into_iter().collect(),
        expected_volumes: a.expect_volumes,
        location: g.repo.clone().unwrap_or_default(),
        ..Default::default()
    };
    let report = report::collect(&repo, &index, &opts)?;
    for u in &report.unreadable {
        let short = u.name.get(..8).unwrap_or(&u.name);
        eprintln!(
            "warning: {} file {short} cannot be read and is not believed: {}",
            u.kind, u.reason
        );
    }
    if let Some(path) = &a.html {
        let zone = chrono::Local::now().offset().fix();
        write_atomically(path, report::render(&report, zone).as_bytes())?;
    }
    if g.json {
        return output::json(&report);
    }
    if a.html.is_none() && !g.quiet {
        print_table(&report)?;
    }
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path`, flushes it, and renames it over `path`, so
/// a reader never sees half a page.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("--html {}: give a file name", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

fn print_table(r: &report::Report) -> Result<()> {
    output::line(format!(
        "{:<16}  {:<32}  {:<8}  {:>12}  {:>10}  Last verified restore",
        "Status", "Source", "Last", "Age", "Expected"
    ))?;
    for s in &r.sources {
        let (id, age) = s.last.as_ref().map_or(("-".into(), "-".into()), |l| {
            (l.short_id.clone(), report::text::age(l.age_secs))
        });
        let restore = s
            .last_verified_restore
            .as_ref()
            .map_or("none recorded".into(), |v| {
                format!("{} ago ({:?})", report::text::age(v.age_secs), v.outcome)
            });
        output::line(format!(
            "{:<16}  {:<32}  {id:<8}  {age:>12}  {:>10}  {restore}",
            s.status.label(),
            s.label,
            s.expected_interval_secs.map_or("-".into(), format_interval)
        ))?;
    }
    let incomplete = r.summary.cluster_backups_incomplete;
    output::line(format!(
        "{} source(s), {} late, {} never backed up; {} cluster backup(s), {incomplete} incomplete",
        r.sources.len(),
        r.summary.late,
        r.summary.never,
        r.cluster_backups.len()
    ))?;
    let check = r.operations.last_check.as_ref().map_or_else(
        || "not recorded".to_string(),
        |c| format!("{} ago ({:?})", report::text::age(c.age_secs), c.outcome),
    );
    output::line(format!("last check: {check}"))?;
    Ok(())
}
