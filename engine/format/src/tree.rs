//! Trees: one per directory, nodes sorted by name bytes, encoded with postcard so that the same
//! directory always encodes to the same bytes and deduplicates.
//!
//! Decoding rejects what could steer a restore outside its target: empty names, `.`, `..`, and
//! names holding `/` or NUL. Nodes must be strictly sorted, so no name appears twice.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::BlobId;

/// A point in time: seconds since the Unix epoch and nanoseconds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z (negative before).
    pub secs: i64,
    /// Nanoseconds, 0..1e9.
    pub nanos: u32,
}

/// A piece of a regular file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Extent {
    /// A data blob of `len` bytes.
    Data {
        /// The blob.
        id: BlobId,
        /// Its length.
        len: u32,
    },
    /// A hole of `len` bytes that reads as zeros and is restored as a hole.
    Hole {
        /// Its length.
        len: u64,
    },
}

impl Extent {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match *self {
            Self::Data { len, .. } => u64::from(len),
            Self::Hole { len } => len,
        }
    }

    /// True for a zero-length extent.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a node is, with what only that kind has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    /// A regular file.
    File {
        /// Its size: the sum of its extents.
        size: u64,
        /// Its content in order.
        content: Vec<Extent>,
    },
    /// A directory and the tree of its entries.
    Dir {
        /// The subtree blob.
        subtree: BlobId,
    },
    /// A symbolic link.
    Symlink {
        /// The link target, raw bytes.
        target: Vec<u8>,
    },
    /// A block device.
    BlockDevice {
        /// Device number.
        rdev: u64,
    },
    /// A character device.
    CharDevice {
        /// Device number.
        rdev: u64,
    },
    /// A named pipe.
    Fifo,
    /// A Unix socket: recorded, not restored.
    Socket,
}

/// An extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// Name, e.g. `user.comment` or `system.posix_acl_access`.
    pub name: Vec<u8>,
    /// Value bytes.
    pub value: Vec<u8>,
}

/// One directory entry and its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name, raw bytes (need not be UTF-8).
    pub name: Vec<u8>,
    /// Kind and kind-specific data.
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner name when it resolved at backup time, else empty.
    pub user: String,
    /// Group name when it resolved at backup time, else empty.
    pub group: String,
    /// Modification time.
    pub mtime: Timestamp,
    /// Access time.
    pub atime: Timestamp,
    /// Status change time (recorded; the kernel does not let a restore set it).
    pub ctime: Timestamp,
    /// Inode number at backup time.
    pub inode: u64,
    /// Device id of the filesystem at backup time.
    pub device: u64,
    /// Number of hard links at backup time.
    pub links: u64,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<Xattr>,
}

impl Node {
    /// True for directories.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir { .. })
    }

    /// The subtree of a directory.
    pub fn subtree(&self) -> Option<BlobId> {
        match self.kind {
            NodeKind::Dir { subtree } => Some(subtree),
            _ => None,
        }
    }

    /// Logical size: a file's size, else 0.
    pub fn size(&self) -> u64 {
        match self.kind {
            NodeKind::File { size, .. } => size,
            _ => 0,
        }
    }

    /// A one-letter type as `ls -l` shows it.
    pub fn type_char(&self) -> char {
        match self.kind {
            NodeKind::File { .. } => '-',
            NodeKind::Dir { .. } => 'd',
            NodeKind::Symlink { .. } => 'l',
            NodeKind::BlockDevice { .. } => 'b',
            NodeKind::CharDevice { .. } => 'c',
            NodeKind::Fifo => 'p',
            NodeKind::Socket => 's',
        }
    }

    /// The name for display (lossy for names that are not UTF-8).
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// The largest tree blob accepted when decoding (a bound against hostile input).
pub const MAX_TREE_LEN: usize = 256 << 20;

/// Checks that `name` is safe to create inside a directory.
pub fn validate_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Error::corrupt(format!(
            "tree holds an unsafe entry name {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}

/// One directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Entries, strictly sorted by name bytes.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sorts the nodes; the canonical form before encoding.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Canonical bytes. The nodes must be sorted and valid.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.validate()?;
        postcard::to_stdvec(self)
            .map_err(|e| Error::internal("tree does not encode").with_source(e))
    }

    /// Decodes and validates bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_TREE_LEN {
            return Err(Error::corrupt("tree blob is implausibly large"));
        }
        let tree: Self = crate::decode_exact(bytes, "tree")?;
        tree.validate()?;
        Ok(tree)
    }

    fn validate(&self) -> Result<()> {
        for pair in self.nodes.windows(2) {
            if pair[0].name >= pair[1].name {
                return Err(Error::corrupt(
                    "tree entries are not strictly sorted (duplicate name?)",
                ));
            }
        }
        for node in &self.nodes {
            validate_name(&node.name)?;
            if [node.mtime, node.atime, node.ctime]
                .iter()
                .any(|t| t.nanos >= 1_000_000_000)
            {
                return Err(Error::corrupt(format!(
                    "{:?} has an invalid timestamp",
                    node.display_name()
                )));
            }
            if let NodeKind::File { size, content } = &node.kind {
                let sum: u64 = content.iter().map(Extent::len).sum();
                if sum != *size {
                    return Err(Error::corrupt(format!(
                        "file {:?} claims {size} bytes but its extents hold {sum}",
                        node.display_name()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The node called `name`.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn node(name: &[u8], kind: NodeKind) -> Node {
        Node {
            name: name.to_vec(),
            kind,
            mode: 0o644,
            uid: 1,
            gid: 2,
            user: String::new(),
            group: String::new(),
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            inode: 0,
            device: 0,
            links: 1,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_determinism() {
        let mut t = Tree {
            nodes: vec![
                node(b"b", NodeKind::Fifo),
                node(
                    b"a\xff",
                    NodeKind::Symlink {
                        target: b"../x".to_vec(),
                    },
                ),
                node(
                    b"a",
                    NodeKind::File {
                        size: 5,
                        content: vec![Extent::Hole { len: 5 }],
                    },
                ),
            ],
        };
        t.sort();
        let bytes = t.encode().unwrap();
        assert_eq!(Tree::decode(&bytes).unwrap(), t);
        assert_eq!(t.clone().encode().unwrap(), bytes);
        assert!(t.find(b"a\xff").is_some());
    }

    #[test]
    fn hostile_names_and_duplicates_are_rejected() {
        for bad in [&b".."[..], b".", b"", b"a/b", b"/etc", b"x\0"] {
            let t = Tree {
                nodes: vec![node(bad, NodeKind::Fifo)],
            };
            let bytes = postcard::to_stdvec(&t).unwrap();
            assert!(Tree::decode(&bytes).is_err(), "{bad:?} accepted");
        }
        let dup = Tree {
            nodes: vec![node(b"a", NodeKind::Fifo), node(b"a", NodeKind::Fifo)],
        };
        assert!(Tree::decode(&postcard::to_stdvec(&dup).unwrap()).is_err());
        let lying = Tree {
            nodes: vec![node(
                b"f",
                NodeKind::File {
                    size: 1 << 40,
                    content: vec![],
                },
            )],
        };
        assert!(Tree::decode(&postcard::to_stdvec(&lying).unwrap()).is_err());
    }
}
