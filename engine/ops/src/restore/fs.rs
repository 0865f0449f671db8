//! Filesystem steps of a restore, each relative to an open directory (see `at.rs`) and none
//! following a symlink found at the destination.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, mkdirat, openat, statat, unlinkat};
use rustix::io::Errno;

use super::at::TEMP_PREFIX;

/// Removes whatever is at `name` unless it is a directory. Returns true when a directory is there.
pub fn clear_non_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Ok(true),
        Ok(_) => match unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        },
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Makes sure `name` is a real directory (not a symlink to one); true when it was made now.
pub fn make_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    if clear_non_dir(dir, name)? {
        return Ok(false);
    }
    // Owner-only until its metadata is applied at the end.
    match mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => Ok(true),
        Err(Errno::EXIST) if clear_non_dir(dir, name)? => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Clears the way for a non-directory entry; a directory in the way is an error.
pub fn clear_for_entry(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    if clear_non_dir(dir, name)? {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a directory is in the way",
        ));
    }
    Ok(())
}

/// Creates the temporary `temp` of `size` bytes; unwritten ranges stay holes.
pub fn create_temp(dir: BorrowedFd<'_>, temp: &OsStr, size: u64) -> io::Result<()> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let file = File::from(openat(dir, temp, flags, Mode::from_raw_mode(0o600))?);
    if size > 0 {
        file.set_len(size)?;
    }
    Ok(())
}

/// Opens a file for reading or writing, refusing symlinks, and anything that is not a regular
/// file (a FIFO put in its place would otherwise block the open).
pub fn open_file(dir: BorrowedFd<'_>, name: &OsStr, write: bool) -> io::Result<File> {
    let access = if write {
        OFlags::WRONLY
    } else {
        OFlags::RDONLY
    };
    let flags = access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = File::from(openat(dir, name, flags, Mode::empty())?);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Opens a file only to read it back, without changing its access time where the kernel lets
/// us (`O_NOATIME` needs the file's owner or `CAP_FOWNER`): looking, in a dry run too, leaves
/// the file as it was.
pub fn open_to_check(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => openat(dir, name, flags, Mode::empty())?,
        other => other?,
    };
    let file = File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// The names in a directory, without `.` and `..`.
pub fn names(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for entry in Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            out.push(name);
        }
    }
    Ok(out)
}

/// Removes `name` from `dir`, a directory with everything in it, never following a symlink: a
/// link is removed as a link. Returns how many entries went.
pub fn remove_tree(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<u64> {
    remove_below(dir, name, 0)
}

/// Directories nested deeper than this are not deleted: each level holds a descriptor and a
/// stack frame, and a tenant can nest directories without end.
const MAX_DELETE_DEPTH: usize = 1024;

fn remove_below(dir: BorrowedFd<'_>, name: &OsStr, depth: usize) -> io::Result<u64> {
    let st = match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return match unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) => Ok(1),
            Err(Errno::NOENT) => Ok(0),
            Err(e) => Err(e.into()),
        };
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let sub = match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        // Swapped for a link or a file since the stat: that is what goes.
        Err(Errno::LOOP | Errno::NOTDIR) => {
            unlinkat(dir, name, AtFlags::empty())?;
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    if depth >= MAX_DELETE_DEPTH {
        return Err(io::Error::other(format!(
            "directories nested more than {MAX_DELETE_DEPTH} deep are not deleted"
        )));
    }
    let mut removed = 0;
    for child in names(sub.as_fd())? {
        removed += remove_below(sub.as_fd(), OsStr::from_bytes(&child), depth + 1)?;
    }
    drop(sub);
    unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(removed + 1)
}

/// Removes a temporary, whether or not it is there.
pub fn remove_temp(dir: BorrowedFd<'_>, temp: &OsStr) {
    let _ = unlinkat(dir, temp, AtFlags::empty());
}

/// Removes the temporaries an earlier, interrupted restore left in `dir`.
pub fn remove_leftover_temps(dir: BorrowedFd<'_>) -> io::Result<()> {
    let mut leftovers = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name.starts_with(TEMP_PREFIX.as_bytes()) {
            leftovers.push(name.to_vec());
        }
    }
    for name in leftovers {
        match unlinkat(dir, OsStr::from_bytes(&name), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) | Err(Errno::ISDIR) | Err(Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
