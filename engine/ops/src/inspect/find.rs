//! `find`: in which snapshots a file or directory exists, by name or path pattern, by
//! modification time, or by the blobs it uses (restic's `find`, `find --blob/--tree/--pack`).
//!
//! A pattern without `/` is a glob on an entry's name; one that starts with `/` a glob on its
//! whole path in the snapshot; one with a `/` elsewhere a glob on the path's last components
//! (`a/*.log` matches `/srv/a/x.log`). `*` and `?` stop at `/`, `**` crosses it.
//!
//! Snapshots often share subtrees. When a hit does not depend on where an entry is (no path
//! pattern), a tree found to hold no hit holds none wherever it appears, so its id is
//! remembered and it is not read again in the other snapshots.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;

use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::{BlobId, BlobKind, SnapshotId};
use kairn_format::snapshot::Snapshot;
use kairn_format::tree::{Extent, Node, NodeKind, Timestamp};
use kairn_repository::index::Index;
use kairn_repository::read::load_tree;
use kairn_repository::repo::Repository;

/// Name and path globs, compiled.
#[derive(Debug, Clone)]
pub struct Patterns {
    by_name: GlobSet,
    by_path: GlobSet,
}

impl Patterns {
    /// Compiles patterns (see the module documentation); a bad one is invalid input.
    pub fn new(patterns: &[String], ignore_case: bool) -> Result<Self> {
        let mut by_name = GlobSetBuilder::new();
        let mut by_path = GlobSetBuilder::new();
        for raw in patterns {
            let p = if raw.len() > 1 {
                raw.trim_end_matches('/')
            } else {
                raw.as_str()
            };
            if p.is_empty() {
                return Err(Error::invalid("an empty pattern matches nothing"));
            }
            let (text, set) = if p.starts_with('/') {
                (p.to_string(), &mut by_path)
            } else if p.contains('/') {
                (format!("**/{p}"), &mut by_path)
            } else {
                (p.to_string(), &mut by_name)
            };
            let glob = GlobBuilder::new(&text)
                .literal_separator(true)
                .case_insensitive(ignore_case)
                .build()
                .map_err(|e| Error::invalid(format!("bad pattern {raw:?}")).with_source(e))?;
            set.add(glob);
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::invalid("bad patterns").with_source(e))
        };
        Ok(Self {
            by_name: build(by_name)?,
            by_path: build(by_path)?,
        })
    }

    /// True when no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty() && self.by_path.is_empty()
    }

    /// True when some pattern looks at the path, not only the name.
    pub fn uses_path(&self) -> bool {
        !self.by_path.is_empty()
    }

    /// True when the entry `name` at `path` (absolute in the snapshot) matches some pattern.
    pub fn matches(&self, path: &Path, name: &[u8]) -> bool {
        self.by_name.is_match(Path::new(OsStr::from_bytes(name))) || self.by_path.is_match(path)
    }
}

/// What to look for. An entry is a hit when it passes every condition given.
#[derive(Debug, Clone)]
pub struct FindQuery {
    /// Name or path patterns; none means any entry.
    pub patterns: Patterns,
    /// Only entries modified at or after this.
    pub oldest: Option<Timestamp>,
    /// Only entries modified at or before this.
    pub newest: Option<Timestamp>,
    /// Only files whose content uses one of these blobs, and directories whose tree is one;
    /// none means no such condition.
    pub blobs: HashSet<BlobId>,
}

/// One entry found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Absolute path in the snapshot (lossy for names that are not UTF-8).
    pub path: String,
    /// `file`, `dir`, `symlink`, `block-device`, `char-device`, `fifo` or `socket`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A file's size, else 0.
    pub size: u64,
    /// Modification time, RFC 3339 (absent for the root, which has no node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtime: Option<String>,
    /// Permission bits, octal.
    pub mode: String,
    /// Owner and group.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// The blobs searched for that this entry uses (hex ids), when searching by blob.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<String>,
}

/// The hits of one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotHits {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// Its time, RFC 3339.
    pub time: String,
    /// Its host.
    pub host: String,
    /// Its paths.
    pub paths: Vec<String>,
    /// What was found, in path order.
    pub hits: Vec<Hit>,
}

