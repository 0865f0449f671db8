//! The engine's one error type: a kind that callers branch on, a message, context and a source.
//!
//! Binaries map [`ErrorKind`] to exit codes; [`Error::is_retryable`] tells a transient storage
//! failure from a permanent one, as opendal's error status does.

use std::fmt;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An object that was asked for does not exist in the repository storage.
    NotFound,
    /// An object that must be created new already exists.
    AlreadyExists,
    /// There is no repository at the given location (no `config`).
    RepositoryNotFound,
    /// No key file of the repository opens with the given password.
    WrongPassword,
    /// The repository, or one of its files, uses a format version newer than this build reads.
    UnsupportedVersion,
    /// Stored bytes failed authentication, their hash, or decoding.
    Corrupt,
    /// A caller's argument was wrong: a bad snapshot name, pattern or option.
    InvalidInput,
    /// A local filesystem operation failed.
    Io,
    /// The local filesystem or the storage is full.
    NoSpace,
    /// The repository storage failed in a way that is not `NotFound`.
    Backend,
    /// The storage refused the request: the credential lacks the right, or the object is under
    /// a retention lock (S3 Object Lock).
    PermissionDenied,
    /// The operation would delete or replace stored objects, and this repository is opened in
    /// append-only mode (by an append-only key or `--append-only`).
    AppendOnly,
    /// This writer's session was expired by a prune (or could not keep its heartbeat), so it
    /// must not publish what it wrote; re-running it is safe.
    SessionExpired,
    /// The caller asked the operation to stop (a progress reporter's `should_stop`). What
    /// was stored before the stop follows the write-ordering invariant, so re-running is safe.
    Canceled,
    /// A source outside the repository (etcd) sent data that failed its own integrity check:
    /// a cut stream, or a hash that does not match. Nothing was recorded.
    SourceCorrupt,
    /// A source outside the repository (etcd) could not be reached, refused, or broke off.
    SourceUnavailable,
    /// A source outside the repository (a registry) refused the credentials, or gave them no
    /// right to what was asked. Retrying with the same credentials cannot help.
    SourceDenied,
    /// An invariant of the engine itself was broken: a bug.
    Internal,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not found",
            Self::AlreadyExists => "already exists",
            Self::RepositoryNotFound => "repository not found",
            Self::WrongPassword => "wrong password",
            Self::UnsupportedVersion => "unsupported format version",
            Self::Corrupt => "corrupt data",
            Self::InvalidInput => "invalid input",
            Self::Io => "i/o error",
            Self::NoSpace => "no space left",
            Self::Backend => "storage error",
            Self::PermissionDenied => "permission denied by the storage",
            Self::AppendOnly => "refused in append-only mode",
            Self::SessionExpired => "session expired",
            Self::Canceled => "canceled",
            Self::SourceCorrupt => "source failed its integrity check",
            Self::SourceUnavailable => "source unavailable",
            Self::SourceDenied => "source denied access",
            Self::Internal => "internal error",
        }
    }
}

/// An engine error: kind, message, context pairs and an optional source.
pub struct Error {
    kind: ErrorKind,
    message: String,
    context: Vec<(&'static str, String)>,
    retryable: bool,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            context: Vec::new(),
            retryable: false,
            source: None,
        }
    }

    /// Shorthand for an [`ErrorKind::Corrupt`] error.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }

    /// Shorthand for an [`ErrorKind::InvalidInput`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// The error an operation returns when it was asked to stop.
    pub fn canceled() -> Self {
        Self::new(ErrorKind::Canceled, "the operation was asked to stop")
    }

    /// Shorthand for an [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// A local I/O error, classified: a full disk becomes [`ErrorKind::NoSpace`].
    pub fn io(message: impl Into<String>, err: std::io::Error) -> Self {
        let kind = if is_no_space(&err) {
            ErrorKind::NoSpace
        } else {
            ErrorKind::Io
        };
        Self::new(kind, message).with_source(err)
    }

    /// Attaches a key/value pair that says where the error happened.
    #[must_use]
    pub fn with_context(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.context.push((key, value.to_string()));
        self
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Marks the error as one a retry may cure.
    #[must_use]
    pub fn set_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// A copy for another thread or caller: the same kind, message, context and retryable
    /// flag, with the source kept as its text (a source need not be `Clone`).
    pub fn duplicate(&self) -> Self {
        Self {
            kind: self.kind,
            message: self.message.clone(),
            context: self.context.clone(),
            retryable: self.retryable,
            source: self
                .source
                .as_ref()
                .map(|s| Box::new(SourceText(s.to_string())) as Box<_>),
        }
    }

    /// The kind of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without context or source.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the same operation may succeed (a transient storage error).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// A source error kept as its message, for [`Error::duplicate`].
#[derive(Debug)]
struct SourceText(String);

impl fmt::Display for SourceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceText {}

/// True when an I/O error means the filesystem is full or over quota.
pub fn is_no_space(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(code) if code == nix::libc::ENOSPC || code == nix::libc::EDQUOT)
        || err.kind() == std::io::ErrorKind::StorageFull
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if !self.context.is_empty() {
            let pairs: Vec<String> = self
                .context
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            write!(f, " ({})", pairs.join(", "))?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}", self, self.kind.as_str())?;
        if self.retryable {
            write!(f, ", retryable")?;
        }
        write!(f, "]")
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}
