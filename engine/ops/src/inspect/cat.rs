//! `repo cat`: stored objects decrypted and shown as JSON, for humans and for debugging.

use base64::Engine as _;
use serde_json::{Value, json};

use kairn_format::error::Result;
use kairn_format::id::BlobKind;
use kairn_format::id::{BlobId, IndexId, PackId};
use kairn_format::index::IndexFile;
use kairn_format::pack::read_header_from_bytes;
use kairn_format::snapshot::Snapshot;
use kairn_format::tree::{Extent, Node, NodeKind, Tree};
use kairn_repository::index::Index;
use kairn_repository::read::pack::PackSpan;
use kairn_repository::read::read_blob;
use kairn_repository::repo::Repository;

fn bytes_value(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) }),
    }
}

/// A node as JSON.
pub fn node_json(n: &Node) -> Value {
    let kind = match &n.kind {
        NodeKind::File { size, content } => json!({
            "type": "file",
            "size": size,
            "content": content.iter().map(|e| match e {
                Extent::Data { id, len } => json!({ "blob": id.to_hex(), "length": len }),
                Extent::Hole { len } => json!({ "hole": len }),
            }).collect::<Vec<_>>(),
        }),
        NodeKind::Dir { subtree } => json!({ "type": "dir", "subtree": subtree.to_hex() }),
        NodeKind::Symlink { target } => json!({ "type": "symlink", "target": bytes_value(target) }),
        NodeKind::BlockDevice { rdev } => json!({ "type": "block-device", "rdev": rdev }),
        NodeKind::CharDevice { rdev } => json!({ "type": "char-device", "rdev": rdev }),
        NodeKind::Fifo => json!({ "type": "fifo" }),
        NodeKind::Socket => json!({ "type": "socket" }),
    };
    json!({
        "name": bytes_value(&n.name),
        "kind": kind,
        "mode": format!("{:o}", n.mode),
        "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group,
        "mtime": [n.mtime.secs, n.mtime.nanos],
        "atime": [n.atime.secs, n.atime.nanos],
        "ctime": [n.ctime.secs, n.ctime.nanos],
        "inode": n.inode, "device": n.device, "links": n.links,
        "xattrs": n.xattrs.iter().map(|x| json!({ "name": bytes_value(&x.name), "value": bytes_value(&x.value) })).collect::<Vec<_>>(),
    })
}

/// The decrypted config.
pub fn config(repo: &Repository) -> Value {
    serde_json::to_value(repo.config()).unwrap_or(Value::Null)
}

/// A snapshot.
pub fn snapshot(repo: &Repository, id: &kairn_format::id::SnapshotId) -> Result<Value> {
    Ok(serde_json::to_value(repo.load_file::<Snapshot>(id)?).unwrap_or(Value::Null))
}

/// An index file.
pub fn index_file(repo: &Repository, id: &IndexId) -> Result<Value> {
    let f = repo.load_file::<IndexFile>(id)?;
    Ok(json!({
        "supersedes": f.supersedes.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
        "packs": f.packs.iter().map(|p| json!({
            "id": p.id.to_hex(),
            "size": p.size,
            "blobs": p.blobs.iter().map(|b| json!({
                "type": b.kind, "id": b.id.to_hex(), "offset": b.offset, "length": b.length, "raw_length": b.raw_length,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    }))
}

/// A pack's header, read from the pack itself and checked against its name.
pub fn pack(repo: &Repository, id: &PackId) -> Result<Value> {
    let name = id.to_hex();
    let span = PackSpan::read_whole(repo, *id)?;
    let bytes = span.bytes();
    let header = read_header_from_bytes(repo.keys(), bytes)?;
    Ok(json!({
        "id": name,
        "size": bytes.len(),
        "blobs": header.entries.iter().map(|b| json!({
            "type": b.kind, "id": b.id.to_hex(), "offset": b.offset, "length": b.length, "raw_length": b.raw_length,
        })).collect::<Vec<_>>(),
    }))
}

/// A tree blob.
pub fn tree(repo: &Repository, index: &Index, id: &BlobId) -> Result<Value> {
    let t = Tree::decode(&read_blob(repo, index, BlobKind::Tree, id)?)?;
    Ok(json!({ "nodes": t.nodes.iter().map(node_json).collect::<Vec<_>>() }))
}

/// A data blob's raw bytes.
pub fn blob(repo: &Repository, index: &Index, id: &BlobId) -> Result<Vec<u8>> {
    let kind = index.get(id).map_or(BlobKind::Data, |l| l.kind);
    read_blob(repo, index, kind, id)
}
