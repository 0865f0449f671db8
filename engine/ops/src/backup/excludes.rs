//! What a backup leaves out, with restic's rules: glob patterns (a pattern with a `/` matches
//! the absolute path, one without matches the entry's name as well; `--iexclude` ignoring case),
//! files over a size, and the contents of directories marked by a tag file
//! (`--exclude-if-present NAME[:HEADER]`, `--exclude-caches`).
//!
//! The matching is pure; only [`Filters::marks`] reads the tag files it is asked about.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use kairn_format::error::{Error, Result};

/// The Cache Directory Tagging Standard's tag (<https://bford.info/cachedir/>), as the
/// `NAME:HEADER` that `--exclude-caches` stands for.
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG:Signature: 8a477f597d28d172789f06886806bc55";

/// A compiled set of exclude patterns.
#[derive(Debug, Clone)]
pub struct Excludes {
    by_path: GlobSet,
    by_name: GlobSet,
}

impl Excludes {
    /// Compiles patterns; a bad pattern is an [`crate::ErrorKind::InvalidInput`].
    pub fn new(patterns: &[String]) -> Result<Self> {
        Self::with_insensitive(patterns, &[])
    }

    /// Compiles `patterns`, matched as written, and `insensitive` ones, matched ignoring case
    /// (restic's `--iexclude`).
    pub fn with_insensitive(patterns: &[String], insensitive: &[String]) -> Result<Self> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        let given = patterns
            .iter()
            .map(|p| (p, false))
            .chain(insensitive.iter().map(|p| (p, true)));
        for (p, nocase) in given {
            let p = p.trim_end_matches('/');
            if p.is_empty() {
                continue;
            }
            let glob = |text: &str| {
                GlobBuilder::new(text)
                    .literal_separator(true)
                    .case_insensitive(nocase)
                    .build()
                    .map_err(|e| Error::invalid(format!("bad pattern {p:?}")).with_source(e))
            };
            if p.contains('/') {
                by_path.add(glob(p)?);
                // "dir/**" style patterns also exclude the directory's contents
                by_path.add(glob(&format!("{p}/**"))?);
            } else {
                by_name.add(glob(p)?);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::invalid("bad patterns").with_source(e))
        };
        Ok(Self {
            by_path: build(by_path)?,
            by_name: build(by_name)?,
        })
    }

    /// Matches nothing.
    pub fn none() -> Self {
        Self {
            by_path: GlobSet::empty(),
            by_name: GlobSet::empty(),
        }
    }

    /// True when `path` (absolute, or relative to a restore root) is excluded.
    pub fn matches(&self, path: &Path) -> bool {
        if self.by_path.is_match(path) {
            return true;
        }
        !self.by_name.is_empty()
            && path
                .file_name()
                .is_some_and(|n| self.by_name.is_match(Path::new(n)))
    }

    /// True when no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty() && self.by_name.is_empty()
    }
}

/// A tag file that marks a directory whose contents are left out: `NAME`, or `NAME:HEADER`
/// when the file must begin with `HEADER` (a file with another start marks nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFile {
    name: Vec<u8>,
    header: Vec<u8>,
}

impl TagFile {
    /// Parses `NAME[:HEADER]`, split at the first `:` as restic does.
    pub fn parse(spec: &str) -> Result<Self> {
        let (name, header) = spec.split_once(':').unwrap_or((spec, ""));
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(Error::invalid(format!(
                "--exclude-if-present {spec:?}: the tag must be a file name, optionally \
                 followed by :HEADER"
            )));
        }
        Ok(Self {
            name: name.as_bytes().to_vec(),
            header: header.as_bytes().to_vec(),
        })
    }

    /// True when a tag file whose first bytes are `start` (at most the header's length) marks
    /// its directory.
    pub fn accepts(&self, start: &[u8]) -> bool {
        start.len() >= self.header.len() && start[..self.header.len()] == self.header[..]
    }
}

