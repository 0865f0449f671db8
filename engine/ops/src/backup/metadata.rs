//! Reading an entry's metadata from the source filesystem into a [`Node`].

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;

use kairn_format::tree::{Node, NodeKind, Timestamp, Xattr};

/// Caches uid and gid to name lookups for one backup.
#[derive(Default)]
pub struct NameCache {
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
}

impl NameCache {
    fn user(&self, uid: u32) -> String {
        let mut cache = self
            .users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_default()
            })
            .clone()
    }

    fn group(&self, gid: u32) -> String {
        let mut cache = self
            .groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(gid.into())
                    .ok()
                    .flatten()
                    .map(|g| g.name)
                    .unwrap_or_default()
            })
            .clone()
    }
}

fn ts(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: u32::try_from(nanos).unwrap_or(0),
    }
}

/// Builds a node from `lstat` metadata. The kind-specific part of files, directories and
/// symlinks is filled in by the caller; here they get placeholders.
pub fn node_from_metadata(name: &[u8], meta: &Metadata, names: &NameCache) -> Node {
    let ft = meta.file_type();
    let kind = if ft.is_block_device() {
        NodeKind::BlockDevice { rdev: meta.rdev() }
    } else if ft.is_char_device() {
        NodeKind::CharDevice { rdev: meta.rdev() }
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else if ft.is_symlink() {
        NodeKind::Symlink { target: Vec::new() }
    } else if ft.is_dir() {
        NodeKind::Dir {
            subtree: Default::default(),
        }
    } else {
        NodeKind::File {
            size: 0,
            content: Vec::new(),
        }
    };
    Node {
        name: name.to_vec(),
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        user: names.user(meta.uid()),
        group: names.group(meta.gid()),
        mtime: ts(meta.mtime(), meta.mtime_nsec()),
        atime: ts(meta.atime(), meta.atime_nsec()),
        ctime: ts(meta.ctime(), meta.ctime_nsec()),
        inode: meta.ino(),
        device: meta.dev(),
        links: meta.nlink(),
        xattrs: Vec::new(),
    }
}

/// Reads the extended attributes of `path` without following a symlink, sorted by name.
/// Filesystems without xattr support yield none.
pub fn read_xattrs(path: &Path) -> std::io::Result<Vec<Xattr>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if is_unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        match xattr::get(path, &name) {
            Ok(Some(value)) => out.push(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            }),
            Ok(None) => {}
            Err(e) if is_unsupported(&e) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn is_unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(c) if c == nix::libc::ENOTSUP || c == nix::libc::ENODATA)
}

/// The names in a directory, read without updating the directory's access time (so that a
/// backup does not itself change the metadata it records).
pub fn list_dir(path: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = match nix::dir::Dir::open(path, flags | OFlag::O_NOATIME, Mode::empty()) {
        Err(nix::errno::Errno::EPERM) => nix::dir::Dir::open(path, flags, Mode::empty()),
        other => other,
    }?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}
