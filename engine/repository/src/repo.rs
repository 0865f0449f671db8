//! The repository: a backend plus the master keys and config. It turns typed files into sealed,
//! hash-named objects and back, verifying every read. It holds no pipeline logic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::files::{Files, verify_name};
use crate::guard::DeleteGuard;
use crate::read::pack_cache::PackCache;
use crate::session::Session;
pub use crate::unlock::SkippedKey;
use crate::unlock::{Unlocked, list_ids, unlock};
use crate::unreadable::UnreadableFile;
use kairn_format::FileKind;
use kairn_format::chunker::{Chunker, ChunkerParams};
use kairn_format::config::Config;
use kairn_format::crypto::{KdfLimit, KdfParams, MasterKeys};
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::{Id, KeyId, PackId, SnapshotId};
use kairn_format::keyfile::KeyFile;
use kairn_format::repofile::ContentFile;
use kairn_format::sealed::{self, SealedType};
use kairn_format::snapshot::Snapshot;
use kairn_storage::Backend;
use rayon::prelude::*;

/// The snapshots that could be read, oldest first, and the snapshot files that could not.
#[derive(Debug, Clone, Default)]
pub struct SnapshotScan {
    /// The readable snapshots, oldest first.
    pub snapshots: Vec<(SnapshotId, Snapshot)>,
    /// Damaged snapshot files, skipped.
    pub damaged: Vec<UnreadableFile>,
}

/// The error for commands that must see every snapshot (prune, copy, stats): they refuse while
/// one is damaged, naming it and how to remove it.
pub fn refuse_damaged(damaged: &[UnreadableFile]) -> Result<()> {
    let Some(first) = damaged.first() else {
        return Ok(());
    };
    let short = first.name.get(..8).unwrap_or(&first.name);
    Err(Error::corrupt(format!(
        "{} snapshot file(s) cannot be read, first {short}: {}; remove them with \
         `repo repair snapshots` (or `repo forget {short}`)",
        damaged.len(),
        first.reason
    )))
}

/// Options for a new repository.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Chunk size bounds.
    pub chunk_sizes: ChunkerParams,
    /// zstd level.
    pub compression_level: i32,
    /// Target pack size.
    pub pack_size: u32,
    /// Cost of the first key.
    pub kdf: KdfParams,
    /// The store's retention lock, when its bucket has one.
    pub object_lock: Option<kairn_format::config::ObjectLock>,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            chunk_sizes: ChunkerParams::default(),
            compression_level: 3,
            pack_size: 16 << 20,
            kdf: KdfParams::default(),
            object_lock: None,
        }
    }
}

/// An open repository.
pub struct Repository {
    backend: Arc<dyn Backend>,
    keys: MasterKeys,
    config: Config,
    key_id: KeyId,
    chunker: Chunker,
    tree_packs: PackCache,
    files: Files,
    append_only: Arc<AtomicBool>,
    cache: std::sync::OnceLock<kairn_storage::cache::MetadataCache>,
    index_blobs_in_memory: std::sync::atomic::AtomicUsize,
    index_runs: std::sync::OnceLock<std::path::PathBuf>,
}

/// Blobs the index holds in memory before it spills to a run on disk, unless set otherwise:
/// about 92 MiB of entries.
pub const DEFAULT_INDEX_BLOBS_IN_MEMORY: usize = 2_000_000;

/// Bytes of whole tree packs kept in memory while walking snapshots.
const TREE_PACK_CACHE_BYTES: usize = 32 << 20;

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.backend.location())
    }
}

