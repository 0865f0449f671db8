//! Exclude patterns, matched as restic users expect: a pattern with a `/` matches the absolute
//! path, one without matches the entry's name as well.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use kairn_format::error::{Error, Result};

/// A compiled set of exclude patterns.
#[derive(Debug, Clone)]
pub struct Excludes {
    by_path: GlobSet,
    by_name: GlobSet,
}

impl Excludes {
    /// Compiles patterns; a bad pattern is an [`crate::ErrorKind::InvalidInput`].
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        for p in patterns
            .iter()
            .map(|p| p.trim_end_matches('/'))
            .filter(|p| !p.is_empty())
        {
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map_err(|e| Error::invalid(format!("bad pattern {p:?}")).with_source(e))?;
            if p.contains('/') {
                by_path.add(glob);
                // "dir/**" style patterns also exclude the directory's contents
                if let Ok(g) = GlobBuilder::new(&format!("{p}/**"))
                    .literal_separator(true)
                    .build()
                {
                    by_path.add(g);
                }
            } else {
                by_name.add(glob);
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

#[cfg(test)]
mod tests {
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
        assert!(Excludes::new(&["a[".into()]).is_err());
    }
}
