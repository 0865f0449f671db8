//! Filesystem steps of a restore that never follow a symlink found at the destination.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Removes whatever is at `path` unless it is a directory. Returns true when a directory is there.
pub fn clear_non_dir(path: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(true),
        Ok(_) => std::fs::remove_file(path).map(|()| false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes sure `path` is a real directory (not a symlink to one).
pub fn make_dir(path: &Path) -> io::Result<()> {
    if clear_non_dir(path)? {
        return Ok(());
    }
    match std::fs::create_dir(path) {
        Ok(()) => {
            // Owner-only until its metadata is applied at the end.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        }
        Err(e)
            if e.kind() == io::ErrorKind::AlreadyExists
                && std::fs::symlink_metadata(path)?.is_dir() =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Clears the way for a non-directory entry; a directory in the way is an error.
pub fn clear_for_entry(path: &Path) -> io::Result<()> {
    if clear_non_dir(path)? {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a directory is in the way",
        ));
    }
    Ok(())
}

/// Creates (or truncates) a regular file of `size` bytes; unwritten ranges stay holes.
pub fn create_file(path: &Path, size: u64) -> io::Result<()> {
    clear_for_entry(path)?;
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)?;
    f.set_len(size)
}

/// Opens an already created file for positioned writes, refusing symlinks.
pub fn open_for_write(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}
