//! An `images` snapshot's tree read back: the images `index.json` names, and every blob under
//! `blobs/sha256/`, checked against its digest when its bytes are read.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use sha2::{Digest as _, Sha256};

use super::layout::{self, Parsed, TopLevel};
use kairn_format::error::{Error, Result};
use kairn_format::snapshot::{Snapshot, SourceKind};
use kairn_format::tree::{Node, NodeKind};
use kairn_ops::backup::memory::{FileData, MemoryFile, StoredData};
use kairn_ops::inspect::dump::dump_file;
use kairn_repository::index::Index;
use kairn_repository::read::load_tree;
use kairn_repository::repo::Repository;

/// The layout's marker file.
pub const LAYOUT_FILE: &str = "oci-layout";
/// The layout's list of images.
pub const INDEX_FILE: &str = "index.json";

/// An images snapshot, read.
pub struct StoredLayout {
    /// The images, as `index.json` names them.
    pub images: Vec<TopLevel>,
    /// Every blob's content, by hex digest.
    pub blobs: HashMap<String, StoredData>,
    nodes: HashMap<String, Node>,
}

/// The files of an images snapshot: `oci-layout`, `index.json` and the blobs. Times are 0 and
/// modes 0644, so the same images give the same tree.
pub fn layout_files(tops: &[TopLevel], blobs: BTreeMap<String, FileData>) -> Vec<MemoryFile> {
    let file = |path: Vec<String>, content: FileData| MemoryFile {
        path,
        content,
        mode: 0o644,
        mtime: 0,
    };
    let mut files = vec![
        file(
            vec![LAYOUT_FILE.into()],
            FileData::Bytes(layout::OCI_LAYOUT.to_vec()),
        ),
        file(
            vec![INDEX_FILE.into()],
            FileData::Bytes(layout::index_json(tops)),
        ),
    ];
    for (hex, data) in blobs {
        files.push(file(vec!["blobs".into(), "sha256".into(), hex], data));
    }
    files
}

/// Reads an images snapshot's `index.json` and blob list.
pub fn read_layout(repo: &Repository, index: &Index, snapshot: &Snapshot) -> Result<StoredLayout> {
    if snapshot.source.kind != SourceKind::Images {
        return Err(Error::invalid(format!(
            "the snapshot holds {:?}, not container images",
            snapshot.source.kind
        )));
    }
    let root = load_tree(repo, index, &snapshot.tree)?;
    let index_node = child(&root.nodes, INDEX_FILE)
        .ok_or_else(|| Error::corrupt("the images snapshot has no index.json"))?;
    let mut bytes = Vec::new();
    dump_file(repo, index, index_node, &mut bytes)?;
    let images = layout::read_index_json(&bytes).map_err(Error::corrupt)?;
    let mut blobs = HashMap::new();
    let mut nodes = HashMap::new();
    let dir = child(&root.nodes, "blobs").and_then(|n| n.subtree());
    let sha = match dir {
        Some(id) => load_tree(repo, index, &id)?,
        None => return Err(Error::corrupt("the images snapshot has no blobs directory")),
    };
    if let Some(id) = child(&sha.nodes, "sha256").and_then(|n| n.subtree()) {
        for node in load_tree(repo, index, &id)?.nodes {
            if let NodeKind::File { size, content } = &node.kind {
                let hex = String::from_utf8_lossy(&node.name).into_owned();
                let data = StoredData {
                    size: *size,
                    extents: content.clone(),
                };
                blobs.insert(hex.clone(), data);
                nodes.insert(hex, node);
            }
        }
    }
    Ok(StoredLayout {
        images,
        blobs,
        nodes,
    })
}

fn child<'a>(nodes: &'a [Node], name: &str) -> Option<&'a Node> {
    nodes.iter().find(|n| n.name == name.as_bytes())
}

impl StoredLayout {
    /// Writes a blob's bytes to `out`, failing when they do not hash to `digest`.
    pub fn write_blob(
        &self,
        repo: &Repository,
        index: &Index,
        digest: &str,
        out: &mut dyn Write,
    ) -> Result<u64> {
        let hex = layout::digest_hex(digest).map_err(Error::invalid)?;
        let node = self.nodes.get(hex).ok_or_else(|| {
            Error::corrupt(format!("the images snapshot lacks the blob {digest}"))
        })?;
        let mut hashing = Hashing {
            out,
            hasher: Sha256::new(),
            len: 0,
        };
        dump_file(repo, index, node, &mut hashing)?;
        let actual = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
        if actual != digest {
            return Err(Error::corrupt(format!(
                "the stored blob {digest} hashes to {actual}"
            )));
        }
        Ok(hashing.len)
    }

    /// A blob's bytes (for manifests), checked.
    pub fn blob_bytes(&self, repo: &Repository, index: &Index, digest: &str) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.write_blob(repo, index, digest, &mut bytes)?;
        Ok(bytes)
    }

    /// The platforms an image holds, and the total size of its blobs, from its manifests.
    pub fn describe(
        &self,
        repo: &Repository,
        index: &Index,
        image: &TopLevel,
    ) -> Result<(Vec<String>, u64)> {
        let d = &image.descriptor;
        let bytes = self.blob_bytes(repo, index, &d.digest)?;
        let mut size = bytes.len() as u64;
        let mut platforms: Vec<String> = d.platform.iter().cloned().collect();
        let mut manifests = Vec::new();
        match layout::parse(&bytes).map_err(Error::corrupt)? {
            (_, Parsed::Manifest(parts)) => manifests.push(parts),
            (_, Parsed::Index(entries)) => {
                for e in entries {
                    platforms.extend(e.platform.clone());
                    size += e.size;
                    let bytes = self.blob_bytes(repo, index, &e.digest)?;
                    if let (_, Parsed::Manifest(parts)) =
                        layout::parse(&bytes).map_err(Error::corrupt)?
                    {
                        manifests.push(parts);
                    }
                }
            }
        }
        size += manifests.iter().flatten().map(|p| p.size).sum::<u64>();
        Ok((platforms, size))
    }
}

struct Hashing<'a> {
    out: &'a mut dyn Write,
    hasher: Sha256,
    len: u64,
}

impl Write for Hashing<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(data)?;
        self.hasher.update(&data[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
