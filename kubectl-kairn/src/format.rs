//! Small formatting helpers: aligned tables, sizes, ages and durations, the way kubectl prints.

use chrono::{DateTime, Utc};

/// Rows printed as aligned columns, with an upper-case header, like `kubectl get`.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with this header.
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| h.to_uppercase()).collect()],
        }
    }

    /// Adds a row; missing cells print as `<none>`.
    pub fn row(&mut self, cells: Vec<String>) {
        let cells = cells
            .into_iter()
            .map(|c| if c.is_empty() { "<none>".into() } else { c })
            .collect();
        self.rows.push(cells);
    }

    /// True when only the header is there.
    pub fn is_empty(&self) -> bool {
        self.rows.len() <= 1
    }

    /// The table as text, columns three spaces apart, the last one not padded.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                let cells = self.rows.iter().filter_map(|r| r.get(c));
                cells.map(|s| s.chars().count()).max().unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count() + 3;
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Bytes in binary units: `0 B`, `1.5 KiB`, `2.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A span of seconds as kubectl shows ages: `45s`, `12m`, `3h4m`, `5d`.
pub fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60)
            .trim_end_matches("0s")
            .to_string(),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60)
            .trim_end_matches("0m")
            .to_string(),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600)
            .trim_end_matches("0h")
            .to_string(),
    }
}

/// Parses an RFC 3339 time.
pub fn time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// How long ago `then` was, as an age.
pub fn age(then: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    then.map(|t| span((now - t).num_seconds()))
        .unwrap_or_default()
}

/// Seconds between two RFC 3339 times, when both are known.
pub fn duration(started: Option<&str>, finished: Option<&str>) -> Option<i64> {
    let (a, b) = (time(started?)?, time(finished?)?);
    Some((b - a).num_seconds())
}

/// A time in the local zone, for people.
pub fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_mark_missing_cells() {
        let mut t = Table::new(&["name", "phase"]);
        t.row(vec!["a-long-name".into(), "Completed".into()]);
        t.row(vec!["b".into(), String::new()]);
        assert_eq!(
            t.render(),
            "NAME          PHASE\na-long-name   Completed\nb             <none>\n"
        );
    }

    #[test]
    fn sizes_and_spans_read_like_kubectl() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(span(45), "45s");
        assert_eq!(span(600), "10m");
        assert_eq!(span(3 * 3600 + 240), "3h4m");
        assert_eq!(span(5 * 86_400), "5d");
        assert_eq!(span(-3), "0s");
        assert_eq!(
            duration(Some("2026-01-01T00:00:00Z"), Some("2026-01-01T00:01:30Z")),
            Some(90)
        );
        assert_eq!(duration(None, Some("2026-01-01T00:01:30Z")), None);
    }
}
