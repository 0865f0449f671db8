//! Facts about the machine recorded in snapshots and key files.

/// The host name, or `unknown`.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The name of the current user, or the numeric uid.
pub fn username() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// True when running as root, so ownership can be restored.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
