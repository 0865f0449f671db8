//! The record of one fsfreeze, kept in the agent's node-local state directory while the
//! filesystem is frozen, so that an agent killed mid-freeze (OOM, SIGKILL) does not leave the
//! application's filesystem frozen: the next agent on the node reads the record and thaws it.
//!
//! This module is the byte format and the file names, without I/O. A record is a few lines of
//! text, one field per line, so that a damaged record still gives up its mount path:
//!
//! ```text
//! kairn freeze record 1
//! mount /var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount
//! namespace db
//! pvc data
//! backup nightly-1
//! instance kairn-node-agent-x7k2p-61f0c3a2b1
//! frozen-at 2026-05-01T12:00:00.123456Z
//! ```
//!
//! Values are percent-encoded (every byte outside `!`..`~`, and `%` itself), so a path with
//! spaces, newlines or bytes that are not UTF-8 is kept exactly. Unknown fields are ignored.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

/// The first line of every record, with the format's version.
const HEADER: &str = "kairn freeze record 1";

/// A record is a few hundred bytes; anything much longer is not one of ours.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;

/// Who holds a freeze, as its record names it: the agent instance and, when known, the
/// backup and the volume's claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreezeOwner {
    /// The agent instance that froze the filesystem.
    pub instance: String,
    /// The PVC's namespace.
    pub namespace: Option<String>,
    /// The PVC.
    pub pvc: Option<String>,
    /// The VolumeBackup the freeze is for.
    pub backup: Option<String>,
}

/// One frozen filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeRecord {
    /// The mount point, as the agent that froze it saw it.
    pub mount: PathBuf,
    /// Who froze it.
    pub owner: FreezeOwner,
    /// When (just before the freeze).
    pub frozen_at: DateTime<Utc>,
}

/// Why a record cannot be read, and the mount path it names if that much could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// What is wrong with it.
    pub why: String,
    /// The one mount path it names, if any.
    pub mount: Option<PathBuf>,
}

/// A record's bytes.
pub fn encode(record: &FreezeRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(HEADER.as_bytes());
    out.push(b'\n');
    let owner = &record.owner;
    let frozen_at = record
        .frozen_at
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let fields: [(&str, Option<&[u8]>); 6] = [
        ("mount", Some(record.mount.as_os_str().as_bytes())),
        ("namespace", owner.namespace.as_deref().map(str::as_bytes)),
        ("pvc", owner.pvc.as_deref().map(str::as_bytes)),
        ("backup", owner.backup.as_deref().map(str::as_bytes)),
        ("instance", Some(owner.instance.as_bytes())),
        ("frozen-at", Some(frozen_at.as_bytes())),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            out.extend_from_slice(key.as_bytes());
            out.push(b' ');
            escape_into(value, &mut out);
            out.push(b'\n');
        }
    }
    out
}

/// Reads a record. A damaged one (a wrong header, a missing or repeated field, a bad escape or
/// time) still yields its mount path when exactly one mount line decodes.
pub fn decode(bytes: &[u8]) -> Result<FreezeRecord, Unreadable> {
    decode_strictly(bytes).map_err(|why| Unreadable {
        why,
        mount: mount_of_damaged(bytes),
    })
}

fn decode_strictly(bytes: &[u8]) -> Result<FreezeRecord, String> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(format!("longer than {MAX_RECORD_BYTES} bytes"));
    }
    let mut lines = bytes.split(|&b| b == b'\n');
    if lines.next() != Some(HEADER.as_bytes()) {
        return Err(format!("the first line is not {HEADER:?}"));
    }
    let mut fields = Fields::default();
    for (n, line) in lines.enumerate().filter(|(_, l)| !l.is_empty()) {
        let (key, value) = split_field(line).ok_or_else(|| format!("line {}: no value", n + 2))?;
        let value = unescape(value).map_err(|e| format!("line {}: {e}", n + 2))?;
        fields
            .set(key, value)
            .map_err(|e| format!("line {}: {e}", n + 2))?;
    }
    fields.into_record()
}

/// The fields read so far, each at most once.
#[derive(Default)]
struct Fields {
    mount: Option<Vec<u8>>,
    namespace: Option<Vec<u8>>,
    pvc: Option<Vec<u8>>,
    backup: Option<Vec<u8>>,
    instance: Option<Vec<u8>>,
    frozen_at: Option<Vec<u8>>,
}

