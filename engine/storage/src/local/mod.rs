//! The [`Backend`] on a local directory, driven through `std::fs` directly.
//!
//! OpenDAL's `fs` service follows symbolic links, opens whatever sits at a path (a FIFO in
//! place of a pack made every reader block forever), creates files and directories with the
//! umask's modes, and leaves its staged file in `tmp/` when a write fails (a full disk filled
//! `tmp/` until someone emptied it by hand). Here every object is opened with `O_NOFOLLOW` and
//! `O_NONBLOCK` and checked with `fstat`, files are 0600 and directories 0700 whatever the
//! umask, and a failed write removes what it staged.

mod fsops;
mod staging;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;

use super::{Backend, not_found, short};
use kairn_format::FileKind;
use kairn_format::error::{Error, ErrorKind, Result};

pub use fsops::{DIR_MODE, FILE_MODE};
pub use staging::{StagedFile, stale_staged_files};

use fsops::{create_new, make_dirs, millis};

/// Where writes are staged before their rename into place.
pub const TMP_DIR: &str = "tmp";

/// A repository in a local directory.
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    /// A repository in a local directory that must exist.
    pub fn open(root: &Path) -> Result<Self> {
        match fs::metadata(root) {
            Ok(m) if m.is_dir() => Ok(Self::at(root)),
            Ok(_) => Err(Error::new(
                ErrorKind::RepositoryNotFound,
                format!(
                    "there is no kairn repository at {}: not a directory",
                    root.display()
                ),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::new(
                ErrorKind::RepositoryNotFound,
                format!(
                    "there is no kairn repository at {}: it does not exist",
                    root.display()
                ),
            )),
            Err(e) => Err(Error::io(format!("cannot access {}", root.display()), e)),
        }
    }

    /// A repository in a local directory, made (0700) when missing, for `init`.
    pub fn open_or_make(root: &Path) -> Result<Self> {
        match fs::metadata(root) {
            Ok(m) if m.is_dir() => Ok(Self::at(root)),
            Ok(_) => Err(Error::invalid(format!(
                "{} is a file, not a directory: a repository is a directory",
                root.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                make_dirs(root)?;
                Ok(Self::at(root))
            }
            Err(e) => Err(Error::io(format!("cannot access {}", root.display()), e)),
        }
    }

    fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    fn object_path(&self, kind: FileKind, name: &str) -> PathBuf {
        self.root.join(kind.path(name))
    }

    /// Opens an object for reading, refusing anything but a regular file without following a
    /// link and without blocking (a FIFO opened for reading waits for a writer otherwise).
    fn open_object(&self, kind: FileKind, name: &str) -> Result<File> {
        let path = self.object_path(kind, name);
        regular_metadata(&path, kind, name)?;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| open_error(&path, kind, name, e))?;
        // The entry may have been swapped between the check above and the open.
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
        refuse_irregular(&meta, kind, name)?;
        Ok(file)
    }

    /// Writes `data` to a new staged file in `tmp/` and syncs it; removes it on any failure.
    fn stage(&self, name: &str, data: &[u8]) -> Result<PathBuf> {
        let tmp = self.root.join(TMP_DIR);
        if !tmp.is_dir() {
            make_dirs(&tmp)?;
        }
        let staged = tmp.join(format!("{name}.{:016x}", rand::random::<u64>()));
        let result = create_new(&staged).and_then(|mut f| {
            f.write_all(data)
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::io(format!("cannot write {}", staged.display()), e))
        });
        match result {
            Ok(()) => Ok(staged),
            Err(e) => {
                // A full disk must not keep the bytes that did fit (issue 17 §4).
                let _ = fs::remove_file(&staged);
                Err(e)
            }
        }
    }

    fn ensure_parent(&self, path: &Path) -> Result<()> {
        match path.parent() {
            Some(dir) if !dir.is_dir() => make_dirs(dir),
            _ => Ok(()),
        }
    }
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> Result<()> {
        let mut dirs: Vec<String> = FileKind::ALL
            .iter()
            .filter(|k| **k != FileKind::Config)
            .map(|k| k.dir().to_string())
            .collect();
        dirs.push(TMP_DIR.to_string());
        dirs.extend((0..=255u8).map(|i| format!("data/{i:02x}")));
        for dir in dirs {
            make_dirs(&self.root.join(dir))?;
        }
        Ok(())
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        let mut file = self.open_object(kind, name)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(|e| {
            Error::io(format!("cannot read {} {name}", kind.name()), e)
                .with_context("object", kind.path(name))
        })?;
        Ok(data)
    }

    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        if length == 0 {
            return Ok(Vec::new());
        }
        offset
            .checked_add(length)
            .ok_or_else(|| Error::invalid("read range overflows"))?;
        let file = self.open_object(kind, name)?;
        let len = usize::try_from(length).map_err(|_| Error::invalid("read range too large"))?;
        let mut data = vec![0; len];
        match file.read_exact_at(&mut data, offset) {
            Ok(()) => Ok(data),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(Error::corrupt(format!(
                    "{} {name} is shorter than expected: asked for {length} bytes at {offset}",
                    kind.name()
                )))
            }
            Err(e) => Err(Error::io(format!("cannot read {} {name}", kind.name()), e)
                .with_context("object", kind.path(name))),
        }
    }

    fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        let path = self.object_path(kind, name);
        if fs::symlink_metadata(&path).is_ok() {
            return Err(already_exists(kind, name));
        }
        self.ensure_parent(&path)?;
        let staged = self.stage(name, &data)?;
        let placed = rename_no_replace(&staged, &path);
        if placed.is_err() {
            let _ = fs::remove_file(&staged);
        }
        match placed {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(already_exists(kind, name))
            }
            Err(e) => Err(Error::io(format!("cannot store {} {name}", kind.name()), e)
                .with_context("object", kind.path(name))),
        }
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        Ok(regular_metadata(&self.object_path(kind, name), kind, name)?.len())
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        if kind == FileKind::Config {
            return Ok(match self.size(kind, "config") {
                Ok(size) => vec![("config".to_string(), size)],
                Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e),
            });
        }
        let mut out = Vec::new();
        list_dir(&self.root, &self.root.join(kind.dir()), kind, &mut out)?;
        Ok(out)
    }

    fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        // unlink removes a link itself, never its target.
        match fs::remove_file(self.object_path(kind, name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(
                Error::io(format!("cannot delete {} {name}", kind.name()), e)
                    .with_context("object", kind.path(name)),
            ),
        }
    }

    fn create_exclusive(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        let path = self.object_path(kind, name);
        self.ensure_parent(&path)?;
        let mut file = match create_new(&path) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(already_exists(kind, name));
            }
            other => other?,
        };
        file.write_all(&data)
            .and_then(|()| file.sync_all())
            .map_err(|e| {
                Error::io(format!("cannot write {} {name}", kind.name()), e)
                    .with_context("object", kind.path(name))
            })
    }

    fn modified(&self, kind: FileKind, name: &str) -> Result<i64> {
        let meta = regular_metadata(&self.object_path(kind, name), kind, name)?;
        millis(&meta)
    }

    fn remove_stale_staged(&self, max_age: std::time::Duration) -> Result<u64> {
        staging::remove_stale(&self.root.join(TMP_DIR), max_age)
    }
}

