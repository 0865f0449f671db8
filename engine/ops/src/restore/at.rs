//! Directory handles: the restore target is opened once, and every directory below it is
//! reached from that handle without following any symlink, so a link swapped in while the
//! restore runs (by whoever else can write the target) leads nowhere. `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` does it in one call; kernels (or sandboxes) without it
//! get a walk that opens each component with `O_NOFOLLOW | O_DIRECTORY`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::{AtFlags, CWD, Mode, OFlags, ResolveFlags, mkdirat, openat, openat2, renameat};
use rustix::io::Errno;

/// Regular files are written under a name starting with this in their own directory, and
/// renamed into place once complete: a name without it is never half-written.
pub const TEMP_PREFIX: &str = ".kairn-part-";

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// The open restore target, and the name of this run's temporaries.
pub(crate) struct Target {
    root: OwnedFd,
    run: String,
}

impl Target {
    /// Opens `path`, which must be a directory and not a symlink.
    pub fn open(path: &Path) -> io::Result<Self> {
        let root = openat(CWD, path, dir_flags(), Mode::empty())?;
        Ok(Self {
            root,
            run: hex::encode(kairn_format::crypto::random_bytes::<6>()),
        })
    }

    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Opens the directory `rel` (relative to the target; empty for the target itself).
    pub fn dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        beneath(self.root.as_fd(), rel)
    }

    /// Where file number `file` of the restore is written until it is complete.
    pub fn temp_name(&self, file: usize) -> OsString {
        format!("{TEMP_PREFIX}{}-{file}", self.run).into()
    }
}

/// Directory handles shared by the entries of one step of a batch, so that a directory is
/// opened once per step rather than once per entry. Each step starts with none: a directory
/// swapped or removed between steps is seen by the next, as it was when every entry opened its
/// own. At most `MAX_OPEN_DIRS` are kept, well inside the default limit of open files.
pub(crate) struct Dirs<'t> {
    target: &'t Target,
    open: Mutex<HashMap<PathBuf, Arc<OwnedFd>>>,
}

const MAX_OPEN_DIRS: usize = 64;

impl<'t> Dirs<'t> {
    pub fn new(target: &'t Target) -> Self {
        Self {
            target,
            open: Mutex::new(HashMap::new()),
        }
    }

    pub fn target(&self) -> &'t Target {
        self.target
    }

    /// Opens (or reuses) the directory holding `rel`, and returns it with `rel`'s last name.
    pub fn parent<'p>(&self, rel: &'p Path) -> io::Result<(Arc<OwnedFd>, &'p OsStr)> {
        let name = rel
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an entry without name"))?;
        let parent = rel.parent().unwrap_or_else(|| Path::new(""));
        if let Some(fd) = self.lock().get(parent) {
            return Ok((Arc::clone(fd), name));
        }
        // Opened outside the lock: other threads go on with the directories they have.
        let fd = Arc::new(self.target.dir(parent)?);
        let mut open = self.lock();
        if open.len() >= MAX_OPEN_DIRS {
            open.clear();
        }
        open.insert(parent.to_path_buf(), Arc::clone(&fd));
        Ok((fd, name))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<OwnedFd>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why an entry cannot be reached when the directory holding it cannot be opened: someone else
/// writing the target may have removed it or put a link in its place.
pub(crate) fn why_no_dir(e: &io::Error) -> String {
    match Errno::from_io_error(e) {
        Some(Errno::LOOP) => {
            "its directory was replaced by a symbolic link, which restore does not follow".into()
        }
        Some(Errno::NOENT) => "its directory vanished during the restore".into(),
        Some(Errno::NOTDIR) => "its directory was replaced by something else".into(),
        _ => format!("cannot open its directory: {e}"),
    }
}

/// Opens directory `rel` below `root` without following any symlink or leaving `root`.
pub(crate) fn beneath(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    if rel.as_os_str().is_empty() {
        return root.try_clone_to_owned();
    }
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match openat2(root, rel, dir_flags(), Mode::empty(), resolve) {
        Ok(fd) => Ok(fd),
        // No openat2 (before Linux 5.6, or filtered by a seccomp profile), or a concurrent
        // rename made the kernel ask for a retry: the walk needs neither.
        Err(Errno::NOSYS | Errno::PERM | Errno::INVAL | Errno::AGAIN) => walk(root, rel),
        Err(e) => Err(e.into()),
    }
}

/// The fallback: one `openat(O_NOFOLLOW | O_DIRECTORY)` per component.
pub(crate) fn walk(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    let mut current = root.try_clone_to_owned()?;
    for component in rel.components() {
        let Component::Normal(name) = component else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "only plain names are followed below the target",
            ));
        };
        current = openat(&current, name, dir_flags(), Mode::empty())?;
    }
    Ok(current)
}

/// Writes `content` to `rel` below the directory `target`, making the directories above it,
/// without following a symlink at or below `target` (which must itself be a directory, not a
/// link). The file appears under its name only once complete. For writers that share the
/// target with others, such as the node agent's completion marker in a tenant's volume.
pub fn write_file_beneath(target: &Path, rel: &Path, content: &[u8]) -> io::Result<()> {
    let mut dir = openat(CWD, target, dir_flags(), Mode::empty())?;
    let mut components: Vec<&OsStr> = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(name) => components.push(name),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "only plain names are allowed below the target",
                ));
            }
        }
    }
    let Some((name, parents)) = components.split_last() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no file name"));
    };
    for parent in parents {
        match mkdirat(&dir, *parent, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        dir = openat(&dir, *parent, dir_flags(), Mode::empty())?;
    }
    let temp = format!(
        "{TEMP_PREFIX}{}",
        hex::encode(kairn_format::crypto::random_bytes::<6>())
    );
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut file = File::from(openat(&dir, &temp, flags, Mode::from_raw_mode(0o644))?);
    let written = file
        .write_all(content)
        .and_then(|()| file.sync_all())
        .and_then(|()| Ok(renameat(&dir, &temp, &dir, *name)?));
    if written.is_err() {
        let _ = rustix::fs::unlinkat(&dir, &temp, AtFlags::empty());
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_way_of_opening_follows_a_link_below_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("a/link")).unwrap();
        let target = Target::open(dir.path()).unwrap();
        assert!(target.dir(Path::new("a/b")).is_ok());
        assert!(walk(target.root(), Path::new("a/b")).is_ok());
        assert!(target.dir(Path::new("a/link")).is_err());
        assert!(walk(target.root(), Path::new("a/link")).is_err());
        assert!(walk(target.root(), Path::new("a/../a")).is_err());

        std::os::unix::fs::symlink(dir.path(), outside.path().join("t")).unwrap();
        assert!(
            Target::open(&outside.path().join("t")).is_err(),
            "a linked target"
        );
    }

    #[test]
    fn a_file_written_beneath_never_goes_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write_file_beneath(dir.path(), Path::new("m/n/done"), b"yes").unwrap();
        assert_eq!(std::fs::read(dir.path().join("m/n/done")).unwrap(), b"yes");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("x")).unwrap();
        assert!(write_file_beneath(dir.path(), Path::new("x/done"), b"no").is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
