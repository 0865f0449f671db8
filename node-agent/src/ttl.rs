//! Finished VolumeBackups, VolumeRestores and ClusterBackups expire: an object whose work ended
//! more than its `spec.ttl` ago is deleted, so a cluster that backs up every hour does not pile
//! up thousands of objects. The snapshots stay; only the objects go (retention removes data).
//! Velero keeps its Backups 30 days by default; so does Kairn.

use chrono::{DateTime, Duration, Utc};

/// How long a finished object is kept when its `spec.ttl` says nothing: 30 days.
pub const DEFAULT_TTL: &str = "720h";

/// Parses a duration the way Kubernetes resources write them (Go's `time.ParseDuration`
/// without fractions): one or more `<number><unit>`, units `h`, `m`, `s`, such as `720h`,
/// `1h30m` or `90s`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 720h, 1h30m or 90s");
    let mut total = Duration::zero();
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        let part = match c {
            'h' => Duration::try_hours(n),
            'm' => Duration::try_minutes(n),
            's' => Duration::try_seconds(n),
            _ => None,
        }
        .ok_or_else(bad)?;
        total = total.checked_add(&part).ok_or_else(bad)?;
    }
    if !digits.is_empty() || text.trim().is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// True when an object that finished at `finished` (RFC 3339) has outlived `ttl` (its
/// `spec.ttl`, or [`DEFAULT_TTL`]) at `now`. An object that has not finished, or whose times
/// cannot be read, never expires: deleting is not done on a guess.
pub fn expired(finished: Option<&str>, ttl: Option<&str>, now: DateTime<Utc>) -> bool {
    let Some(end) = finished.and_then(|f| DateTime::parse_from_rfc3339(f).ok()) else {
        return false;
    };
    let Ok(keep) = parse(ttl.unwrap_or(DEFAULT_TTL)) else {
        return false;
    };
    end.with_timezone(&Utc) + keep <= now
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_parse_as_kubernetes_writes_them() {
        assert_eq!(parse("720h").unwrap(), Duration::days(30));
        assert_eq!(parse("1h30m").unwrap(), Duration::minutes(90));
        assert_eq!(parse("90s").unwrap(), Duration::seconds(90));
        assert_eq!(parse("0s").unwrap(), Duration::zero());
        for bad in ["", "h", "10", "10d", "1.5h", "-1h", "99999999999999999999h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_finished_object_past_its_ttl_expires() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(expired(Some("2026-10-30T12:00:00Z"), None, now));
        assert!(!expired(Some("2026-11-01T12:00:00Z"), None, now));
        assert!(expired(Some("2026-11-30T11:59:00Z"), Some("1m"), now));
        assert!(!expired(Some("2026-11-30T11:59:30Z"), Some("1m"), now));
        assert!(!expired(None, Some("0s"), now));
        assert!(!expired(Some("yesterday"), Some("0s"), now));
        assert!(!expired(Some("2020-01-01T00:00:00Z"), Some("forever"), now));
    }
}