/// True when entry `name` of a directory marked by `marks` is kept: only the tag files
/// themselves are, as in restic (the tag stays, so a restore shows why the rest is missing).
pub fn kept_in_marked(marks: &[&TagFile], name: &[u8]) -> bool {
    marks.iter().all(|t| t.name == name)
}

/// Everything a file-system backup leaves out.
#[derive(Debug, Clone)]
pub struct Filters {
    pub(crate) excludes: Excludes,
    larger_than: Option<u64>,
    tags: Vec<TagFile>,
}

impl Filters {
    /// From the options' patterns, size limit and tag files; a bad one is
    /// [`crate::ErrorKind::InvalidInput`].
    pub fn new(
        excludes: &[String],
        iexcludes: &[String],
        larger_than: Option<u64>,
        if_present: &[String],
    ) -> Result<Self> {
        Ok(Self {
            excludes: Excludes::with_insensitive(excludes, iexcludes)?,
            larger_than,
            tags: if_present
                .iter()
                .map(|s| TagFile::parse(s))
                .collect::<Result<_>>()?,
        })
    }

    /// Leaves out nothing.
    pub fn none() -> Self {
        Self {
            excludes: Excludes::none(),
            larger_than: None,
            tags: Vec::new(),
        }
    }

    /// True when the pattern rules leave out the entry at `path`.
    pub fn excludes_path(&self, path: &Path) -> bool {
        self.excludes.matches(path)
    }

    /// True when a regular file of `size` bytes is over the size limit (other entries never are).
    pub fn too_large(&self, is_file: bool, size: u64) -> bool {
        is_file && self.larger_than.is_some_and(|limit| size > limit)
    }

    /// The tag files among `names` (the entries of directory `dir`) that mark it. Reads the
    /// start of each candidate; one that cannot be read marks nothing.
    pub fn marks(&self, dir: &Path, names: &[Vec<u8>]) -> Vec<&TagFile> {
        self.tags
            .iter()
            .filter(|t| names.contains(&t.name))
            .filter(|t| {
                if t.header.is_empty() {
                    return true;
                }
                let tag = dir.join(std::ffi::OsStr::from_bytes(&t.name));
                let mut start = Vec::with_capacity(t.header.len());
                open_regular(&tag)
                    .and_then(|f| f.take(t.header.len() as u64).read_to_end(&mut start))
                    .is_ok_and(|_| t.accepts(&start))
            })
            .collect()
    }

    /// Drops from `names` (the entries of `dir`) what a tag file in it leaves out.
    pub fn drop_marked(&self, dir: &Path, names: &mut Vec<Vec<u8>>) {
        if self.tags.is_empty() {
            return;
        }
        let marks = self.marks(dir, names);
        if !marks.is_empty() {
            names.retain(|n| kept_in_marked(&marks, n));
        }
    }
}

