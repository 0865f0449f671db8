//! Creating files and directories private whatever the umask, and reading storage times.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::libc;

use kairn_format::error::{Error, ErrorKind, Result};

/// The mode of every file the backend writes: only the owner may read a key or a pack.
pub const FILE_MODE: u32 = 0o600;
/// The mode of every directory the backend makes.
pub const DIR_MODE: u32 = 0o700;

/// Creates a new file (never following a link), mode 0600 whatever the umask.
pub(super) fn create_new(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            let kind = e.kind();
            let err = Error::io(format!("cannot create {}", path.display()), e);
            if kind == std::io::ErrorKind::AlreadyExists {
                Error::new(ErrorKind::AlreadyExists, err.to_string())
            } else {
                err
            }
        })?;
    // The umask may have taken bits away; an owner who cannot write would fail later.
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
        .map_err(|e| Error::io(format!("cannot set the mode of {}", path.display()), e))?;
    Ok(file)
}

/// Makes a directory and its missing parents, each 0700 whatever the umask.
pub(super) fn make_dirs(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        make_dirs(parent)?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(Error::io(format!("cannot create {}", dir.display()), e)),
    }
    // Set through a handle, so that a link swapped in meanwhile is not what gets changed.
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
        .map_err(|e| Error::io(format!("cannot open {}", dir.display()), e))?;
    handle
        .set_permissions(fs::Permissions::from_mode(DIR_MODE))
        .map_err(|e| Error::io(format!("cannot set the mode of {}", dir.display()), e))
}

pub(super) fn millis(meta: &fs::Metadata) -> Result<i64> {
    let time = meta
        .modified()
        .map_err(|e| Error::io("the filesystem reports no modification time", e))?;
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| Error::new(ErrorKind::Backend, "the storage reports a time before 1970"))?;
    Ok(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
}
