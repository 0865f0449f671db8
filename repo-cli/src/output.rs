//! Writing to stdout without panicking on a closed pipe (`repo ls | head`).

use std::io::Write;

/// Writes one line to stdout.
pub fn line(text: impl AsRef<str>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_ref().as_bytes())?;
    out.write_all(b"\n")
}

/// Says that a backup wrote its snapshot, and how long it took.
pub fn saved(outcome: &engine::backup::BackupOutcome) -> std::io::Result<()> {
    line(format!(
        "snapshot {} saved in {:.2}s",
        outcome.id.short(),
        outcome.snapshot.summary.duration_secs
    ))
}

/// Writes a JSON value as one line.
pub fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    line(serde_json::to_string(value)?)?;
    Ok(())
}

/// Human-readable byte count: 1.5 GiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// A storage time (ms since the epoch) for people, in UTC.
pub fn storage_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// Warns on stderr (also with --json and --quiet: a skipped file must not go unseen) about
/// snapshot files skipped because they cannot be read, and says how to remove them.
pub fn warn_skipped_snapshots(skipped: &[engine::snapshots::UnreadableFile]) {
    for f in skipped {
        let short = f.name.get(..8).unwrap_or(&f.name);
        eprintln!(
            "warning: skipped snapshot {short}: {}; `repo forget {short}` or `repo repair \
             snapshots` removes it",
            f.reason
        );
    }
}
