//! The inode table: one inode per name the kernel has looked up, created when its directory is
//! first listed and kept until unmount (the snapshots never change, so nothing goes stale).
//! Each place a snapshot appears (`snapshots/…`, `hosts/…/…`) is its own subtree of inodes:
//! the kernel does not let one directory have two parents.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine::format::tree::{Node, NodeKind, Timestamp};
use engine::inspect::read_at::FileExtents;
use fuser::{FileAttr, FileType, INodeNo};

use super::layout;

/// What an inode shows.
pub enum What {
    /// A directory of the layout above the snapshots.
    Virtual(layout::Dir),
    /// A `latest` symlink.
    Link(Vec<u8>),
    /// The root tree of the snapshot at this position in the mounted list.
    Snapshot(usize),
    /// A regular file: its node (content moved out) and its extents.
    File(Node, Arc<FileExtents>),
    /// Any other entry of a tree: a directory, symlink, device, FIFO or socket.
    Node(Node),
}

impl What {
    /// The inode for a tree entry; a file's extents are indexed once, here.
    pub fn from_node(mut node: Node) -> Self {
        match &mut node.kind {
            NodeKind::File { content, .. } => {
                let extents = FileExtents::new(std::mem::take(content));
                Self::File(node, Arc::new(extents))
            }
            _ => Self::Node(node),
        }
    }

    /// The tree entry behind this inode, if it is one.
    pub fn node(&self) -> Option<&Node> {
        match self {
            Self::File(node, _) | Self::Node(node) => Some(node),
            _ => None,
        }
    }
}

/// The names in a directory, sorted by bytes, with their inodes.
pub type Children = Arc<Vec<(Vec<u8>, u64)>>;

pub struct Inode {
    pub parent: u64,
    pub name: Vec<u8>,
    pub what: What,
    /// Filled the first time the directory is looked into.
    pub children: Mutex<Option<Children>>,
}

#[derive(Default)]
pub struct Inodes {
    /// Inode `n` at position `n - 1`; the root (1) is its own parent.
    all: RwLock<Vec<Arc<Inode>>>,
}

impl Inodes {
    pub fn add(&self, parent: u64, name: Vec<u8>, what: What) -> u64 {
        let mut all = self.all.write().unwrap_or_else(PoisonError::into_inner);
        all.push(Arc::new(Inode {
            parent,
            name,
            what,
            children: Mutex::new(None),
        }));
        all.len() as u64
    }

    pub fn get(&self, ino: INodeNo) -> Option<Arc<Inode>> {
        let all = self.all.read().unwrap_or_else(PoisonError::into_inner);
        let pos = usize::try_from(ino.0).ok()?.checked_sub(1)?;
        all.get(pos).cloned()
    }

    pub fn count(&self) -> u64 {
        self.all
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len() as u64
    }

    /// The path of an inode below the mountpoint, for messages.
    pub fn path(&self, mut ino: u64) -> String {
        let mut parts = Vec::new();
        while ino > 1 {
            let Some(inode) = self.get(INodeNo(ino)) else {
                break;
            };
            parts.push(String::from_utf8_lossy(&inode.name).into_owned());
            ino = inode.parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }
}

/// Lock a children slot, surviving a panic elsewhere (the slot is always consistent).
pub fn lock(slot: &Mutex<Option<Children>>) -> std::sync::MutexGuard<'_, Option<Children>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Who owns what has no owner of its own (the layout, the snapshot roots): the mounting user.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

pub fn file_type(what: &What) -> FileType {
    match what {
        What::Virtual(_) | What::Snapshot(_) => FileType::Directory,
        What::Link(_) => FileType::Symlink,
        What::File(..) => FileType::RegularFile,
        What::Node(node) => match node.kind {
            NodeKind::File { .. } => FileType::RegularFile,
            NodeKind::Dir { .. } => FileType::Directory,
            NodeKind::Symlink { .. } => FileType::Symlink,
            NodeKind::BlockDevice { .. } => FileType::BlockDevice,
            NodeKind::CharDevice { .. } => FileType::CharDevice,
            NodeKind::Fifo => FileType::NamedPipe,
            NodeKind::Socket => FileType::Socket,
        },
    }
}

/// The attributes of an inode; `time` is what a virtual entry shows as its times.
pub fn attr(ino: u64, what: &What, time: SystemTime, owner: Owner) -> FileAttr {
    let kind = file_type(what);
    let mut a = FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind,
        perm: 0o555,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid: owner.uid,
        gid: owner.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    };
    if let What::Link(target) = what {
        a.size = target.len() as u64;
        a.perm = 0o777;
    }
    if let Some(node) = what.node() {
        a.size = match &node.kind {
            NodeKind::File { size, .. } => *size,
            NodeKind::Symlink { target } => target.len() as u64,
            _ => 0,
        };
        a.perm = (node.mode & 0o7777) as u16;
        a.uid = node.uid;
        a.gid = node.gid;
        a.mtime = system_time(node.mtime);
        a.atime = system_time(node.atime);
        a.ctime = system_time(node.ctime);
        a.crtime = a.mtime;
        if let NodeKind::BlockDevice { rdev } | NodeKind::CharDevice { rdev } = node.kind {
            a.rdev = kernel_rdev(rdev);
        }
    }
    a.blocks = a.size.div_ceil(512);
    a
}

/// A stored time; out-of-range values (hostile trees) show as the epoch rather than panic.
pub fn system_time(t: Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nanos.min(999_999_999)));
    let secs = Duration::from_secs(t.secs.unsigned_abs());
    let whole = if t.secs >= 0 {
        UNIX_EPOCH.checked_add(secs)
    } else {
        UNIX_EPOCH.checked_sub(secs)
    };
    whole
        .and_then(|w| w.checked_add(nanos))
        .unwrap_or(UNIX_EPOCH)
}

/// A device number as FUSE carries it: the kernel's 32-bit encoding (12-bit major, 20-bit
/// minor), which is the low half of glibc's `dev_t` for every device that fits.
pub fn kernel_rdev(dev: u64) -> u32 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let encoded = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & 0xf_ff00) << 12);
    u32::try_from(encoded & 0xffff_ffff).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_before_the_epoch_and_absurd_ones_do_not_panic() {
        let t = |secs, nanos| system_time(Timestamp { secs, nanos });
        assert_eq!(t(1, 5), UNIX_EPOCH + Duration::new(1, 5));
        assert_eq!(t(-2, 0), UNIX_EPOCH - Duration::from_secs(2));
        assert_eq!(
            t(-1, 500),
            UNIX_EPOCH - Duration::from_secs(1) + Duration::from_nanos(500)
        );
        let _ = t(i64::MAX, u32::MAX);
        let _ = t(i64::MIN, u32::MAX);
    }

    #[test]
    fn device_numbers_keep_major_and_minor() {
        // makedev(8, 1) (sda1) and makedev(259, 70000) in glibc's layout.
        let glibc = |major: u64, minor: u64| {
            (minor & 0xff)
                | ((major & 0xfff) << 8)
                | ((minor & !0xff) << 12)
                | ((major & !0xfff) << 32)
        };
        assert_eq!(kernel_rdev(glibc(8, 1)), (8 << 8) | 1);
        let big = kernel_rdev(glibc(259, 70000));
        assert_eq!((big >> 8) & 0xfff, 259);
        assert_eq!((big & 0xff) | ((big >> 12) & 0xf_ff00), 70000);
    }
}
