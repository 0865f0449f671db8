//! Resuming a restore: a file already at its destination with exactly the snapshot's content
//! (left by an interrupted run, or there from the start) is not written again. "Exactly" is
//! checked, not guessed from size and time: every extent is read back and hashed with the
//! repository's keyed blob hash, and holes must read as zeros. `inspect.rs` asks, for every
//! existing file the `--overwrite` policy may keep.

#[cfg(test)]
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
#[cfg(test)]
use std::os::fd::BorrowedFd;

use kairn_format::crypto::MasterKeys;
use kairn_format::tree::{Extent, Node, NodeKind};

/// True when `name` in `dir` is a regular file (not a symlink) holding exactly `node`'s content.
#[cfg(test)]
pub(crate) fn already_in_place(
    keys: &MasterKeys,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    node: &Node,
) -> bool {
    match super::fs::open_to_check(dir, name) {
        Ok(mut file) => holds(keys, &mut file, node),
        Err(_) => false,
    }
}

/// True when `file` holds exactly `node`'s content.
pub(crate) fn holds(keys: &MasterKeys, file: &mut File, node: &Node) -> bool {
    let NodeKind::File { size, content } = &node.kind else {
        return false;
    };
    if file.metadata().map(|m| m.len()).ok() != Some(*size) {
        return false;
    }
    let mut buf = Vec::new();
    content
        .iter()
        .all(|extent| matches(keys, file, extent, &mut buf))
}

fn matches(keys: &MasterKeys, file: &mut File, extent: &Extent, buf: &mut Vec<u8>) -> bool {
    match *extent {
        Extent::Data { id, len } => {
            buf.resize(len as usize, 0);
            file.read_exact(buf).is_ok() && keys.data_id(buf) == id
        }
        Extent::Hole { len } => {
            // In pieces: a hole may be far larger than any blob.
            let mut left = len;
            while left > 0 {
                let n = left.min(1 << 20) as usize;
                buf.resize(n, 0);
                if file.read_exact(buf).is_err() || buf.iter().any(|&b| b != 0) {
                    return false;
                }
                left -= n as u64;
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairn_format::tree::Timestamp;

    fn file_node(keys: &MasterKeys, parts: &[Option<&[u8]>], hole: u64) -> Node {
        let mut content = Vec::new();
        let mut size = 0;
        for part in parts {
            match part {
                Some(data) => {
                    content.push(Extent::Data {
                        id: keys.data_id(data),
                        len: data.len() as u32,
                    });
                    size += data.len() as u64;
                }
                None => {
                    content.push(Extent::Hole { len: hole });
                    size += hole;
                }
            }
        }
        Node {
            name: b"f".to_vec(),
            kind: NodeKind::File { size, content },
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            inode: 0,
            device: 0,
            links: 1,
            xattrs: vec![],
        }
    }

    #[test]
    fn only_the_exact_content_counts_as_in_place() {
        let keys = MasterKeys::generate();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let handle = std::fs::File::open(dir.path()).unwrap();
        let in_place = |node: &Node| {
            use std::os::fd::AsFd;
            already_in_place(&keys, handle.as_fd(), OsStr::new("f"), node)
        };
        let node = file_node(&keys, &[Some(b"head"), None, Some(b"tail")], 3 << 20);
        let mut right = b"head".to_vec();
        right.extend(std::iter::repeat_n(0u8, 3 << 20));
        right.extend_from_slice(b"tail");

        assert!(!in_place(&node), "missing");
        std::fs::write(&path, &right).unwrap();
        assert!(in_place(&node));

        let mut wrong_hole = right.clone();
        wrong_hole[2 << 20] = 1;
        std::fs::write(&path, &wrong_hole).unwrap();
        assert!(!in_place(&node), "a byte in the hole");

        let mut wrong_data = right.clone();
        *wrong_data.last_mut().unwrap() = b'X';
        std::fs::write(&path, &wrong_data).unwrap();
        assert!(!in_place(&node), "a byte of data");

        std::fs::write(&path, &right[1..]).unwrap();
        assert!(!in_place(&node), "another size");

        std::fs::remove_file(&path).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, &right).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(!in_place(&node), "a symlink is never in place");
    }
}
