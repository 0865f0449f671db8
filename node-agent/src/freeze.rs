//! `fsfreeze` around a backup: the filesystem of a volume is frozen (FIFREEZE) so the files are
//! read in one consistent state, and thawed (FITHAW) afterwards, always. The ioctls are issued
//! by util-linux's `fsfreeze` (the workspace forbids unsafe code, which a raw ioctl needs).
//!
//! A frozen filesystem blocks every writer on it, the application included, so the thaw is
//! guaranteed twice over: by the guard's `Drop` (any error or panic on the way), and by a
//! watchdog thread that thaws when the time limit passes even if the guard is never dropped.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a freeze or thaw failed.
#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    /// The path is not the root of its own filesystem: freezing it would freeze its parent's
    /// filesystem (perhaps the node's root), which is never what is meant.
    #[error("{0} is not a filesystem of its own (not a mount point); not freezing it")]
    NotAMountPoint(PathBuf),
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

/// A frozen filesystem; thawed by [`FreezeGuard::thaw`], on drop, or by the watchdog.
#[derive(Debug)]
pub struct FreezeGuard {
    path: PathBuf,
    frozen: Arc<Mutex<bool>>,
    disarm: Option<Sender<()>>,
}

fn thaw_once(path: &Path, frozen: &Mutex<bool>) -> Result<(), FreezeError> {
    let mut f = frozen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !*f {
        return Ok(());
    }
    fsfreeze("-u", path)?;
    *f = false;
    Ok(())
}

impl FreezeGuard {
    /// Freezes the filesystem mounted at `path`; the watchdog thaws it after `limit` at most.
    pub fn freeze(path: &Path, limit: Duration) -> Result<Self, FreezeError> {
        if !is_mount_point(path) || path == Path::new("/") {
            return Err(FreezeError::NotAMountPoint(path.to_path_buf()));
        }
        fsfreeze("-f", path)?;
        let frozen = Arc::new(Mutex::new(true));
        let (disarm, disarmed) = channel::<()>();
        let (p, f) = (path.to_path_buf(), frozen.clone());
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
            frozen,
            disarm: Some(disarm),
        })
    }

    /// True while the filesystem is still frozen by this guard.
    pub fn is_frozen(&self) -> bool {
        *self
            .frozen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Thaws now, reporting a failure.
    pub fn thaw(mut self) -> Result<(), FreezeError> {
        self.disarm.take();
        thaw_once(&self.path, &self.frozen)
    }
}

impl Drop for FreezeGuard {
    fn drop(&mut self) {
        self.disarm.take();
        if let Err(e) = thaw_once(&self.path, &self.frozen) {
            tracing::error!("cannot thaw: {e}");
        }
    }
}