/// A search over many snapshots, remembering between them which trees hold no hit.
pub struct Finder<'a> {
    repo: &'a Repository,
    index: &'a Index,
    query: FindQuery,
    /// Trees known to hold no hit; only kept when a hit does not depend on its path.
    barren: Option<HashSet<BlobId>>,
}

/// A directory being walked.
struct Frame {
    tree: BlobId,
    path: String,
    /// Remaining entries, last first.
    nodes: Vec<Node>,
    found: bool,
}

impl<'a> Finder<'a> {
    /// A finder for `query`.
    pub fn new(repo: &'a Repository, index: &'a Index, query: FindQuery) -> Self {
        let barren = (!query.patterns.uses_path()).then(HashSet::new);
        Self {
            repo,
            index,
            query,
            barren,
        }
    }

    /// The hits in one snapshot, in path order.
    pub fn snapshot(&mut self, id: SnapshotId, snap: &Snapshot) -> Result<SnapshotHits> {
        let mut hits = Vec::new();
        if self.query.patterns.is_empty()
            && self.query.oldest.is_none()
            && self.query.newest.is_none()
            && self.query.blobs.contains(&snap.tree)
        {
            hits.push(Hit {
                path: "/".into(),
                kind: "dir",
                size: 0,
                mtime: None,
                mode: String::new(),
                uid: 0,
                gid: 0,
                blobs: vec![snap.tree.to_hex()],
            });
        }
        self.walk(snap.tree, &mut hits)
            .map_err(|e| e.with_context("snapshot", id.short()))?;
        Ok(SnapshotHits {
            snapshot: id,
            time: snap.time.clone(),
            host: snap.host.clone(),
            paths: snap.paths.clone(),
            hits,
        })
    }

    fn load(&self, tree: BlobId, path: String) -> Result<Frame> {
        let mut nodes = load_tree(self.repo, self.index, &tree)
            .map_err(|e| e.with_context("path", if path.is_empty() { "/" } else { &path }))?
            .nodes;
        nodes.reverse();
        Ok(Frame {
            tree,
            path,
            nodes,
            found: false,
        })
    }

    fn walk(&mut self, root: BlobId, hits: &mut Vec<Hit>) -> Result<()> {
        if self.is_barren(&root) {
            return Ok(());
        }
        let mut stack = vec![self.load(root, String::new())?];
        while let Some(frame) = stack.last_mut() {
            let Some(node) = frame.nodes.pop() else {
                let done = stack.pop();
                if let Some(done) = done {
                    if done.found {
                        if let Some(parent) = stack.last_mut() {
                            parent.found = true;
                        }
                    } else if let Some(barren) = &mut self.barren {
                        barren.insert(done.tree);
                    }
                }
                continue;
            };
            let path = format!("{}/{}", frame.path, node.display_name());
            if let Some(hit) = self.hit(&frame.path, &path, &node) {
                frame.found = true;
                hits.push(hit);
            }
            if let Some(sub) = node.subtree()
                && !self.is_barren(&sub)
            {
                let child = self.load(sub, path)?;
                stack.push(child);
            }
        }
        Ok(())
    }

    fn is_barren(&self, tree: &BlobId) -> bool {
        self.barren.as_ref().is_some_and(|b| b.contains(tree))
    }

    /// The hit `node` at `path` is, if it is one.
    fn hit(&self, dir: &str, path: &str, node: &Node) -> Option<Hit> {
        let q = &self.query;
        if !q.patterns.is_empty() {
            let full =
                Path::new(OsStr::from_bytes(dir.as_bytes())).join(OsStr::from_bytes(&node.name));
            if !q.patterns.matches(&full, &node.name) {
                return None;
            }
        }
        if q.oldest.is_some_and(|t| node.mtime < t) || q.newest.is_some_and(|t| node.mtime > t) {
            return None;
        }
        let mut blobs = Vec::new();
        if !q.blobs.is_empty() {
            blobs = used_blobs(node, &q.blobs);
            if blobs.is_empty() {
                return None;
            }
        }
        Some(Hit {
            path: path.to_string(),
            kind: kind_name(&node.kind),
            size: node.size(),
            mtime: DateTime::from_timestamp(node.mtime.secs, node.mtime.nanos)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            mode: format!("{:o}", node.mode),
            uid: node.uid,
            gid: node.gid,
            blobs,
        })
    }
}

