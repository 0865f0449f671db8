//! What the caller knows that the repository does not: the time, how often each volume should
//! be backed up, and which volumes should be there at all.

use std::collections::BTreeMap;
use std::time::Duration;

/// A volume that should have snapshots (selected by a schedule), whether or not it has any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedVolume {
    /// Kubernetes cluster, when snapshots record one.
    pub cluster: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// PVC.
    pub pvc: String,
    /// Its own expected interval, if it has one.
    pub interval: Option<Duration>,
}

/// How to build the report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The time ages are measured to.
    pub now: chrono::DateTime<chrono::Utc>,
    /// The interval (RPO) for a source with no better one; none: such sources are `unknown`.
    pub default_interval: Option<Duration>,
    /// Intervals by schedule name: a source whose newest snapshot carries the tag
    /// `schedule:NAME`, or belongs to a cluster backup of series NAME, gets NAME's interval.
    pub schedule_intervals: BTreeMap<String, Duration>,
    /// Volumes that should be there; one without snapshots is shown as never backed up, and
    /// one with an interval of its own gets it.
    pub expected_volumes: Vec<ExpectedVolume>,
    /// The repository location to show.
    pub location: String,
    /// Points kept per source in its history (the newest).
    pub history_limit: usize,
    /// The program that makes the report.
    pub program: String,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            now: chrono::Utc::now(),
            default_interval: None,
            schedule_intervals: BTreeMap::new(),
            expected_volumes: Vec::new(),
            location: String::new(),
            history_limit: 60,
            program: format!("kairn {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// An interval that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad interval {0:?}: use numbers with units w, d, h, min, s, like 24h, 1d12h or 30min")]
pub struct BadInterval(pub String);

/// Parses an interval such as `24h`, `1d12h`, `30min`, `1w`, `90s`.
pub fn parse_interval(text: &str) -> Result<Duration, BadInterval> {
    let bad = || BadInterval(text.to_string());
    let mut rest = text.trim();
    let mut total: u64 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let seconds = match &rest[..unit_len] {
            "w" => 7 * 86_400,
            "d" => 86_400,
            "h" => 3_600,
            "min" => 60,
            "s" => 1,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(seconds)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// An interval for people: `1d 12h`, `30min`.
pub fn format_interval(secs: u64) -> String {
    let mut parts = Vec::new();
    let mut rest = secs;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)] {
        if rest >= size {
            parts.push(format!("{}{unit}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    if parts.is_empty() {
        "0s".to_string()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_and_print() {
        assert_eq!(parse_interval("24h").unwrap().as_secs(), 86_400);
        assert_eq!(parse_interval("1d12h").unwrap().as_secs(), 129_600);
        assert_eq!(parse_interval("30min").unwrap().as_secs(), 1_800);
        assert_eq!(parse_interval("1w").unwrap().as_secs(), 604_800);
        for bad in [
            "",
            "24",
            "h",
            "1m",
            "0h",
            "1.5h",
            "-1h",
            "99999999999999999999w",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format_interval(129_600), "1d 12h");
        assert_eq!(format_interval(1_800), "30min");
        assert_eq!(format_interval(90_061), "1d 1h");
        assert_eq!(format_interval(0), "0s");
    }
}