/// Opens a tag file only if it is a regular file, never following a link and never blocking:
/// a tenant's FIFO named `CACHEDIR.TAG` must not hang the backup, nor a link lead elsewhere.
fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn name_and_path_patterns() {
        let ex = Excludes::new(&["*.log".into(), "/srv/cache".into(), "tmp?".into()]).unwrap();
        assert!(ex.matches(Path::new("/a/b/x.log")));
        assert!(ex.matches(Path::new("/srv/cache")));
        assert!(ex.matches(Path::new("/srv/cache/deep/file")));
        assert!(ex.matches(Path::new("/a/tmp1")));
        assert!(!ex.matches(Path::new("/srv/cachex")));
        assert!(!ex.matches(Path::new("/a/b/x.logs")));
        assert!(!ex.matches(Path::new("/a/b/X.LOG")));
        assert!(Excludes::new(&["a[".into()]).is_err());
    }

    #[test]
    fn insensitive_patterns_ignore_case_and_the_others_do_not() {
        let ex = Excludes::with_insensitive(&["*.tmp".into()], &["*.JPG".into(), "/Srv/X".into()])
            .unwrap();
        assert!(ex.matches(Path::new("/a/photo.jpg")));
        assert!(ex.matches(Path::new("/a/photo.JpG")));
        assert!(ex.matches(Path::new("/srv/x/deep")));
        assert!(ex.matches(Path::new("/a/b.tmp")));
        assert!(!ex.matches(Path::new("/a/b.TMP")));
        assert!(!ex.matches(Path::new("/a/photo.jpeg")));
        assert!(Excludes::with_insensitive(&[], &["[".into()]).is_err());
    }

    #[test]
    fn tag_specs_and_headers() {
        let cache = TagFile::parse(CACHEDIR_TAG).unwrap();
        assert_eq!(cache.name, b"CACHEDIR.TAG");
        assert!(cache.accepts(b"Signature: 8a477f597d28d172789f06886806bc55"));
        assert!(!cache.accepts(b"Signature: 8a477f597d28d172789f06886806bc5"));
        assert!(!cache.accepts(b"signature: 8a477f597d28d172789f06886806bc55"));
        // A header may itself hold a colon: only the first one splits.
        let t = TagFile::parse(".nobackup:a:b").unwrap();
        assert_eq!(
            (t.name.as_slice(), t.header.as_slice()),
            (&b".nobackup"[..], &b"a:b"[..])
        );
        assert!(TagFile::parse(".nobackup").unwrap().accepts(b""));
        for bad in ["", ":x", "a/b", "..", "."] {
            assert!(TagFile::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_marked_directory_keeps_only_its_tag_files() {
        let a = TagFile::parse("A").unwrap();
        let b = TagFile::parse("B").unwrap();
        assert!(kept_in_marked(&[&a], b"A"));
        assert!(!kept_in_marked(&[&a], b"B"));
        assert!(!kept_in_marked(&[&a], b"data"));
        // Marked by both: each tag is left out by the other's rule, as restic does.
        assert!(!kept_in_marked(&[&a, &b], b"A"));
        assert!(kept_in_marked(&[], b"data"));
    }

    #[test]
    fn size_limit_applies_to_regular_files_only() {
        let f = Filters::new(&[], &[], Some(100), &[]).unwrap();
        assert!(!f.too_large(true, 100));
        assert!(f.too_large(true, 101));
        assert!(!f.too_large(false, 1 << 30));
        assert!(!Filters::none().too_large(true, u64::MAX));
    }

    #[test]
    fn a_planted_fifo_or_link_named_like_a_tag_marks_nothing_and_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real-tag");
        std::fs::write(&real, "Signature: 8a477f597d28d172789f06886806bc55\n").unwrap();
        let f = Filters::new(&[], &[], None, &[CACHEDIR_TAG.into()]).unwrap();
        let names = vec![b"CACHEDIR.TAG".to_vec(), b"data".to_vec()];
        // A FIFO with no writer: opening it for reading would block the walk forever.
        nix::unistd::mkfifo(
            &dir.path().join("CACHEDIR.TAG"),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
        let mut kept = names.clone();
        f.drop_marked(dir.path(), &mut kept);
        assert_eq!(kept, names);
        // A link to a valid tag elsewhere is not followed.
        std::fs::remove_file(dir.path().join("CACHEDIR.TAG")).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("CACHEDIR.TAG")).unwrap();
        let mut kept = names.clone();
        f.drop_marked(dir.path(), &mut kept);
        assert_eq!(kept, names);
    }

    #[test]
    fn marks_read_the_tag_header() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55\n# x",
        )
        .unwrap();
        std::fs::write(dir.path().join("data"), "x").unwrap();
        let f = Filters::new(&[], &[], None, &[CACHEDIR_TAG.into()]).unwrap();
        let mut names = vec![b"CACHEDIR.TAG".to_vec(), b"data".to_vec()];
        f.drop_marked(dir.path(), &mut names);
        assert_eq!(names, vec![b"CACHEDIR.TAG".to_vec()]);
        std::fs::write(dir.path().join("CACHEDIR.TAG"), "Signature: wrong").unwrap();
        let mut names = vec![b"CACHEDIR.TAG".to_vec(), b"data".to_vec()];
        f.drop_marked(dir.path(), &mut names);
        assert_eq!(names.len(), 2);
    }
}