impl Repository {
    /// Creates a repository in an empty store, with one key for `password`.
    pub fn init(backend: Arc<dyn Backend>, password: &[u8], opts: &InitOptions) -> Result<Self> {
        match backend.size(FileKind::Config, "config") {
            Ok(_) => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("a repository already exists at {}", backend.location()),
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if !backend.list(FileKind::Key)?.is_empty() || !backend.list(FileKind::Snapshot)?.is_empty()
        {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{} holds key or snapshot files but no config (an interrupted init?): \
                     remove them or choose another location",
                    backend.location()
                ),
            ));
        }
        let mut config = Config::new(opts.chunk_sizes, opts.compression_level, opts.pack_size)?;
        config.object_lock = opts.object_lock;
        config.validate()?;
        let keys = MasterKeys::generate();
        backend.create()?;
        let key_id = add_key_file(backend.as_ref(), &keys, password, opts.kdf, false)?;
        let sealed =
            Files::new(backend.clone(), keys.clone(), config.compression_level).seal(&config)?;
        // The config is written last: a store without it is not a repository yet.
        match backend.write(FileKind::Config, "config", sealed.clone()) {
            Ok(()) => {}
            // A retried write whose first attempt landed finds its own bytes.
            Err(e)
                if e.kind() == ErrorKind::AlreadyExists
                    && backend.read(FileKind::Config, "config").ok().as_ref() == Some(&sealed) => {}
            Err(e) => return Err(e),
        }
        Self::assemble(backend, keys, config, key_id, false)
    }

    /// Opens a repository with a password, trying only key files within the default
    /// [`KdfLimit`].
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
        Self::open_with_limit(backend, password, KdfLimit::default()).map(|(repo, _)| repo)
    }

    /// Opens a repository with a password, trying only key files whose KDF cost is within
    /// `limit`; returns the key files skipped for their cost, for the caller to warn about.
    pub fn open_with_limit(
        backend: Arc<dyn Backend>,
        password: &[u8],
        limit: KdfLimit,
    ) -> Result<(Self, Vec<SkippedKey>)> {
        let config_bytes = match backend.read(FileKind::Config, "config") {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::new(
                    ErrorKind::RepositoryNotFound,
                    format!("there is no kairn repository at {}", backend.location()),
                ));
            }
            Err(e) => return Err(e),
        };
        sealed::check_header(&config_bytes, SealedType::Config)?;
        let (unlocked, skipped) = unlock(backend.as_ref(), password, limit)?;
        let Unlocked {
            keys,
            key_id,
            append_only,
        } = unlocked;
        let payload = sealed::open(&keys, SealedType::Config, &config_bytes)
            .map_err(|e| Error::corrupt(format!("the repository config is damaged: {e}")))?;
        let config = Config::decode(&payload)?;
        if config.version != config_bytes[4] {
            return Err(Error::corrupt(
                "the config's version disagrees with its header",
            ));
        }
        Ok((
            Self::assemble(backend, keys, config, key_id, append_only)?,
            skipped,
        ))
    }

    /// The handle over an unlocked repository.
    fn assemble(
        backend: Arc<dyn Backend>,
        keys: MasterKeys,
        config: Config,
        key_id: KeyId,
        append_only: bool,
    ) -> Result<Self> {
        let chunker = Chunker::new(config.chunk_sizes, keys.chunker_key())?;
        // Every layer above gets the guarded store, so no caller can delete in append-only mode.
        let append_only = Arc::new(AtomicBool::new(append_only));
        let backend: Arc<dyn Backend> = Arc::new(DeleteGuard::new(backend, append_only.clone()));
        let files = Files::new(backend.clone(), keys.clone(), config.compression_level);
        Ok(Self {
            backend,
            keys,
            config,
            key_id,
            chunker,
            tree_packs: PackCache::new(TREE_PACK_CACHE_BYTES),
            files,
            append_only,
            cache: std::sync::OnceLock::new(),
            index_blobs_in_memory: DEFAULT_INDEX_BLOBS_IN_MEMORY.into(),
            index_runs: std::sync::OnceLock::new(),
        })
    }

    /// The storage.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Starts a writer session (repo-format.md §14.1): its first heartbeat is written before
    /// this returns. Start it before loading the index. Everything that publishes (index files,
    /// snapshots, garbage lists) goes through the session, so no writer can skip the fence.
    pub fn begin_session(&self, kind: &str, expiry: std::time::Duration) -> Result<Session> {
        Session::start(self.files.clone(), kind, expiry, self.append_only())
    }

    /// Typed files over this repository's storage and keys.
    pub fn files(&self) -> &Files {
        &self.files
    }

    /// When the object may be deleted, in storage time (ms since the epoch), if the store's
    /// retention lock still holds it at `now`; `None` when it may be deleted now.
    pub fn locked_until(&self, kind: FileKind, name: &str, now: i64) -> Result<Option<i64>> {
        let Some(lock) = self.config.object_lock else {
            return Ok(None);
        };
        let written = match self.backend.modified(kind, name) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let until = written.saturating_add(lock.hold_ms());
        Ok((until > now).then_some(until))
    }

    /// The storage time against which retention locks are judged, once per operation (from
    /// the writer's session): `None` when the repository declares no lock (then nothing needs it).
    pub fn lock_clock(&self, session: &Session) -> Result<Option<i64>> {
        match self.config.object_lock {
            Some(_) => session.storage_now().map(Some),
            None => Ok(None),
        }
    }

    /// Deletes a content object (pack, index file, snapshot) unless the store's retention lock
    /// still holds it at `now` (from [`Self::lock_clock`]); then it sends nothing and returns
    /// when the object may go.
    pub fn delete_content(
        &self,
        kind: FileKind,
        name: &str,
        now: Option<i64>,
    ) -> Result<Option<i64>> {
        if let Some(now) = now
            && let Some(until) = self.locked_until(kind, name, now)?
        {
            return Ok(Some(until));
        }
        self.backend.delete(kind, name)?;
        Ok(None)
    }

    /// The storage, shared (for threads that outlive a borrow, like the heartbeat).
    pub fn backend_arc(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }

    /// Whole tree packs recently read; see [`crate::read::pack_cache`].
    pub fn tree_packs(&self) -> &PackCache {
        &self.tree_packs
    }

    /// The master keys.
    pub fn keys(&self) -> &MasterKeys {
        &self.keys
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The key file that opened this repository.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The repository's keyed chunker.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// Loads a file, checking its hash, authenticity and encoding.
    pub fn load_file<F: ContentFile>(&self, id: &F::Id) -> Result<F> {
        let name = id.as_ref().to_hex();
        let bytes = self.read_verified(F::KIND, &name)?;
        self.files.open(&name, &bytes)
    }

    /// Keeps snapshots, index files and tree packs in a local cache (see [`kairn_storage::cache`]).
    pub fn use_cache(&self, base: &std::path::Path, max_bytes: u64) -> Result<()> {
        let cache = kairn_storage::cache::MetadataCache::open(base, &self.config.id, max_bytes)?;
        let _ = self.cache.set(cache);
        self.keep_index_runs_in(base);
        Ok(())
    }

    /// Bounds the blobs the index holds in memory before it spills to a run on disk (in the
    /// cache directory, else a temporary one); `usize::MAX` never spills.
    pub fn set_index_memory(&self, blobs: usize) {
        self.index_blobs_in_memory
            .store(blobs, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn index_blobs_in_memory(&self) -> usize {
        self.index_blobs_in_memory
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn local_cache_key(&self) -> [u8; 32] {
        self.keys.local_cache_key()
    }

    /// Keeps the index run of a large index under `base`, in this
    /// repository's directory, for later operations; without it a run is temporary.
    /// [`Self::use_cache`] does this too.
    pub fn keep_index_runs_in(&self, base: &std::path::Path) {
        let _ = self
            .index_runs
            .set(base.join(self.config.id.to_hex()).join("index-run"));
    }

    pub(crate) fn index_run_dir(&self) -> Option<std::path::PathBuf> {
        self.index_runs.get().cloned()
    }

    /// A whole content-addressed file, checked against its name: from the cache when it holds
    /// it, else from the storage (and then kept in the cache).
    pub fn read_verified(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        let cache = self.cache.get();
        if let Some(bytes) = cache.and_then(|c| c.get(kind, name)) {
            return Ok(bytes);
        }
        let bytes = self.backend.read(kind, name)?;
        verify_name(kind, name, &bytes)?;
        if let Some(c) = cache {
            c.put(kind, name, &bytes);
        }
        Ok(bytes)
    }

    /// The ids of all files of a type.
    pub fn list_ids<F: ContentFile>(&self) -> Result<Vec<F::Id>> {
        let ids = self.files.list::<F>()?;
        if let Some(c) = self.cache.get() {
            c.retain(F::KIND, &ids.iter().map(|i| i.as_ref().to_hex()).collect());
        }
        Ok(ids)
    }

    /// Every stored pack with its size; names that are not pack ids are skipped.
    pub fn list_packs(&self) -> Result<Vec<(PackId, u64)>> {
        let listed = self.backend.list(FileKind::Pack)?;
        if let Some(c) = self.cache.get() {
            c.retain(
                FileKind::Pack,
                &listed.iter().map(|(n, _)| n.clone()).collect(),
            );
        }
        Ok(listed
            .into_iter()
            .filter_map(|(name, size)| name.parse().ok().map(|id| (id, size)))
            .collect())
    }

    /// Loads every snapshot, newest last. Fails when one is damaged, naming it and how to
    /// remove it ([`Self::scan_snapshots`] skips damaged ones instead).
    pub fn load_snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let found = self.scan_snapshots()?;
        refuse_damaged(&found.damaged)?;
        Ok(found.snapshots)
    }

    /// Loads every snapshot, skipping damaged files: one bad snapshot file must not stop
    /// listing or backing up. Only damage is skipped; a storage failure still fails.
    pub fn scan_snapshots(&self) -> Result<SnapshotScan> {
        let mut damaged = Vec::new();
        let mut ids = Vec::new();
        for name in self.list_names(FileKind::Snapshot)? {
            match Id::from_hex(&name) {
                Ok(id) => ids.push(SnapshotId::from(id)),
                Err(_) => damaged.push(UnreadableFile::new(name, "its name is not a snapshot id")),
            }
        }
        // A snapshot listed but then not found was forgotten meanwhile: it is simply gone.
        type Loaded = Option<std::result::Result<(SnapshotId, Snapshot), UnreadableFile>>;
        let loaded: Vec<Loaded> = ids
            .par_iter()
            .map(|id| match self.load_file::<Snapshot>(id) {
                Ok(s) => Ok(Some(Ok((*id, s)))),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    Ok(Some(Err(UnreadableFile::new(id.to_hex(), e.to_string()))))
                }
                Err(e) => Err(e),
            })
            .collect::<Result<_>>()?;
        let mut snapshots = Vec::with_capacity(loaded.len());
        for item in loaded.into_iter().flatten() {
            match item {
                Ok(snap) => snapshots.push(snap),
                Err(bad) => damaged.push(bad),
            }
        }
        snapshots.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        damaged.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(SnapshotScan { snapshots, damaged })
    }

    /// The names of all stored files of a kind; the cache forgets files no longer stored.
    pub fn list_names(&self, kind: FileKind) -> Result<Vec<String>> {
        let names: Vec<String> = self
            .backend
            .list(kind)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        if let Some(c) = self.cache.get() {
            c.retain(kind, &names.iter().cloned().collect());
        }
        Ok(names)
    }

    /// The ids of all files of a type; names that are not ids are left out, so one junk file
    /// does not hide the others.
    pub fn list_ids_lenient<F: ContentFile>(&self) -> Result<Vec<F::Id>> {
        Ok(self
            .backend
            .list(F::KIND)?
            .into_iter()
            .filter_map(|(name, _)| Id::from_hex(&name).ok().map(F::Id::from))
            .collect())
    }

    /// Adds a key file for another password.
    /// Adds a key; an append-only key can only add append-only keys.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams, append_only: bool) -> Result<KeyId> {
        if self.append_only() && !append_only {
            return Err(Error::new(
                ErrorKind::AppendOnly,
                "an append-only key can add only append-only keys",
            ));
        }
        add_key_file(
            self.backend.as_ref(),
            &self.keys,
            password,
            kdf,
            append_only,
        )
    }

    /// True when this repository was opened with an append-only key, or set so: then nothing
    /// may be deleted, and writers leave their session files for a full-rights prune.
    pub fn append_only(&self) -> bool {
        self.append_only.load(Ordering::Relaxed)
    }

    /// Puts this handle in append-only mode (for a storage credential without delete rights).
    pub fn set_append_only(&self) {
        self.append_only.store(true, Ordering::Relaxed);
    }

    /// Refuses `what` in append-only mode.
    pub fn refuse_append_only(&self, what: &str) -> Result<()> {
        if self.append_only() {
            return Err(Error::new(
                ErrorKind::AppendOnly,
                format!(
                    "{what} deletes from the repository, and it is open in append-only mode \
                     (an append-only key or --append-only): run it with a full key"
                ),
            ));
        }
        Ok(())
    }

    /// Lists key files.
    pub fn list_keys(&self) -> Result<Vec<(KeyId, KeyFile)>> {
        let mut out = Vec::new();
        for id in list_ids(self.backend.as_ref(), FileKind::Key)? {
            let name = id.to_hex();
            let bytes = self.backend.read(FileKind::Key, &name)?;
            verify_name(FileKind::Key, &name, &bytes)?;
            out.push((KeyId(id), KeyFile::decode(&bytes)?));
        }
        out.sort_by(|a, b| a.1.created.cmp(&b.1.created));
        Ok(out)
    }

    /// Removes a key file. The last key, and the key in use, cannot be removed.
    pub fn remove_key(&self, id: KeyId) -> Result<()> {
        if id == self.key_id {
            return Err(Error::invalid(
                "refusing to remove the key that opened the repository",
            ));
        }
        let keys = list_ids(self.backend.as_ref(), FileKind::Key)?;
        if !keys.contains(&id.0) {
            return Err(Error::new(ErrorKind::NotFound, format!("no key {id}")));
        }
        self.backend.delete(FileKind::Key, &id.to_hex())
    }
}

fn add_key_file(
    backend: &dyn Backend,
    keys: &MasterKeys,
    password: &[u8],
    kdf: KdfParams,
    append_only: bool,
) -> Result<KeyId> {
    let kf = KeyFile::create(
        keys,
        password,
        kdf,
        &crate::sysinfo::hostname(),
        &crate::sysinfo::username(),
        append_only,
    )?;
    let bytes = kf.encode()?;
    let id = Id::hash_of(&bytes);
    backend.write(FileKind::Key, &id.to_hex(), bytes)?;
    Ok(KeyId(id))
}
