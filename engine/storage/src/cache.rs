//! A local cache of the repository files that never change and are read on every run: snapshots,
//! index files and the packs of trees. Listing snapshots or starting a backup on object storage
//! then downloads only what is new.
//!
//! The cache is disposable: deleting it loses nothing, and every failure to use it is silent
//! (the file is read from the repository instead). It is bounded: the least recently used files
//! go first. It is never trusted: these files are named by the BLAKE3 hash of their bytes, so a
//! cached copy is used only when it hashes to its name, and then it is decrypted and
//! authenticated like any file read from the repository.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use kairn_format::FileKind;
use kairn_format::error::{Error, Result};
use kairn_format::id::Id;

/// What the cache keeps.
pub const CACHED_KINDS: [FileKind; 3] = [FileKind::Snapshot, FileKind::Index, FileKind::Pack];

/// One repository's cache directory.
pub struct MetadataCache {
    root: PathBuf,
    max_bytes: u64,
    /// Bytes held, as last counted; recounted when it passes the bound.
    held: Mutex<u64>,
}

impl MetadataCache {
    /// The cache of the repository `repo_id` under `base`, holding at most `max_bytes`.
    pub fn open(base: &Path, repo_id: &Id, max_bytes: u64) -> Result<Self> {
        let root = base.join(repo_id.to_hex());
        for kind in CACHED_KINDS {
            fs::create_dir_all(root.join(kind.dir()))
                .map_err(|e| Error::io(format!("cannot create cache {}", root.display()), e))?;
        }
        let _ = fs::write(
            base.join("CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55\n# Kairn's cache: safe to delete.\n",
        );
        let held = entries(&root).iter().map(|e| e.size).sum();
        Ok(Self {
            root,
            max_bytes,
            held: Mutex::new(held),
        })
    }

    fn path(&self, kind: FileKind, name: &str) -> PathBuf {
        self.root.join(kind.dir()).join(name)
    }

    /// The cached bytes of an object, if present and they hash to its name.
    pub fn get(&self, kind: FileKind, name: &str) -> Option<Vec<u8>> {
        if !CACHED_KINDS.contains(&kind) {
            return None;
        }
        let path = self.path(kind, name);
        let bytes = fs::read(&path).ok()?;
        if Id::hash_of(&bytes).to_hex() != name {
            let _ = fs::remove_file(&path); // damaged or tampered with: fetch it again
            return None;
        }
        // Recency for the eviction order; atime may be off (noatime), so mtime it is.
        if let Ok(f) = fs::File::options().append(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(bytes)
    }

    /// Keeps a copy of an object whose bytes were verified against its name.
    pub fn put(&self, kind: FileKind, name: &str, bytes: &[u8]) {
        if !CACHED_KINDS.contains(&kind) || bytes.len() as u64 > self.max_bytes / 4 {
            return;
        }
        let path = self.path(kind, name);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if fs::write(&tmp, bytes).is_err() || fs::rename(&tmp, &path).is_err() {
            let _ = fs::remove_file(&tmp);
            return;
        }
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *held += bytes.len() as u64;
        if *held > self.max_bytes {
            *held = self.evict();
        }
    }

    /// Forgets cached objects of `kind` that the repository no longer has.
    pub fn retain(&self, kind: FileKind, stored: &HashSet<String>) {
        if !CACHED_KINDS.contains(&kind) {
            return;
        }
        for e in entries(&self.root) {
            if e.kind == kind && !stored.contains(&e.name) {
                let _ = fs::remove_file(&e.path);
            }
        }
    }

    /// Removes the least recently used files until 90% of the bound; returns the bytes left.
    fn evict(&self) -> u64 {
        let mut all = entries(&self.root);
        all.sort_by_key(|e| e.used);
        let mut held: u64 = all.iter().map(|e| e.size).sum();
        let target = self.max_bytes / 10 * 9;
        for e in all {
            if held <= target {
                break;
            }
            if fs::remove_file(&e.path).is_ok() {
                held -= e.size;
            }
        }
        held
    }
}

struct Entry {
    kind: FileKind,
    name: String,
    path: PathBuf,
    size: u64,
    used: SystemTime,
}

fn entries(root: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    for kind in CACHED_KINDS {
        let Ok(dir) = fs::read_dir(root.join(kind.dir())) else {
            continue;
        };
        for e in dir.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            out.push(Entry {
                kind,
                name: e.file_name().to_string_lossy().into_owned(),
                path: e.path(),
                size: meta.len(),
                used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_only_what_hashes_to_its_name_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MetadataCache::open(dir.path(), &Id([7; 32]), 4000).unwrap();
        let a = vec![1u8; 900];
        let name_a = Id::hash_of(&a).to_hex();
        cache.put(FileKind::Index, &name_a, &a);
        assert_eq!(cache.get(FileKind::Index, &name_a), Some(a.clone()));
        assert_eq!(cache.get(FileKind::Config, "config"), None);

        // Tampered: refused and removed.
        fs::write(cache.path(FileKind::Index, &name_a), b"evil").unwrap();
        assert_eq!(cache.get(FileKind::Index, &name_a), None);
        assert!(!cache.path(FileKind::Index, &name_a).exists());

        // Bounded: eight 900-byte files into 4000 bytes.
        for i in 0..8u8 {
            let b = vec![i; 900];
            cache.put(FileKind::Snapshot, &Id::hash_of(&b).to_hex(), &b);
        }
        let held: u64 = entries(&cache.root).iter().map(|e| e.size).sum();
        assert!(held <= 4000, "{held}");

        let keep: HashSet<String> = HashSet::new();
        cache.retain(FileKind::Snapshot, &keep);
        assert!(entries(&cache.root).is_empty());
    }
}
