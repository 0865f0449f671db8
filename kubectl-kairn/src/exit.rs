//! Exit codes, one per outcome a script may branch on (README, "kubectl kairn").

use std::process::ExitCode;

/// Success; with `--wait`, the work completed.
pub const OK: u8 = 0;
/// An error, or with `--wait` work that failed or was canceled.
pub const ERROR: u8 = 1;
/// The command line was wrong (clap's own code).
pub const USAGE: u8 = 2;
/// With `--wait`: the work finished, but some files could not be read or written.
pub const PARTIAL: u8 = 3;
/// With `--wait`: the timeout passed before the work finished (it goes on).
pub const TIMEOUT: u8 = 5;
/// No backup, restore or schedule has that name.
pub const NOT_FOUND: u8 = 6;
/// The API server refused: the user lacks a permission.
pub const FORBIDDEN: u8 = 7;

/// An error that carries its own exit code.
#[derive(Debug)]
pub struct Coded {
    /// The exit code.
    pub code: u8,
    /// What to say.
    pub message: String,
}

impl Coded {
    /// An error with this code.
    pub fn error(code: u8, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Self {
            code,
            message: message.into(),
        })
    }
}

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// True when the API server answered 403.
pub fn is_forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

/// True when the API server answered 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Prints the error and its causes on stderr, and gives its exit code.
pub fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("kubectl kairn: {e:#}");
    let code = e
        .chain()
        .find_map(|c| {
            if let Some(coded) = c.downcast_ref::<Coded>() {
                return Some(coded.code);
            }
            c.downcast_ref::<kube::Error>()
                .and_then(|k| is_forbidden(k).then_some(FORBIDDEN))
        })
        .unwrap_or(ERROR);
    ExitCode::from(code)
}