/// The blobs of `wanted` that `node` uses (its content, or its tree), as hex, each once.
fn used_blobs(node: &Node, wanted: &HashSet<BlobId>) -> Vec<String> {
    let mut found: Vec<BlobId> = match &node.kind {
        NodeKind::File { content, .. } => content
            .iter()
            .filter_map(|e| match e {
                Extent::Data { id, .. } if wanted.contains(id) => Some(*id),
                _ => None,
            })
            .collect(),
        NodeKind::Dir { subtree } if wanted.contains(subtree) => vec![*subtree],
        _ => Vec::new(),
    };
    found.sort();
    found.dedup();
    found.iter().map(BlobId::to_hex).collect()
}

/// The type of a node as `find` names it.
pub fn kind_name(kind: &NodeKind) -> &'static str {
    match kind {
        NodeKind::File { .. } => "file",
        NodeKind::Dir { .. } => "dir",
        NodeKind::Symlink { .. } => "symlink",
        NodeKind::BlockDevice { .. } => "block-device",
        NodeKind::CharDevice { .. } => "char-device",
        NodeKind::Fifo => "fifo",
        NodeKind::Socket => "socket",
    }
}

/// Resolves a blob id or unique hex prefix against the index; `kind` narrows to trees or data.
pub fn resolve_blob(index: &Index, name: &str, kind: Option<BlobKind>) -> Result<BlobId> {
    let prefix = hex_prefix(name, "blob")?;
    let mut found = index
        .iter()
        .filter(|(id, loc)| kind.is_none_or(|k| loc.kind == k) && id.to_hex().starts_with(&prefix))
        .map(|(id, _)| id);
    let what = match kind {
        Some(BlobKind::Tree) => "tree",
        _ => "blob",
    };
    match (found.next(), found.next()) {
        (Some(id), None) => Ok(id),
        (None, _) => Err(Error::new(
            ErrorKind::NotFound,
            format!("no {what} {name} in the index"),
        )),
        (Some(_), Some(_)) => Err(Error::invalid(format!(
            "{what} id prefix {name} is ambiguous: give more digits"
        ))),
    }
}

/// Every blob the index places in the pack with this id or unique hex prefix.
pub fn pack_blobs(index: &Index, name: &str) -> Result<HashSet<BlobId>> {
    let prefix = hex_prefix(name, "pack")?;
    let positions: Vec<u32> = index
        .packs()
        .iter()
        .enumerate()
        .filter(|(_, (id, _))| id.to_hex().starts_with(&prefix))
        .filter_map(|(pos, _)| u32::try_from(pos).ok())
        .collect();
    let pos = match positions.as_slice() {
        [pos] => *pos,
        [] => {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no pack {name} in the index"),
            ));
        }
        _ => {
            return Err(Error::invalid(format!(
                "pack id prefix {name} is ambiguous: give more digits"
            )));
        }
    };
    let blobs = index
        .iter()
        .filter(|(_, loc)| loc.pack == pos)
        .map(|(id, _)| id)
        .collect();
    index.intact()?;
    Ok(blobs)
}

fn hex_prefix(name: &str, what: &str) -> Result<String> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(format!("{name:?} is not a {what} id")));
    }
    Ok(name.to_ascii_lowercase())
}

