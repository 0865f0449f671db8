//! Text for the page: escaping, byte counts, times and ages.

use chrono::{DateTime, FixedOffset, Utc};

/// Escapes text for HTML element content and attribute values (also inside SVG).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A byte count for people: `1.50 GiB`.
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

/// An age for people: `3 d 4 h`, `25 min`, `<1 min`.
pub fn age(secs: u64) -> String {
    match secs {
        0..60 => "<1 min".to_string(),
        60..3_600 => format!("{} min", secs / 60),
        3_600..86_400 => format!("{} h {} min", secs / 3_600, secs % 3_600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

/// Seconds from `time` (RFC 3339) to `now`; 0 for a time in the future or one that does not
/// parse.
pub fn age_secs(time: &str, now: DateTime<Utc>) -> u64 {
    parse_time(time).map_or(0, |t| (now - t).num_seconds().max(0) as u64)
}

/// Parses an RFC 3339 time.
pub fn parse_time(time: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A time in the page's zone, to the minute, with the offset: `2026-12-01 11:15 +01:00`.
pub fn local_time(time: &str, zone: FixedOffset) -> String {
    parse_time(time).map_or_else(
        || time.to_string(),
        |t| {
            t.with_timezone(&zone)
                .format("%Y-%m-%d %H:%M %:z")
                .to_string()
        },
    )
}

/// A date in the page's zone: `2026-12-01`.
pub fn local_date(time: &str, zone: FixedOffset) -> String {
    parse_time(time).map_or_else(
        || time.to_string(),
        |t| t.with_timezone(&zone).format("%Y-%m-%d").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_figures_read_well() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(3 << 30), "3.00 GiB");
        assert_eq!(age(30), "<1 min");
        assert_eq!(age(25 * 60), "25 min");
        assert_eq!(age(3 * 86_400 + 4 * 3_600 + 5), "3 d 4 h");
        let plus_one = FixedOffset::east_opt(3_600).unwrap();
        assert_eq!(
            local_time("2026-12-01T10:15:00.123456789Z", plus_one),
            "2026-12-01 11:15 +01:00"
        );
        assert_eq!(local_time("not a time", plus_one), "not a time");
    }
}
