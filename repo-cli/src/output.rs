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

/// The version of the shape of every JSON document the CLI prints, as `schema_version` in
/// each object (in each element of a top-level array): raised when a field changes meaning or
/// goes away, not when one is added.
pub const SCHEMA_VERSION: u32 = 1;

/// Writes a JSON value as one line, stamped with the schema version.
pub fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    line(serde_json::to_string(&stamped(serde_json::to_value(
        value,
    )?))?)?;
    Ok(())
}

/// The value with `schema_version` in it: in the object, or in each object of an array.
pub fn stamped(mut value: serde_json::Value) -> serde_json::Value {
    let stamp = |v: &mut serde_json::Value| {
        if let Some(map) = v.as_object_mut() {
            map.insert("schema_version".into(), SCHEMA_VERSION.into());
        }
    };
    match &mut value {
        serde_json::Value::Array(items) => items.iter_mut().for_each(stamp),
        other => stamp(other),
    }
    value
}

/// A time for people: local, to the second.
pub fn local_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A stored RFC 3339 time for people (local, to the second); as stored when it does not parse.
pub fn local_time_of(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or_else(
        |_| rfc3339.to_string(),
        |t| local_time(&t.with_timezone(&chrono::Utc)),
    )
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

/// A storage time (ms since the epoch) for people, in local time.
pub fn storage_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| format!("{ms} ms"), |t| local_time(&t))
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
