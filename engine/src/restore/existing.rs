//! Resuming a restore: a file already at its destination with exactly the snapshot's content
//! (left by an interrupted run, or there from the start) is not written again. "Exactly" is
//! checked, not guessed from size and time: every extent is read back and hashed with the
//! repository's keyed blob hash, and holes must read as zeros.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::crypto::MasterKeys;
use crate::format::tree::{Extent, Node, NodeKind};

/// True when `path` is a regular file (not a symlink) holding exactly `node`'s content.
pub(crate) fn already_in_place(keys: &MasterKeys, path: &Path, node: &Node) -> bool {
    let NodeKind::File { size, content } = &node.kind else {
        return false;
    };
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.len() != *size {
        return false;
    }
    let Ok(mut file) = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
    else {
        return false;
    };
    let mut buf = Vec::new();
    content
        .iter()
        .all(|extent| matches(keys, &mut file, extent, &mut buf))
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