/// Renames without replacing: the final step of an atomic create.
fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => return Ok(()),
            // A filesystem without the flag: fall back to check-then-rename (repo-format.md §2).
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if fs::symlink_metadata(to).is_ok() {
        return Err(std::io::ErrorKind::AlreadyExists.into());
    }
    fs::rename(from, to)
}

/// The metadata of an object's own entry (a link is not followed); anything but a regular
/// file is damage.
fn regular_metadata(path: &Path, kind: FileKind, name: &str) -> Result<fs::Metadata> {
    let meta = fs::symlink_metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            not_found(kind, name)
        } else {
            Error::io(format!("cannot stat {}", path.display()), e)
        }
    })?;
    refuse_irregular(&meta, kind, name)?;
    Ok(meta)
}

fn refuse_irregular(meta: &fs::Metadata, kind: FileKind, name: &str) -> Result<()> {
    if meta.file_type().is_file() {
        return Ok(());
    }
    Err(Error::corrupt(format!(
        "{} {} is not a regular file: {}",
        kind.name(),
        short(name),
        describe(meta.file_type())
    ))
    .with_context("object", kind.path(name)))
}

/// What sits where an object should, for messages.
pub fn describe(t: fs::FileType) -> &'static str {
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else {
        "a regular file"
    }
}

fn open_error(path: &Path, kind: FileKind, name: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        return not_found(kind, name);
    }
    // O_NOFOLLOW refuses a link swapped in after the check with ELOOP.
    if e.raw_os_error() == Some(libc::ELOOP) {
        return Error::corrupt(format!(
            "{} {} is not a regular file: a symbolic link",
            kind.name(),
            short(name)
        ))
        .with_context("object", kind.path(name));
    }
    Error::io(format!("cannot open {}", path.display()), e)
}

fn already_exists(kind: FileKind, name: &str) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!("{} {name} already exists", kind.name()),
    )
}

/// Lists objects below `dir` without following links. An entry with an object's name that is
/// not a regular file is listed with size 0, so that readers meet it and report it as damage
/// rather than the object seeming merely missing.
fn list_dir(root: &Path, dir: &Path, kind: FileKind, out: &mut Vec<(String, u64)>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("cannot list {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        let file_type = entry
            .file_type()
            .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        if file_type.is_dir() {
            list_dir(root, &entry.path(), kind, out)?;
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let canonical =
            name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !canonical || entry.path() != root.join(kind.path(&name)) {
            continue; // not ours: a stray or misplaced file, never an object
        }
        let size = if file_type.is_file() {
            entry
                .metadata()
                .map_err(|e| Error::io(format!("cannot stat {}", entry.path().display()), e))?
                .len()
        } else {
            0
        };
        out.push((name, size));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