impl Fields {
    fn set(&mut self, key: &[u8], value: Vec<u8>) -> Result<(), String> {
        let slot = match key {
            b"mount" => &mut self.mount,
            b"namespace" => &mut self.namespace,
            b"pvc" => &mut self.pvc,
            b"backup" => &mut self.backup,
            b"instance" => &mut self.instance,
            b"frozen-at" => &mut self.frozen_at,
            // A later version may add fields; what this one knows is still good.
            _ => return Ok(()),
        };
        if slot.is_some() {
            return Err(format!("{} given twice", String::from_utf8_lossy(key)));
        }
        *slot = Some(value);
        Ok(())
    }

    fn into_record(self) -> Result<FreezeRecord, String> {
        let mount = PathBuf::from(OsStr::from_bytes(&self.mount.ok_or("no mount")?));
        if !mount.is_absolute() {
            return Err(format!("mount {} is not an absolute path", mount.display()));
        }
        let text = |name: &str, v: Option<Vec<u8>>| {
            v.map(|v| String::from_utf8(v).map_err(|_| format!("{name} is not UTF-8")))
                .transpose()
        };
        let instance = text("instance", self.instance)?.ok_or("no instance")?;
        let frozen_at = text("frozen-at", self.frozen_at)?.ok_or("no frozen-at")?;
        let frozen_at = DateTime::parse_from_rfc3339(&frozen_at)
            .map_err(|e| format!("frozen-at {frozen_at:?}: {e}"))?
            .with_timezone(&Utc);
        Ok(FreezeRecord {
            mount,
            owner: FreezeOwner {
                instance,
                namespace: text("namespace", self.namespace)?,
                pvc: text("pvc", self.pvc)?,
                backup: text("backup", self.backup)?,
            },
            frozen_at,
        })
    }
}

/// The mount path of a damaged record: the value of its mount lines when they all decode to
/// the same absolute path, else none (two different paths leave nothing to trust).
fn mount_of_damaged(bytes: &[u8]) -> Option<PathBuf> {
    let mut found: Option<Vec<u8>> = None;
    for line in bytes.split(|&b| b == b'\n') {
        let Some((b"mount", value)) = split_field(line) else {
            continue;
        };
        let value = unescape(value).ok()?;
        match &found {
            Some(earlier) if *earlier != value => return None,
            _ => found = Some(value),
        }
    }
    let mount = PathBuf::from(OsStr::from_bytes(&found?));
    mount.is_absolute().then_some(mount)
}

fn split_field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = line.iter().position(|&b| b == b' ')?;
    Some((&line[..space], &line[space + 1..]))
}

fn escape_into(value: &[u8], out: &mut Vec<u8>) {
    for &b in value {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

fn unescape(value: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'%' {
            if !b.is_ascii_graphic() {
                return Err(format!("byte {b:#04x} is not escaped"));
            }
            out.push(b);
            rest = tail;
            continue;
        }
        let hex = tail
            .get(..2)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or("a % not followed by two hex digits")?;
        out.push(hex);
        rest = &tail[2..];
    }
    Ok(out)
}

/// What a file in the state directory is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A freeze record.
    Record,
    /// A record being written: never renamed, so its freeze never began.
    Unfinished,
    /// Not a file of ours.
    Other,
}

const RECORD_PREFIX: &str = "freeze-";
const RECORD_SUFFIX: &str = ".record";
const UNFINISHED_PREFIX: &str = ".freeze-";
const UNFINISHED_SUFFIX: &str = ".tmp";

/// The name of the record with this unique id.
pub fn record_name(id: &str) -> String {
    format!("{RECORD_PREFIX}{id}{RECORD_SUFFIX}")
}

/// The name a record is written under before it is renamed to [`record_name`].
pub fn unfinished_name(id: &str) -> String {
    format!("{UNFINISHED_PREFIX}{id}{UNFINISHED_SUFFIX}")
}

