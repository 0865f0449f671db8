//! The [`Backend`] over Apache OpenDAL: the local filesystem (the `fs` service), S3, any other
//! OpenDAL service, and memory.

use std::sync::Arc;

use opendal::layers::{ConcurrentLimitLayer, RetryLayer, ThrottleLayer, TimeoutLayer};
use opendal::options::{ReadOptions, WriteOptions};
use opendal::{EntryMode, Operator, blocking};

use super::local::TMP_DIR;
use super::location::{Location, S3_OPTIONS, StorageOptions};
use super::{Backend, LocalBackend, not_found};
use kairn_format::FileKind;
use kairn_format::error::{Error, ErrorKind, Result};

/// The store at a location: a local directory driven directly ([`LocalBackend`]), every other
/// store through OpenDAL.
pub struct OpendalBackend {
    store: Store,
}

enum Store {
    Local(LocalBackend),
    Service(ServiceStore),
}

/// A repository store on an OpenDAL service, driven synchronously.
struct ServiceStore {
    op: blocking::Operator,
    location: String,
    /// A filesystem needs its directories made by `create`; object stores have none.
    directories: bool,
    // Keeps the runtime that drives the blocking operator alive as long as the backend.
    _runtime: Arc<tokio::runtime::Runtime>,
}

impl OpendalBackend {
    /// The store at `location`; `create` is for `init` (a local directory is made if missing).
    pub fn open(location: &Location, opts: &StorageOptions, create: bool) -> Result<Self> {
        match location {
            Location::Local(path) => {
                if !opts.options.is_empty() {
                    let keys: Vec<&str> = opts.options.keys().map(String::as_str).collect();
                    return Err(Error::invalid(format!(
                        "a local repository takes no storage options (given: {}; from -o, \
                         --option-file or KAIRN_OPTION_* variables)",
                        keys.join(", ")
                    )));
                }
                if create {
                    Self::local_create(path)
                } else {
                    Self::local(path)
                }
            }
            Location::S3 { bucket, prefix } => {
                opendal::install_default(); // the HTTP client; idempotent
                opts.check_known(S3_OPTIONS, "s3:// locations")?;
                let op = Operator::new(s3_builder(bucket, prefix, opts)?).map_err(map_err)?;
                let op = with_layers(op, opts)?;
                Self::with_operator(op, location.to_string(), false)
            }
            Location::Opendal { service } => {
                opendal::install_default(); // the service registry and HTTP client

                let op = Operator::via_iter(service, opts.options.clone())
                    .map_err(|e| map_err(e).with_context("service", service.clone()))?;
                let op = with_layers(op, opts)?;
                let directories = service == "fs";
                Self::with_operator(op, location.to_string(), directories)
            }
        }
    }

    /// A repository in a local directory that must exist (see [`LocalBackend`]).
    pub fn local(root: &std::path::Path) -> Result<Self> {
        Ok(Self {
            store: Store::Local(LocalBackend::open(root)?),
        })
    }

    /// A repository in a local directory, created when missing (for `init`).
    pub fn local_create(root: &std::path::Path) -> Result<Self> {
        Ok(Self {
            store: Store::Local(LocalBackend::open_or_make(root)?),
        })
    }

    /// A repository held in memory, for tests.
    pub fn memory() -> Result<Self> {
        let op = Operator::new(opendal::services::Memory::default()).map_err(map_err)?;
        Self::with_operator(op, "memory".into(), false)
    }

    fn with_operator(op: Operator, location: String, directories: bool) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kairn-storage")
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the storage runtime", e))?;
        let op = {
            let _guard = runtime.enter();
            blocking::Operator::new(op).map_err(map_err)?
        };
        Ok(Self {
            store: Store::Service(ServiceStore {
                op,
                location,
                directories,
                _runtime: Arc::new(runtime),
            }),
        })
    }

    fn store(&self) -> &dyn Backend {
        match &self.store {
            Store::Local(local) => local,
            Store::Service(service) => service,
        }
    }
}

