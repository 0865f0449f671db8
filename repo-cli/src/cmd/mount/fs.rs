//! What the kernel asks of the mount, answered from the repository: directories from the layout
//! and from trees (each loaded once, verified), file bytes from the blobs under the range asked
//! for through a small cache, and EROFS for anything that would change something.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use engine::id::BlobId;
use engine::index::Index;
use engine::inspect::read_at::BlobCache;
use engine::read::load_tree;
use engine::repo::Repository;
use fuser::{
    Errno, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenAccMode, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
};

use super::inodes::{Children, Inode, Inodes, Owner, What, attr, file_type, lock};
use super::layout::{self, Entry};

/// How long the kernel may keep names and attributes: nothing in a mount ever changes.
const TTL: Duration = Duration::from_secs(3600);

/// A snapshot as the mount shows it.
pub struct MountedSnapshot {
    pub tree: BlobId,
    pub time: SystemTime,
}

pub struct SnapshotFs {
    repo: Repository,
    index: Index,
    snapshots: Vec<MountedSnapshot>,
    cache: BlobCache,
    inodes: Inodes,
    owner: Owner,
    mounted_at: SystemTime,
}

impl SnapshotFs {
    pub fn new(
        repo: Repository,
        index: Index,
        snapshots: Vec<MountedSnapshot>,
        root: layout::Dir,
        cache_bytes: usize,
        owner: Owner,
    ) -> Self {
        let inodes = Inodes::default();
        inodes.add(1, Vec::new(), What::Virtual(root));
        Self {
            repo,
            index,
            snapshots,
            cache: BlobCache::new(cache_bytes),
            inodes,
            owner,
            mounted_at: SystemTime::now(),
        }
    }

    fn attr_of(&self, ino: u64, inode: &Inode) -> fuser::FileAttr {
        let time = match inode.what {
            What::Snapshot(i) => self.snapshots.get(i).map_or(self.mounted_at, |s| s.time),
            _ => self.mounted_at,
        };
        attr(ino, &inode.what, time, self.owner)
    }

    /// Says why a request failed (the kernel only passes on EIO) and returns EIO.
    fn failed(&self, ino: u64, doing: &str, err: &engine::Error) -> Errno {
        eprintln!(
            "repo: mount: cannot {doing} {}: {err}",
            self.inodes.path(ino)
        );
        Errno::EIO
    }

    /// The entries of a directory, made into inodes the first time.
    fn children(&self, ino: u64) -> Result<(Arc<Inode>, Children), Errno> {
        let inode = self.inodes.get(INodeNo(ino)).ok_or(Errno::ENOENT)?;
        let mut slot = lock(&inode.children);
        if let Some(children) = &*slot {
            return Ok((inode.clone(), children.clone()));
        }
        let made: Vec<(Vec<u8>, What)> = match &inode.what {
            What::Virtual(dir) => dir
                .iter()
                .map(|(name, entry)| {
                    let what = match entry {
                        Entry::Dir(d) => What::Virtual(d.clone()),
                        Entry::Link(target) => What::Link(target.as_bytes().to_vec()),
                        Entry::Snapshot(i) => What::Snapshot(*i),
                    };
                    (name.as_bytes().to_vec(), what)
                })
                .collect(),
            What::Snapshot(i) => {
                let tree = self.snapshots.get(*i).ok_or(Errno::ENOENT)?.tree;
                self.tree_entries(ino, &tree)?
            }
            What::Node(node) => match node.subtree() {
                Some(tree) => self.tree_entries(ino, &tree)?,
                None => return Err(Errno::ENOTDIR),
            },
            What::Link(_) | What::File(..) => return Err(Errno::ENOTDIR),
        };
        let children: Children = Arc::new(
            made.into_iter()
                .map(|(name, what)| {
                    let child = self.inodes.add(ino, name.clone(), what);
                    (name, child)
                })
                .collect(),
        );
        *slot = Some(children.clone());
        drop(slot);
        Ok((inode, children))
    }

    fn tree_entries(&self, ino: u64, tree: &BlobId) -> Result<Vec<(Vec<u8>, What)>, Errno> {
        let tree =
            load_tree(&self.repo, &self.index, tree).map_err(|e| self.failed(ino, "list", &e))?;
        Ok(tree
            .nodes
            .into_iter()
            .map(|node| (node.name.clone(), What::from_node(node)))
            .collect())
    }

    fn lookup_child(&self, parent: u64, name: &[u8]) -> Result<(u64, Arc<Inode>), Errno> {
        let (_, children) = self.children(parent)?;
        let pos = children
            .binary_search_by(|(n, _)| n.as_slice().cmp(name))
            .map_err(|_| Errno::ENOENT)?;
        let ino = children[pos].1;
        let inode = self.inodes.get(INodeNo(ino)).ok_or(Errno::ENOENT)?;
        Ok((ino, inode))
    }
}

impl Filesystem for SnapshotFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.lookup_child(parent.0, name.as_bytes()) {
            Ok((ino, inode)) => reply.entry(&TTL, &self.attr_of(ino, &inode), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.inodes.get(ino) {
            Some(inode) => reply.attr(&TTL, &self.attr_of(ino.0, &inode)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let Some(inode) = self.inodes.get(ino) else {
            return reply.error(Errno::ENOENT);
        };
        match &inode.what {
            What::Link(target) => reply.data(target),
            What::Node(node) => match &node.kind {
                engine::format::tree::NodeKind::Symlink { target } => reply.data(target),
                _ => reply.error(Errno::EINVAL),
            },
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.inodes.get(ino) {
            // The content never changes, so the kernel may keep what it read across opens.
            Some(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(inode) = self.inodes.get(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let What::File(_, extents) = &inode.what else {
            return reply.error(Errno::EISDIR);
        };
        match extents.read_at(&self.repo, &self.index, &self.cache, offset, size as usize) {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(self.failed(ino.0, "read", &e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let (inode, children) = match self.children(ino.0) {
            Ok(found) => found,
            Err(e) => return reply.error(e),
        };
        let dots = [
            (ino.0, FileType::Directory, &b"."[..]),
            (inode.parent, FileType::Directory, &b".."[..]),
        ];
        let entries = dots.into_iter().chain(children.iter().map(|(name, child)| {
            let kind = self
                .inodes
                .get(INodeNo(*child))
                .map_or(FileType::RegularFile, |c| file_type(&c.what));
            (*child, kind, name.as_slice())
        }));
        for (i, (child, kind, name)) in entries.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, self.inodes.count(), 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let Some(inode) = self.inodes.get(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let value = inode
            .what
            .node()
            .and_then(|n| n.xattrs.iter().find(|x| x.name == name.as_bytes()))
            .map(|x| x.value.as_slice());
        match value {
            None => reply.error(Errno::NO_XATTR),
            Some(v) => xattr_reply(v, size, reply),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let Some(inode) = self.inodes.get(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let mut names = Vec::new();
        for x in inode
            .what
            .node()
            .map(|n| n.xattrs.as_slice())
            .unwrap_or(&[])
        {
            names.extend_from_slice(&x.name);
            names.push(0);
        }
        xattr_reply(&names, size, reply);
    }

    // Everything below would change the filesystem. The mount is read-only, so the kernel
    // refuses most of it before asking; these answer the rest the same way.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }
}

/// `size` 0 asks how large the value is; a buffer too small for it is ERANGE.
fn xattr_reply(value: &[u8], size: u32, reply: ReplyXattr) {
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    if size == 0 {
        reply.size(len);
    } else if size < len {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}
