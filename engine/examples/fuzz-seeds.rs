//! Writes the fuzzers' seed corpora (`fuzz/seeds/`) from a real repository: it initialises one in
//! a temporary directory, backs up a directory of real files (default: this crate's sources)
//! twice, and exports every stored file, sealed and opened, beside the master keys that open
//! them.
//!
//! `cargo run -p kairn-engine --example fuzz-seeds -- [SOURCE] [OUT]`

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::backend::{Backend, OpendalBackend};
use engine::backup::{BackupOptions, backup};
use engine::chunker::ChunkerParams;
use engine::crypto::KdfParams;
use engine::format::FileKind;
use engine::format::pack::read_header_from_bytes;
use engine::format::repofile::RepoFile;
use engine::format::sealed::{self, SealedType};
use engine::id::Id;
use engine::index::Index;
use engine::progress::NoProgress;
use engine::repo::{InitOptions, Repository};

/// Seeds larger than this slow the fuzzer down more than they add.
const MAX_SEED: usize = 256 << 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = args
        .next()
        .map_or_else(|| manifest.join("src"), PathBuf::from);
    let out = args
        .next()
        .map_or_else(|| manifest.join("../fuzz/seeds"), PathBuf::from);

    let work = tempfile::tempdir()?;
    let backend: Arc<dyn Backend> = Arc::new(OpendalBackend::local_create(work.path())?);
    let opts = InitOptions {
        chunk_sizes: ChunkerParams {
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
        },
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    let repo = Repository::init(backend.clone(), b"fuzz", &opts)?;
    let seeds_of_session = back_up_twice(&repo, backend.as_ref(), &source)?;

    let keys = repo.keys();
    let seeds = Seeds(out);
    std::fs::create_dir_all(&seeds.0)?;
    std::fs::write(seeds.0.join("master.key"), keys.to_bytes())?;

    let config = backend.read(FileKind::Config, "config")?;
    seeds.put("config", &sealed::open(keys, SealedType::Config, &config)?)?;
    seeds.put("config", &config)?;
    for sealed_bytes in &seeds_of_session {
        seeds.put("session", sealed_bytes)?;
    }
    let garbage = engine::format::garbage::GarbageList {
        unindexed: vec![(engine::id::PackId(Id::hash_of(b"pack")), 4096)],
        sessions: vec![engine::id::SessionId(Id::hash_of(b"session"))],
        ..Default::default()
    };
    seeds.put("session", &repo.files().seal(&garbage)?)?;
    seeds.put("session", &garbage.to_payload()?)?;
    for (name, _) in backend.list(FileKind::Key)? {
        seeds.put("keyfile", &backend.read(FileKind::Key, &name)?)?;
    }
    for (kind, ty, target) in [
        (FileKind::Index, SealedType::Index, "index"),
        (FileKind::Snapshot, SealedType::Snapshot, "snapshot"),
    ] {
        for (name, _) in backend.list(kind)? {
            let bytes = backend.read(kind, &name)?;
            seeds.put(target, &sealed::open(keys, ty, &bytes)?)?;
            seeds.put(target, &bytes)?;
        }
    }
    for (name, _) in backend.list(FileKind::Pack)? {
        let pack = backend.read(FileKind::Pack, &name)?;
        let header = read_header_from_bytes(keys, &pack)?;
        seeds.put("pack_header", &pack)?;
        for e in header.entries.iter().take(16) {
            let stored = &pack[e.offset as usize..(e.offset + e.length) as usize];
            let mut blob = vec![e.kind.byte() & 1];
            blob.extend_from_slice(&e.raw_length.to_le_bytes());
            blob.extend_from_slice(&e.id.0.0);
            blob.extend_from_slice(stored);
            seeds.put("blob", &blob)?;
            let plain = engine::format::blob::open_blob(
                keys,
                e.kind,
                &e.id,
                stored,
                e.raw_length as usize,
            )?;
            match e.kind {
                engine::id::BlobKind::Tree => seeds.put("tree", &plain)?,
                engine::id::BlobKind::Data => seeds.put("chunker", &plain)?,
            }
        }
    }
    Ok(())
}

/// Two backups of `source`; returns the sealed heartbeats and fences seen while they ran
/// (seeds of the `session` target).
fn back_up_twice(
    repo: &Repository,
    backend: &dyn Backend,
    source: &Path,
) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
    let mut seeds_of_session = Vec::new();
    for _ in 0..2 {
        let session = repo.begin_session("backup", engine::session::DEFAULT_EXPIRY)?;
        let index = Index::load(repo)?;
        let opts = BackupOptions {
            paths: vec![source.to_path_buf()],
            ..Default::default()
        };
        backup(repo, &session, &index, &opts, &NoProgress)?;
        // Seeds of the session's own files, while they exist: heartbeats and the fence.
        for kind in [FileKind::Session, FileKind::Fence] {
            for (name, _) in backend.list(kind)? {
                seeds_of_session.push(backend.read(kind, &name)?);
            }
        }
        session.end()?;
    }
    Ok(seeds_of_session)
}

struct Seeds(PathBuf);

impl Seeds {
    fn put(&self, target: &str, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.len() > MAX_SEED {
            return Ok(());
        }
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(&Id::hash_of(bytes).to_hex()[..16]), bytes)
    }
}
