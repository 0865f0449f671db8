//! `fsfreeze` around a backup: the filesystem of a volume is frozen (FIFREEZE) so the files are
//! read in one consistent state, and thawed (FITHAW) afterwards, always. The ioctls are issued
//! by util-linux's `fsfreeze` (the workspace forbids unsafe code, which a raw ioctl needs).
//!
//! A frozen filesystem blocks every writer on it, the application included, so the thaw is
//! guaranteed three times over: by the guard's `Drop` (any error or panic on the way), by a
//! watchdog thread that thaws when the time limit passes even if the guard is never dropped,
//! and, for when the agent itself dies (OOM kill, SIGKILL), by a record of the freeze in the
//! node-local state directory, made durable before the freeze, which the next agent on the
//! node reads at start-up to thaw what was left frozen ([`crate::freeze_recovery`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::freeze_record::{FreezeOwner, FreezeRecord};
use crate::freeze_state::{HeldRecord, StateDir};

/// Why a freeze or thaw failed.
#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    /// The path is not the root of its own filesystem: freezing it would freeze its parent's
    /// filesystem (perhaps the node's root), which is never what is meant.
    #[error("{0} is not a filesystem of its own (not a mount point); not freezing it")]
    NotAMountPoint(PathBuf),
    /// The freeze could not be recorded in the state directory, so it was not made: a freeze
    /// nobody could find again after a crash would stay until the node reboots.
    #[error("cannot record the freeze of {path} in {dir}: {source}; not freezing")]
    Record {
        /// The mount point.
        path: PathBuf,
        /// The state directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `fsfreeze` failed or could not run.
    #[error("fsfreeze {op} {path}: {message}")]
    Command {
        /// `-f` or `-u`.
        op: &'static str,
        /// The mount point.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// True when `path` is the root of a filesystem (its device differs from its parent's).
pub fn is_mount_point(path: &Path) -> bool {
    let (Ok(here), Ok(parent)) = (std::fs::metadata(path), std::fs::metadata(path.join("..")))
    else {
        return false;
    };
    here.dev() != parent.dev() || here.ino() == parent.ino()
}

fn fsfreeze(op: &'static str, path: &Path) -> Result<(), FreezeError> {
    let out = std::process::Command::new("fsfreeze")
        // Its messages in English, so that "Invalid argument" can be recognised.
        .env("LC_ALL", "C")
        .arg(op)
        .arg(path)
        .output()
        .map_err(|e| FreezeError::Command {
            op,
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(FreezeError::Command {
        op,
        path: path.to_path_buf(),
        message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// What a thaw found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thawed {
    /// The filesystem was frozen, and is thawed now.
    Now,
    /// It was not frozen (FITHAW answered EINVAL): thawed by someone else, or never frozen.
    Already,
}

/// Thaws the filesystem mounted at `path`. One that is not frozen counts as thawed.
pub fn thaw(path: &Path) -> Result<Thawed, FreezeError> {
    match fsfreeze("-u", path) {
        Ok(()) => Ok(Thawed::Now),
        Err(FreezeError::Command { message, .. }) if says_not_frozen(&message) => {
            Ok(Thawed::Already)
        }
        Err(e) => Err(e),
    }
}

/// True for what `fsfreeze -u` (in the C locale) prints when FITHAW fails with EINVAL, which
/// the kernel answers for a filesystem that is not frozen.
fn says_not_frozen(message: &str) -> bool {
    message.contains("Invalid argument")
}

/// A frozen filesystem; thawed by [`FreezeGuard::thaw`], on drop, or by the watchdog.
#[derive(Debug)]
pub struct FreezeGuard {
    path: PathBuf,
    state: Arc<Mutex<Frozen>>,
    disarm: Option<Sender<()>>,
}

/// Shared by the guard and its watchdog.
#[derive(Debug)]
struct Frozen {
    frozen: bool,
    /// Cleared once thawed.
    record: Option<HeldRecord>,
}

fn thaw_once(path: &Path, state: &Mutex<Frozen>) -> Result<(), FreezeError> {
    let mut state = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !state.frozen {
        return Ok(());
    }
    if thaw(path)? == Thawed::Already {
        tracing::warn!(path = %path.display(), "the filesystem was thawed by someone else");
    }
    state.frozen = false;
    if let Some(record) = state.record.take() {
        record.clear();
    }
    Ok(())
}

impl FreezeGuard {
    /// Freezes the filesystem mounted at `path`, held by `owner`; the watchdog thaws it after
    /// `limit` at most. The freeze is recorded in `state` first, and not made if it cannot be.
    pub fn freeze(
        path: &Path,
        limit: Duration,
        state: &StateDir,
        owner: FreezeOwner,
    ) -> Result<Self, FreezeError> {
        if !is_mount_point(path) || path == Path::new("/") {
            return Err(FreezeError::NotAMountPoint(path.to_path_buf()));
        }
        let record = FreezeRecord {
            mount: path.to_path_buf(),
            owner,
            frozen_at: chrono::Utc::now(),
        };
        let record = state
            .record(&record)
            .map_err(|source| FreezeError::Record {
                path: path.to_path_buf(),
                dir: state.path().to_path_buf(),
                source,
            })?;
        if let Err(e) = fsfreeze("-f", path) {
            record.clear();
            return Err(e);
        }
        let shared = Arc::new(Mutex::new(Frozen {
            frozen: true,
            record: Some(record),
        }));
        let (disarm, disarmed) = channel::<()>();
        let (p, f) = (path.to_path_buf(), shared.clone());
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = disarmed.recv_timeout(limit) {
                tracing::warn!(path = %p.display(), "fsfreeze time limit reached: thawing");
                if let Err(e) = thaw_once(&p, &f) {
                    tracing::error!("watchdog cannot thaw: {e}");
                }
            }
        });
        Ok(Self {
            path: path.to_path_buf(),
            state: shared,
            disarm: Some(disarm),
        })
    }

    /// True while the filesystem is still frozen by this guard.
    pub fn is_frozen(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .frozen
    }

    /// Thaws now, reporting a failure.
    pub fn thaw(mut self) -> Result<(), FreezeError> {
        self.disarm.take();
        thaw_once(&self.path, &self.state)
    }
}

impl Drop for FreezeGuard {
    fn drop(&mut self) {
        self.disarm.take();
        if let Err(e) = thaw_once(&self.path, &self.state) {
            tracing::error!("cannot thaw: {e}");
        }
    }
}
