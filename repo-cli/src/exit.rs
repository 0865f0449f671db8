//! Exit codes, one per outcome a script may want to branch on. Documented in README.md.

use engine::ErrorKind;

/// A command-line mistake that is not clap's own: exits with [`USAGE`].
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A command finished, but not everything succeeded: exit with this code after printing.
#[derive(Debug)]
pub struct Partial {
    /// The exit code.
    pub code: u8,
    /// What to say.
    pub message: String,
}

impl std::fmt::Display for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Partial {}

/// Success.
pub const OK: u8 = 0;
/// A fatal error not covered below.
pub const ERROR: u8 = 1;
/// The command line was wrong (clap's own code).
pub const USAGE: u8 = 2;
/// Backup: the snapshot was written, but some source files could not be read (or kept changing).
pub const INCOMPLETE_BACKUP: u8 = 3;
/// Restore, dump or check: some files could not be restored because data is missing or damaged.
pub const DAMAGED_DATA: u8 = 4;
/// There is no repository at the given location.
pub const NO_REPOSITORY: u8 = 10;
/// `init` found a repository already there.
pub const ALREADY_EXISTS: u8 = 11;
/// No key of the repository opens with the password.
pub const WRONG_PASSWORD: u8 = 12;
/// The repository uses a newer format version than this build reads.
pub const UNSUPPORTED_VERSION: u8 = 13;
/// A repository file failed authentication or its hash: the repository is damaged.
pub const CORRUPT: u8 = 14;
/// The disk (or the storage) is full.
pub const NO_SPACE: u8 = 15;
/// A prune expired this writer's session, or its heartbeats stopped reaching the storage:
/// nothing was published, and running it again is safe.
pub const SESSION_EXPIRED: u8 = 16;
/// The storage refused a request: the credential lacks the right, or an object is locked.
pub const PERMISSION_DENIED: u8 = 17;
/// The command would delete, and the repository is open in append-only mode.
pub const APPEND_ONLY: u8 = 18;
/// `backup --etcd`: the snapshot etcd sent failed its check; nothing was recorded.
pub const SOURCE_CORRUPT: u8 = 19;
/// `backup --etcd`: etcd could not be reached, refused, or broke off; a retry may work.
pub const SOURCE_UNAVAILABLE: u8 = 20;
/// `backup --images`, `images push`: the registry refused the credentials (or gave none).
pub const SOURCE_DENIED: u8 = 21;

/// The exit code for an engine error.
pub fn for_kind(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::RepositoryNotFound => NO_REPOSITORY,
        ErrorKind::AlreadyExists => ALREADY_EXISTS,
        ErrorKind::WrongPassword => WRONG_PASSWORD,
        ErrorKind::UnsupportedVersion => UNSUPPORTED_VERSION,
        ErrorKind::Corrupt => CORRUPT,
        ErrorKind::NoSpace => NO_SPACE,
        ErrorKind::SessionExpired => SESSION_EXPIRED,
        ErrorKind::PermissionDenied => PERMISSION_DENIED,
        ErrorKind::AppendOnly => APPEND_ONLY,
        ErrorKind::SourceCorrupt => SOURCE_CORRUPT,
        ErrorKind::SourceUnavailable => SOURCE_UNAVAILABLE,
        ErrorKind::SourceDenied => SOURCE_DENIED,
        _ => ERROR,
    }
}