/// S3, configured from the options alone when ambient credentials are off (tests must never
/// reach for `~/.aws` or the instance metadata service).
fn s3_builder(bucket: &str, prefix: &str, opts: &StorageOptions) -> Result<opendal::services::S3> {
    let mut b = opendal::services::S3::default()
        .bucket(bucket)
        .root(&format!("/{prefix}"));
    if let Some(v) = opts.get("endpoint") {
        b = b.endpoint(v);
    }
    b = b.region(opts.get("region").unwrap_or("us-east-1"));
    if opts.flag("virtual-host", false)? {
        b = b.enable_virtual_host_style();
    }
    if let Some(v) = opts.get("access-key-id") {
        b = b.access_key_id(v);
    }
    if let Some(v) = opts.get("secret-access-key") {
        b = b.secret_access_key(v);
    }
    if let Some(v) = opts.get("session-token") {
        b = b.session_token(v);
    }
    if let Some(v) = opts.get("profile") {
        b = b.profile(v);
    }
    if let Some(v) = opts.get("storage-class") {
        b = b.default_storage_class(v);
    }
    // Content-MD5 by default: what every S3 implementation accepts for a bucket with Object
    // Lock (moto refuses x-amz-checksum-crc32c alone there, as AWS documents).
    match opts.get("checksum").unwrap_or("md5") {
        "none" => {}
        algo @ ("crc32c" | "md5") => b = b.checksum_algorithm(algo),
        other => {
            return Err(Error::invalid(format!(
                "option checksum={other:?}: use crc32c, md5 or none"
            )));
        }
    }
    if !opts.flag("ambient-credentials", true)? {
        b = b.disable_config_load().disable_ec2_metadata();
    }
    Ok(b)
}

/// Retries with backoff and jitter around a timeout (in that order, as OpenDAL asks: a retry
/// must see the timeout's error, not a dropped future), throttled and limited outside both.
fn with_layers(op: Operator, opts: &StorageOptions) -> Result<Operator> {
    let mut op = op
        .layer(
            TimeoutLayer::new()
                .with_timeout(opts.timeout)
                .with_io_timeout(opts.io_timeout),
        )
        .layer(
            RetryLayer::new()
                .with_max_times(opts.retries)
                .with_min_delay(std::time::Duration::from_millis(100))
                .with_max_delay(std::time::Duration::from_secs(10))
                .with_jitter(),
        );
    if let Some(bandwidth) = opts.bandwidth {
        let bandwidth = u32::try_from(bandwidth.max(1)).unwrap_or(u32::MAX);
        // The burst must admit the largest single write (a pack), or it would never pass.
        op = op.layer(ThrottleLayer::new(bandwidth, bandwidth.max(64 << 20)));
    }
    if opts.connections == 0 {
        return Err(Error::invalid("at least one connection is needed"));
    }
    Ok(op.layer(ConcurrentLimitLayer::new(opts.connections)))
}

fn map_err(e: opendal::Error) -> Error {
    let kind = match e.kind() {
        opendal::ErrorKind::NotFound => ErrorKind::NotFound,
        opendal::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        opendal::ErrorKind::AlreadyExists | opendal::ErrorKind::ConditionNotMatch => {
            ErrorKind::AlreadyExists
        }
        _ if is_no_space_message(&e) => ErrorKind::NoSpace,
        _ => ErrorKind::Backend,
    };
    let retryable = e.is_temporary();
    Error::new(kind, "storage operation failed")
        .with_source(e)
        .set_retryable(retryable)
}

fn is_no_space_message(e: &opendal::Error) -> bool {
    let text = format!("{e:?}");
    text.contains("No space left") || text.contains("StorageFull") || text.contains("Disk quota")
}

fn map_err_at(e: opendal::Error, kind: FileKind, name: &str) -> Error {
    if e.kind() == opendal::ErrorKind::NotFound {
        return not_found(kind, name);
    }
    map_err(e).with_context("object", kind.path(name))
}

impl Backend for OpendalBackend {
    fn location(&self) -> String {
        self.store().location()
    }

    fn create(&self) -> Result<()> {
        self.store().create()
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        self.store().read(kind, name)
    }

    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.store().read_range(kind, name, offset, length)
    }

    fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        self.store().write(kind, name, data)
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        self.store().size(kind, name)
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        self.store().list(kind)
    }

    fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        self.store().delete(kind, name)
    }

    fn create_exclusive(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        self.store().create_exclusive(kind, name, data)
    }

    fn modified(&self, kind: FileKind, name: &str) -> Result<i64> {
        self.store().modified(kind, name)
    }

    fn remove_stale_staged(&self, max_age: std::time::Duration) -> Result<u64> {
        self.store().remove_stale_staged(max_age)
    }

    fn undelete(&self) -> Result<u64> {
        self.store().undelete()
    }
}