/// Parses a time bound as people type it, in `tz` unless it names its offset: `2026-11-30`,
/// `2026-11-30 14:00`, `2026-11-30 14:00:00` (also with `T`), or RFC 3339. A bare date is the
/// start of that day, or its last instant when `end_of_day` (so `--newest 2026-11-30` takes
/// in the whole day).
pub fn parse_time<Tz: TimeZone>(s: &str, tz: &Tz, end_of_day: bool) -> Result<Timestamp> {
    let s = s.trim();
    let bad = || {
        Error::invalid(format!(
            "{s:?} is not a time: use 2026-11-30, 2026-11-30 14:00:00 or RFC 3339"
        ))
    };
    let utc: DateTime<Utc> = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.with_timezone(&Utc)
    } else {
        let naive = if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            if end_of_day {
                d.and_hms_nano_opt(23, 59, 59, 999_999_999)
            } else {
                d.and_hms_opt(0, 0, 0)
            }
            .ok_or_else(bad)?
        } else {
            [
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M",
                "%Y-%m-%dT%H:%M",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .ok_or_else(bad)?
        };
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            // A repeated local hour (clocks turned back): the earlier for a lower bound, the
            // later for an upper one, so nothing in the hour is left out.
            LocalResult::Ambiguous(a, b) => if end_of_day { b } else { a }.with_timezone(&Utc),
            LocalResult::None => {
                return Err(Error::invalid(format!(
                    "{s:?} does not exist in the local time zone (clocks skipped it)"
                )));
            }
        }
    };
    Ok(Timestamp {
        secs: utc.timestamp(),
        nanos: utc.timestamp_subsec_nanos(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn m(p: &[&str], path: &str, ic: bool) -> bool {
        let pats = Patterns::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>(), ic).unwrap();
        let name = path.rsplit('/').next().unwrap();
        pats.matches(Path::new(path), name.as_bytes())
    }

    #[test]
    fn patterns_match_names_suffixes_and_absolute_paths() {
        assert!(m(&["*.log"], "/var/log/app.log", false));
        assert!(!m(&["*.log"], "/var/log/app.log.1", false));
        assert!(!m(&["*.LOG"], "/var/log/app.log", false));
        assert!(m(&["*.LOG"], "/var/log/app.log", true));
        assert!(m(&["log/*.log"], "/var/log/app.log", false));
        assert!(!m(&["log/*.log"], "/var/log/x/app.log", false));
        assert!(m(&["log/**/*.log"], "/var/log/x/app.log", false));
        assert!(m(&["/var/*/app.log"], "/var/log/app.log", false));
        assert!(!m(&["/log/app.log"], "/var/log/app.log", false));
        assert!(m(&["/var/log/"], "/var/log", false));
        assert!(m(&["secret"], "/a/secret", false));
        assert!(!m(&["secret"], "/a/secret/inner", false));
        assert!(Patterns::new(&["a[".into()], false).is_err());
        assert!(Patterns::new(&["".into()], false).is_err());
        assert!(!Patterns::new(&["x".into()], false).unwrap().uses_path());
        assert!(Patterns::new(&["a/x".into()], false).unwrap().uses_path());
    }

    #[test]
    fn times_parse_in_the_given_zone() {
        let utc = Utc;
        let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
        let day = parse_time("2026-11-30", &utc, false).unwrap();
        assert_eq!(day.secs, 1_795_996_800);
        assert_eq!(day.nanos, 0);
        let end = parse_time("2026-11-30", &utc, true).unwrap();
        assert_eq!(end.secs, 1_795_996_800 + 86_399);
        assert_eq!(end.nanos, 999_999_999);
        let t = parse_time("2026-11-30 14:00:00", &plus2, false).unwrap();
        assert_eq!(t.secs, 1_795_996_800 + 12 * 3600);
        assert_eq!(parse_time("2026-11-30T14:00", &plus2, true).unwrap(), t);
        let rfc = parse_time("2026-11-30T12:00:00Z", &plus2, false).unwrap();
        assert_eq!(rfc, t);
        assert!(parse_time("yesterday", &utc, false).is_err());
        assert!(parse_time("2026-13-01", &utc, false).is_err());
    }

    #[test]
    fn used_blobs_names_content_and_trees() {
        let a = BlobId(kairn_format::id::Id([1; 32]));
        let b = BlobId(kairn_format::id::Id([2; 32]));
        let wanted: HashSet<BlobId> = [a].into_iter().collect();
        let mut node = Node {
            name: b"f".to_vec(),
            kind: NodeKind::File {
                size: 3,
                content: vec![
                    Extent::Data { id: b, len: 1 },
                    Extent::Data { id: a, len: 1 },
                    Extent::Hole { len: 1 },
                    Extent::Data { id: a, len: 1 },
                ],
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            inode: 0,
            device: 0,
            links: 1,
            xattrs: Vec::new(),
        };
        assert_eq!(used_blobs(&node, &wanted), vec![a.to_hex()]);
        node.kind = NodeKind::Dir { subtree: b };
        assert!(used_blobs(&node, &wanted).is_empty());
        node.kind = NodeKind::Dir { subtree: a };
        assert_eq!(used_blobs(&node, &wanted), vec![a.to_hex()]);
    }
}
