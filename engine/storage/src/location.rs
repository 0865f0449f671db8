//! Where a repository lives, and how to talk to the store: parsed from the user's words, before
//! any I/O. Documented for users in README.md, "Repository locations".

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use kairn_format::error::{Error, Result};

/// A repository location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory: `/path`, `relative/path` or `local:/path`.
    Local(PathBuf),
    /// An S3 bucket and a key prefix inside it: `s3://bucket/prefix`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix (the repository's root), without slashes at either end.
        prefix: String,
    },
    /// Any other OpenDAL service: `opendal:<service>`, configured by its options alone.
    Opendal {
        /// The OpenDAL scheme, such as `azblob`, `gcs` or `webdav`.
        service: String,
    },
}

impl FromStr for Location {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if !valid_bucket(bucket) {
                return Err(Error::invalid(format!(
                    "bad S3 bucket name {bucket:?} in {s:?}: write s3://bucket/prefix"
                )));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if let Some(service) = s.strip_prefix("opendal:") {
            let service = service.trim_start_matches("//");
            if service.is_empty()
                || !service
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(Error::invalid(format!(
                    "bad OpenDAL service in {s:?}: write opendal:<service>, such as opendal:azblob"
                )));
            }
            return Ok(Self::Opendal {
                service: service.to_string(),
            });
        }
        let path = s.strip_prefix("local:").unwrap_or(s);
        if path.is_empty() {
            return Err(Error::invalid("empty repository location"));
        }
        if let Some((scheme, _)) = path.split_once("://") {
            return Err(Error::invalid(format!(
                "unsupported repository location {s:?}: {scheme}:// is not a known scheme; use a \
                 path, s3://bucket/prefix, or opendal:<service> with -o options"
            )));
        }
        Ok(Self::Local(PathBuf::from(path)))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(p) => write!(f, "{}", p.display()),
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Self::Opendal { service } => write!(f, "opendal:{service}"),
        }
    }
}

fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
}

/// How every command talks to the store: the same for every service.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Retries of a request that failed with a transient error (5xx, timeouts, resets), with
    /// exponential backoff and jitter.
    pub retries: usize,
    /// The limit of one metadata request (stat, list page, delete).
    pub timeout: Duration,
    /// The limit of one read or write of a body chunk; a stalled connection fails after it.
    pub io_timeout: Duration,
    /// Requests in flight at once.
    pub connections: usize,
    /// Bytes per second, in both directions together; `None` for no limit.
    pub bandwidth: Option<u64>,
    /// Service options, `-o key=value`: the keys of [`S3_OPTIONS`] for S3, OpenDAL's own
    /// configuration keys for `opendal:` locations.
    pub options: BTreeMap<String, String>,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            retries: 8,
            timeout: Duration::from_secs(60),
            io_timeout: Duration::from_secs(60),
            connections: 16,
            bandwidth: None,
            options: BTreeMap::new(),
        }
    }
}

/// The options an `s3://` location takes, with what each does.
pub const S3_OPTIONS: &[(&str, &str)] = &[
    (
        "endpoint",
        "the service URL, such as http://127.0.0.1:9000 (default: AWS)",
    ),
    (
        "region",
        "the bucket's region (default: from the environment, else us-east-1)",
    ),
    (
        "virtual-host",
        "true to address the bucket as a host name (default: path style)",
    ),
    (
        "access-key-id",
        "the access key (default: AWS_ACCESS_KEY_ID, profile, or role)",
    ),
    (
        "secret-access-key",
        "the secret key (default: AWS_SECRET_ACCESS_KEY, ...)",
    ),
    ("session-token", "a session token for temporary credentials"),
    ("profile", "the profile of ~/.aws/config to use"),
    (
        "checksum",
        "md5 (default), crc32c or none: sent with every write; Object Lock needs md5",
    ),
    (
        "storage-class",
        "the storage class of new objects, such as STANDARD_IA",
    ),
    (
        "ambient-credentials",
        "false to never read ~/.aws or ask the instance metadata service",
    ),
];

impl StorageOptions {
    /// The value of a service option.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// A boolean service option; `default` when absent.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some("true" | "yes" | "1") => Ok(true),
            Some("false" | "no" | "0") => Ok(false),
            Some(v) => Err(Error::invalid(format!(
                "option {key}={v:?}: use true or false"
            ))),
        }
    }

    /// Refuses options that `allowed` does not name, so a typo never goes unnoticed.
    pub fn check_known(&self, allowed: &[(&str, &str)], what: &str) -> Result<()> {
        for key in self.options.keys() {
            if !allowed.iter().any(|(k, _)| k == key) {
                let names: Vec<&str> = allowed.iter().map(|(k, _)| *k).collect();
                return Err(Error::invalid(format!(
                    "unknown option {key:?} for {what}; known: {}",
                    names.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// Parses one `key=value` option.
pub fn parse_option(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(Error::invalid(format!("bad option {s:?}: write key=value"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            "s3://bucket/a/b/".parse::<Location>().unwrap(),
            Location::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            "s3://bucket".parse::<Location>().unwrap(),
            Location::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            "opendal:azblob".parse::<Location>().unwrap(),
            Location::Opendal {
                service: "azblob".into()
            }
        );
        assert_eq!(
            "local:/x".parse::<Location>().unwrap(),
            Location::Local("/x".into())
        );
        assert_eq!(
            "rel/dir".parse::<Location>().unwrap(),
            Location::Local("rel/dir".into())
        );
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        for bad in [
            "",
            "s3://",
            "s3://UPPER/x",
            "s3://a/x",
            "ftp://host/x",
            "opendal:",
            "opendal:a/b",
        ] {
            assert!(bad.parse::<Location>().is_err(), "{bad}");
        }
    }

    #[test]
    fn options_are_checked() {
        let mut o = StorageOptions::default();
        o.options.insert("endpoint".into(), "http://x".into());
        assert!(o.check_known(S3_OPTIONS, "s3").is_ok());
        o.options.insert("endpont".into(), "http://x".into());
        assert!(o.check_known(S3_OPTIONS, "s3").is_err());
        assert!(parse_option("a=b=c").unwrap() == ("a".into(), "b=c".into()));
        assert!(parse_option("=b").is_err());
        assert!(o.flag("endpoint", false).is_err());
    }
}