impl Backend for ServiceStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self) -> Result<()> {
        if !self.directories {
            return Ok(());
        }
        for kind in FileKind::ALL {
            if kind != FileKind::Config {
                self.op
                    .create_dir(&format!("{}/", kind.dir()))
                    .map_err(map_err)?;
            }
        }
        self.op
            .create_dir(&format!("{TMP_DIR}/"))
            .map_err(map_err)?;
        for i in 0..=255u8 {
            self.op
                .create_dir(&format!("data/{i:02x}/"))
                .map_err(map_err)?;
        }
        Ok(())
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        self.op
            .read(&kind.path(name))
            .map(|b| b.to_vec())
            .map_err(|e| map_err_at(e, kind, name))
    }

    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        if length == 0 {
            return Ok(Vec::new());
        }
        let end = offset
            .checked_add(length)
            .ok_or_else(|| Error::invalid("read range overflows"))?;
        let opts = ReadOptions {
            range: (offset..end).into(),
            ..Default::default()
        };
        let data = self
            .op
            .read_options(&kind.path(name), opts)
            .map_err(|e| map_err_at(e, kind, name))?
            .to_vec();
        if data.len() as u64 != length {
            return Err(Error::corrupt(format!(
                "{} {} is shorter than expected: asked for {length} bytes at {offset}, got {}",
                kind.name(),
                name,
                data.len()
            )));
        }
        Ok(data)
    }

    fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        let opts = WriteOptions {
            if_not_exists: true,
            ..Default::default()
        };
        self.op
            .write_options(&kind.path(name), data, opts)
            .map(|_| ())
            .map_err(|e| map_err(e).with_context("object", kind.path(name)))
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        self.op
            .stat(&kind.path(name))
            .map(|m| m.content_length())
            .map_err(|e| map_err_at(e, kind, name))
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        if kind == FileKind::Config {
            return Ok(match self.size(kind, "config") {
                Ok(size) => vec![("config".to_string(), size)],
                Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e),
            });
        }
        let dir = format!("{}/", kind.dir());
        let opts = opendal::options::ListOptions {
            recursive: true,
            ..Default::default()
        };
        let entries = match self.op.list_options(&dir, opts) {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(map_err(e)),
        };
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.metadata().mode() != EntryMode::FILE {
                continue;
            }
            let name = entry.name().to_string();
            let canonical =
                name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !canonical || entry.path() != kind.path(&name) {
                continue; // not ours: a stray or misplaced file, never an object
            }
            let size = match entry.metadata().content_length() {
                0 => self.size(kind, &name).unwrap_or(0),
                n => n,
            };
            out.push((name, size));
        }
        Ok(out)
    }

    fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        match self.op.delete(&kind.path(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(map_err_at(e, kind, name)),
        }
    }

    fn create_exclusive(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        let opts = WriteOptions {
            if_not_exists: true,
            ..Default::default()
        };
        let path = kind.path(name);
        let op = &self.op;
        if let Some((dir, _)) = path.rsplit_once('/')
            && self.directories
        {
            op.create_dir(&format!("{dir}/")).map_err(map_err)?;
        }
        op.write_options(&path, data, opts)
            .map(|_| ())
            .map_err(|e| map_err(e).with_context("object", path))
    }

    fn undelete(&self) -> Result<u64> {
        let cap = self.op.info().capability();
        if !cap.list_with_deleted || !cap.delete_with_version {
            return Err(Error::invalid(format!(
                "{} keeps no object versions, so nothing deleted can be brought back",
                self.location
            )));
        }
        let opts = opendal::options::ListOptions {
            recursive: true,
            versions: true,
            deleted: true,
            ..Default::default()
        };
        let mut restored = 0;
        for entry in self.op.list_options("", opts).map_err(map_err)? {
            let meta = entry.metadata();
            let Some(version) = meta.version().filter(|_| meta.is_deleted()) else {
                continue;
            };
            let del = opendal::options::DeleteOptions {
                version: Some(version.to_string()),
                ..Default::default()
            };
            self.op
                .delete_options(entry.path(), del)
                .map_err(|e| map_err(e).with_context("object", entry.path().to_string()))?;
            restored += 1;
        }
        Ok(restored)
    }

    fn modified(&self, kind: FileKind, name: &str) -> Result<i64> {
        let meta = self
            .op
            .stat(&kind.path(name))
            .map_err(|e| map_err_at(e, kind, name))?;
        let time = meta.last_modified().ok_or_else(|| {
            Error::new(
                ErrorKind::Backend,
                "the storage does not report modification times",
            )
        })?;
        let since_epoch = std::time::SystemTime::from(time)
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| {
                Error::new(ErrorKind::Backend, "the storage reports a time before 1970")
            })?;
        Ok(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }
}
