//! The [`Backend`] over Apache OpenDAL: the local filesystem (the `fs` service) and memory.

use std::sync::Arc;

use opendal::options::{ReadOptions, WriteOptions};
use opendal::{EntryMode, Operator, blocking};

use super::{Backend, not_found};
use crate::error::{Error, ErrorKind, Result};
use crate::format::FileKind;

/// A repository store on any OpenDAL service, driven synchronously.
pub struct OpendalBackend {
    op: blocking::Operator,
    /// Writes in place with `O_CREAT|O_EXCL` on the local filesystem, where `op` stages in
    /// `tmp/` and renames (which cannot refuse an existing target atomically).
    exclusive: Option<blocking::Operator>,
    location: String,
    // Keeps the runtime that drives the blocking operator alive as long as the backend.
    _runtime: Arc<tokio::runtime::Runtime>,
}

/// Where writes to a filesystem repository are staged before an atomic rename.
pub const TMP_DIR: &str = "tmp";

impl OpendalBackend {
    /// A repository in a local directory that must exist. Writes go to `<root>/tmp`, are
    /// synced, then renamed.
    pub fn local(root: &std::path::Path) -> Result<Self> {
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => Self::local_create(root),
            Ok(_) => Err(Error::new(
                ErrorKind::RepositoryNotFound,
                format!(
                    "there is no kairn repository at {}: not a directory",
                    root.display()
                ),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::new(
                ErrorKind::RepositoryNotFound,
                format!(
                    "there is no kairn repository at {}: it does not exist",
                    root.display()
                ),
            )),
            Err(e) => Err(Error::io(format!("cannot access {}", root.display()), e)),
        }
    }

    /// A repository in a local directory, created when missing (for `init`).
    pub fn local_create(root: &std::path::Path) -> Result<Self> {
        let root_str = root
            .to_str()
            .ok_or_else(|| Error::invalid("repository path must be UTF-8"))?;
        let tmp = root.join(TMP_DIR);
        let tmp_str = tmp.to_str().unwrap_or_default().to_string();
        let builder = opendal::services::Fs::default()
            .root(root_str)
            .atomic_write_dir(&tmp_str);
        let op = Operator::new(builder).map_err(map_err)?;
        let in_place =
            Operator::new(opendal::services::Fs::default().root(root_str)).map_err(map_err)?;
        Self::with_operators(op, Some(in_place), root.display().to_string())
    }

    /// A repository held in memory, for tests.
    pub fn memory() -> Result<Self> {
        let op = Operator::new(opendal::services::Memory::default()).map_err(map_err)?;
        Self::with_operators(op, None, "memory".into())
    }

    fn with_operators(op: Operator, exclusive: Option<Operator>, location: String) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kairn-storage")
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the storage runtime", e))?;
        let (op, exclusive) = {
            let _guard = runtime.enter();
            let exclusive = match exclusive {
                Some(e) => Some(blocking::Operator::new(e).map_err(map_err)?),
                None => None,
            };
            (blocking::Operator::new(op).map_err(map_err)?, exclusive)
        };
        Ok(Self {
            op,
            exclusive,
            location,
            _runtime: Arc::new(runtime),
        })
    }
}

fn map_err(e: opendal::Error) -> Error {
    let kind = match e.kind() {
        opendal::ErrorKind::NotFound => ErrorKind::NotFound,
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
        self.location.clone()
    }

    fn create(&self) -> Result<()> {
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
        let op = self.exclusive.as_ref().unwrap_or(&self.op);
        if let Some((dir, _)) = path.rsplit_once('/') {
            op.create_dir(&format!("{dir}/")).map_err(map_err)?;
        }
        op.write_options(&path, data, opts)
            .map(|_| ())
            .map_err(|e| map_err(e).with_context("object", path))
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
