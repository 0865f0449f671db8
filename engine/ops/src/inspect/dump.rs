//! `dump`: a file's content to a writer, or a directory as a tar stream.

use std::io::{Read, Write};

use kairn_format::error::{Error, Result};
use kairn_format::tree::{Node, NodeKind};
use kairn_repository::index::Index;
use kairn_repository::locate::Located;
use kairn_repository::read::content::ContentReader;
use kairn_repository::repo::Repository;

fn io_err(e: std::io::Error) -> Error {
    Error::io("cannot write the dump", e)
}

/// Writes a file's content, holes as zeros.
pub fn dump_file(repo: &Repository, index: &Index, node: &Node, out: &mut dyn Write) -> Result<()> {
    let NodeKind::File { content, .. } = &node.kind else {
        return Err(Error::invalid(format!(
            "{} is not a regular file",
            node.display_name()
        )));
    };
    let mut reader = ContentReader::new(repo, index, content);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) => return Err(reader.take_failure().unwrap_or_else(|| io_err(e))),
        };
        out.write_all(&buf[..n]).map_err(io_err)?;
    }
}

/// Writes what `start` names as a tar stream (GNU format, long names supported).
pub fn dump_tar(
    repo: &Repository,
    index: &Index,
    start: &Located,
    out: &mut dyn Write,
) -> Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut add = |path: &str, node: &Node| -> Result<()> {
        let rel = path.trim_start_matches('/');
        let mut header = tar::Header::new_gnu();
        header.set_mode(node.mode);
        header.set_uid(u64::from(node.uid));
        header.set_gid(u64::from(node.gid));
        header.set_mtime(u64::try_from(node.mtime.secs).unwrap_or(0));
        let _ = header.set_username(&node.user);
        let _ = header.set_groupname(&node.group);
        let result = match &node.kind {
            NodeKind::Dir { .. } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, format!("{rel}/"), std::io::empty())
            }
            NodeKind::File { size, content } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(*size);
                let reader = ContentReader::new(repo, index, content);
                builder.append_data(&mut header, rel, reader)
            }
            NodeKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, rel, String::from_utf8_lossy(target).as_ref())
            }
            NodeKind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                header.set_size(0);
                builder.append_data(&mut header, rel, std::io::empty())
            }
            NodeKind::BlockDevice { rdev } | NodeKind::CharDevice { rdev } => {
                let is_block = matches!(node.kind, NodeKind::BlockDevice { .. });
                header.set_entry_type(if is_block {
                    tar::EntryType::Block
                } else {
                    tar::EntryType::Char
                });
                header.set_size(0);
                let _ = header.set_device_major(nix::sys::stat::major(*rdev) as u32);
                let _ = header.set_device_minor(nix::sys::stat::minor(*rdev) as u32);
                builder.append_data(&mut header, rel, std::io::empty())
            }
            NodeKind::Socket => Ok(()),
        };
        result.map_err(io_err)
    };
    let prefix = match start {
        Located::Node(node) if node.is_dir() => {
            let name = format!("/{}", node.display_name());
            add(&name, node)?;
            name
        }
        _ => String::new(),
    };
    crate::inspect::ls::walk(repo, index, start, &prefix, true, &mut add)?;
    builder
        .into_inner()
        .map_err(io_err)?
        .flush()
        .map_err(io_err)
}
