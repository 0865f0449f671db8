//! Paths to back up, read from files: restic's `--files-from` (lines, `#` comments and blank
//! lines ignored, surrounding blanks trimmed), `--files-from-verbatim` (every non-empty line as
//! written) and `--files-from-raw` (NUL-separated, as `find -print0` writes: any byte but NUL).

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// How a list file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `--files-from`.
    Lines,
    /// `--files-from-verbatim`.
    Verbatim,
    /// `--files-from-raw`.
    Raw,
}

impl ListKind {
    fn flag(self) -> &'static str {
        match self {
            Self::Lines => "--files-from",
            Self::Verbatim => "--files-from-verbatim",
            Self::Raw => "--files-from-raw",
        }
    }
}

/// The paths a list holds.
pub fn parse(kind: ListKind, bytes: &[u8]) -> Vec<PathBuf> {
    let path = |b: &[u8]| PathBuf::from(OsStr::from_bytes(b));
    match kind {
        ListKind::Raw => bytes
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(path)
            .collect(),
        ListKind::Verbatim => lines(bytes).filter(|l| !l.is_empty()).map(path).collect(),
        ListKind::Lines => lines(bytes)
            .map(<[u8]>::trim_ascii)
            .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
            .map(path)
            .collect(),
    }
}

/// Lines without their `\n` or `\r\n`.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// Reads the list `file` (`-` for standard input, which may be read once).
pub fn read(kind: ListKind, file: &Path, stdin_taken: &mut bool) -> Result<Vec<PathBuf>> {
    let bytes = if file.as_os_str() == "-" {
        if std::mem::replace(stdin_taken, true) {
            bail!(crate::exit::UsageError(
                "standard input (-) can be given to only one --files-from* option".into()
            ));
        }
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .context("cannot read standard input")?;
        buf
    } else {
        std::fs::read(file)
            .with_context(|| format!("cannot read {} {}", kind.flag(), file.display()))?
    };
    let mut paths = parse(kind, &bytes);
    if kind == ListKind::Lines {
        // restic skips, with a warning, what a --files-from line does not find.
        paths.retain(|p| {
            let found = std::fs::symlink_metadata(p).is_ok();
            if !found {
                eprintln!(
                    "warning: {} (from --files-from {}) does not exist, skipped",
                    p.display(),
                    file.display()
                );
            }
            found
        });
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(paths: Vec<PathBuf>) -> Vec<Vec<u8>> {
        paths
            .into_iter()
            .map(|p| p.into_os_string().into_encoded_bytes())
            .collect()
    }

    #[test]
    fn lines_skip_comments_and_blanks_and_trim() {
        let text = b"# a comment\n/srv/a b\n\n   \n  /srv/c  \r\n#/srv/d\n/srv/e";
        assert_eq!(
            strings(parse(ListKind::Lines, text)),
            vec![b"/srv/a b".to_vec(), b"/srv/c".to_vec(), b"/srv/e".to_vec()]
        );
    }

    #[test]
    fn verbatim_keeps_lines_as_written() {
        let text = b"# not a comment\n  spaced \n\n/x\r\n";
        assert_eq!(
            strings(parse(ListKind::Verbatim, text)),
            vec![
                b"# not a comment".to_vec(),
                b"  spaced ".to_vec(),
                b"/x".to_vec()
            ]
        );
    }

    #[test]
    fn raw_splits_on_nul_only() {
        let text = b"/a\nb\0# c\0\0/\xff\0";
        assert_eq!(
            strings(parse(ListKind::Raw, text)),
            vec![b"/a\nb".to_vec(), b"# c".to_vec(), b"/\xff".to_vec()]
        );
    }
}