/// What the file named `name` is.
pub fn kind_of(name: &OsStr) -> FileKind {
    let Some(name) = name.to_str() else {
        return FileKind::Other;
    };
    let is_id =
        |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let between = |prefix: &str, suffix: &str| {
        name.strip_prefix(prefix)
            .and_then(|n| n.strip_suffix(suffix))
            .is_some_and(is_id)
    };
    if between(RECORD_PREFIX, RECORD_SUFFIX) {
        FileKind::Record
    } else if between(UNFINISHED_PREFIX, UNFINISHED_SUFFIX) {
        FileKind::Unfinished
    } else {
        FileKind::Other
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn record() -> FreezeRecord {
        FreezeRecord {
            mount: PathBuf::from("/var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/pv-1/mount"),
            owner: FreezeOwner {
                instance: "kairn-node-agent-x7k2p-61f0c3a2b1".into(),
                namespace: Some("db".into()),
                pvc: Some("data".into()),
                backup: Some("nightly-1".into()),
            },
            frozen_at: DateTime::parse_from_rfc3339("2026-05-01T12:00:00.123456Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn a_record_reads_back_as_written_and_is_plain_text() {
        let r = record();
        let bytes = encode(&r);
        assert_eq!(decode(&bytes).unwrap(), r);
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with("kairn freeze record 1\nmount /var/lib/kubelet/"),
            "{text}"
        );
        assert!(
            text.contains("\nfrozen-at 2026-05-01T12:00:00.123456Z\n"),
            "{text}"
        );
    }

    #[test]
    fn any_path_and_missing_claim_fields_survive_the_round_trip() {
        let mut r = record();
        r.mount = PathBuf::from(OsStr::from_bytes(b"/k/a b\n%41\xff\x00/\xc3\xa9"));
        r.owner = FreezeOwner {
            instance: "agent one".into(),
            ..Default::default()
        };
        let bytes = encode(&r);
        assert_eq!(
            bytes.iter().filter(|&&b| b == b'\n').count(),
            4,
            "one line per field"
        );
        assert_eq!(decode(&bytes).unwrap(), r);
    }

    #[test]
    fn a_damaged_record_still_names_its_mount() {
        let good = String::from_utf8(encode(&record())).unwrap();
        let mount = Some(record().mount);
        let damaged = [
            good.replace("record 1", "record 9"),
            good.replace("instance ", "instanc "),
            good.replace("2026-05-01T", "yesterday "),
            good.replace("pvc data", "pvc d%zz"),
            format!("{good}namespace again\n"),
            format!("{good}{}", "x".repeat(MAX_RECORD_BYTES)),
            good.lines().skip(1).collect::<Vec<_>>().join("\n"),
        ];
        for bytes in &damaged {
            let e = decode(bytes.as_bytes()).unwrap_err();
            assert_eq!(e.mount, mount, "{bytes:?}: {}", e.why);
        }
    }

    #[test]
    fn a_record_with_no_trustworthy_mount_names_none() {
        let good = String::from_utf8(encode(&record())).unwrap();
        let no_mount = [
            good.replace("mount /var", "mount var"),
            format!("{good}mount /elsewhere\n"),
            good.replace("mount /var", "mount /v%2"),
            good.replace("mount /var", "mount\t/var"),
            String::new(),
            "\u{0}\u{1}junk".to_string(),
        ];
        for bytes in &no_mount {
            let e = decode(bytes.as_bytes()).unwrap_err();
            assert_eq!(e.mount, None, "{bytes:?}");
        }
        let repeated =
            format!("{good}mount /var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/pv-1/mount\n");
        assert!(decode(repeated.as_bytes()).unwrap_err().mount.is_some());
    }

    #[test]
    fn unknown_fields_from_a_later_version_are_ignored() {
        let good = String::from_utf8(encode(&record())).unwrap();
        let more = format!("{good}pid 42\n\n");
        assert_eq!(decode(more.as_bytes()).unwrap(), record());
    }

    #[test]
    fn no_mutation_of_a_record_panics() {
        let good = encode(&record());
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % bytes.len().max(1);
                match next() % 3 {
                    0 => bytes[at] = next() as u8,
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at, b"% \n"[(next() % 3) as usize]),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn files_are_told_apart_by_their_names() {
        let id = "18f3a-1c-0";
        assert_eq!(kind_of(OsStr::new(&record_name(id))), FileKind::Record);
        assert_eq!(
            kind_of(OsStr::new(&unfinished_name(id))),
            FileKind::Unfinished
        );
        for other in [
            "freeze-.record",
            "freeze-a/b.record",
            "freeze-x.record~",
            "notes",
            ".freeze-.tmp",
        ] {
            assert_eq!(kind_of(OsStr::new(other)), FileKind::Other, "{other}");
        }
        assert_eq!(
            kind_of(OsStr::from_bytes(b"freeze-\xff.record")),
            FileKind::Other
        );
    }
}
