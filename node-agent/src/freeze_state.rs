//! The agent's node-local state directory (`--state-dir`, a hostPath that outlives the agent's
//! pod), and the freeze records in it: see [`crate::freeze_record`] for their format.
//!
//! A record is durable before its freeze begins: written under a temporary name, fsynced,
//! renamed, and the directory fsynced. The agent that writes it holds an exclusive `flock` on
//! it while the filesystem is frozen; the kernel drops the lock when the process dies however
//! it dies, so a record nobody holds is a freeze its agent left behind, and a held one belongs
//! to a live agent (two agents on a node, as during a surge rollout) and is left alone.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::freeze_record::{self, FileKind, FreezeRecord, MAX_RECORD_BYTES};

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

/// A record on disk whose freeze this process holds (the lock goes with the open file).
#[derive(Debug)]
pub struct HeldRecord {
    path: PathBuf,
    _locked: File,
}

/// A file found in the state directory at start-up.
#[derive(Debug)]
pub struct FoundFile {
    /// Its name in the directory.
    pub name: OsString,
    /// Record or unfinished record.
    pub kind: FileKind,
    /// What it holds, or why it was not read.
    pub content: Content,
}

/// What a file found at start-up holds.
#[derive(Debug)]
pub enum Content {
    /// Its bytes (at most one more than a record may have).
    Bytes(Vec<u8>),
    /// A live process holds its lock: its freeze is not ours to undo.
    Held,
    /// Not a regular file, or it could not be opened or read.
    Unusable(String),
}

/// A found file, opened and locked by the start-up thaw for as long as it is handled.
#[derive(Debug)]
pub struct Claimed {
    /// What was found.
    pub found: FoundFile,
    _locked: Option<File>,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A name no other freeze, in this process or any other, has.
fn unique_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:x}-{:x}-{seq:x}", std::process::id())
}

impl StateDir {
    /// The state directory at `path` (created when first written to).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `record` durably and holds it. Nothing is left behind when this fails.
    pub fn record(&self, record: &FreezeRecord) -> std::io::Result<HeldRecord> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)?;
        let id = unique_id();
        let unfinished = self.path.join(freeze_record::unfinished_name(&id));
        let path = self.path.join(freeze_record::record_name(&id));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&unfinished)?;
        let written = file
            .lock()
            .and_then(|()| file.write_all(&freeze_record::encode(record)))
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&unfinished, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&unfinished);
            return Err(e);
        }
        // Without the directory's fsync the rename may not survive a crash of the node.
        if let Err(e) = sync_dir(&self.path) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(HeldRecord {
            path,
            _locked: file,
        })
    }

    /// Every record and unfinished record, each opened and locked (unless a live process
    /// holds it). Other files are left out. `Ok(empty)` when the directory does not exist.
    pub fn claim_all(&self) -> std::io::Result<Vec<Claimed>> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut claimed = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            let kind = freeze_record::kind_of(&name);
            if kind == FileKind::Other {
                continue;
            }
            let (content, locked) = match claim(&self.path.join(&name)) {
                Ok(Some((bytes, file))) => (Content::Bytes(bytes), Some(file)),
                Ok(None) => (Content::Held, None),
                Err(e) => (Content::Unusable(e.to_string()), None),
            };
            claimed.push(Claimed {
                found: FoundFile {
                    name,
                    kind,
                    content,
                },
                _locked: locked,
            });
        }
        claimed.sort_by(|a, b| a.found.name.cmp(&b.found.name));
        Ok(claimed)
    }

    /// Removes a file found by [`StateDir::claim_all`], durably.
    pub fn remove(&self, name: &OsString) -> std::io::Result<()> {
        std::fs::remove_file(self.path.join(name))?;
        sync_dir(&self.path)
    }
}

impl HeldRecord {
    /// Where the record is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the record once its filesystem is thawed. A record that stays behind only
    /// costs the next agent a thaw of a filesystem that is not frozen.
    pub fn clear(self) {
        let removed = std::fs::remove_file(&self.path).and_then(|()| match self.path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        });
        if let Err(e) = removed {
            tracing::warn!(record = %self.path.display(), "cannot remove a freeze record: {e}");
        }
    }
}

/// Opens, locks and reads a found file: `None` when a live process holds it. The file is
/// opened without following a link and without blocking (a FIFO planted here must not hang
/// the agent's start-up), and only a regular file is read.
fn claim(path: &Path) -> std::io::Result<Option<(Vec<u8>, File)>> {
    use nix::fcntl::OFlag;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(e)) => return Err(e),
    }
    let mut bytes = Vec::new();
    (&file)
        .take(MAX_RECORD_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(Some((bytes, file)))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
