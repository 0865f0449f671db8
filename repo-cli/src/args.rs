//! Global options: where the repository is and how to get the password.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use engine::backend::faults::{FaultPlan, FaultyBackend};
use engine::backend::{Backend, Location, OpendalBackend, StorageOptions};
use engine::crypto::KdfLimit;
use engine::index::Index;
use engine::repo::Repository;
use engine::session::Session;

/// Options every command takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Repository location: a local directory, s3://bucket/prefix, or opendal:<service>.
    #[arg(short = 'r', long = "repo", env = "KAIRN_REPOSITORY", global = true)]
    pub repo: Option<String>,

    /// A storage option, key=value; repeatable. For s3://: endpoint, region, virtual-host,
    /// access-key-id, secret-access-key, session-token, profile, checksum, storage-class,
    /// ambient-credentials. For opendal:<service>: that service's own keys.
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE",
          value_parser = parse_storage_option)]
    pub options: Vec<(String, String)>,

    /// Retries of a storage request that failed with a transient error.
    #[arg(
        long,
        env = "KAIRN_RETRIES",
        global = true,
        default_value_t = 8,
        hide_short_help = true
    )]
    pub retries: usize,

    /// Seconds one storage request (or one body read or write) may take before it is retried.
    #[arg(
        long,
        env = "KAIRN_TIMEOUT",
        global = true,
        default_value_t = 60,
        value_name = "SECONDS",
        hide_short_help = true
    )]
    pub timeout: u64,

    /// Storage requests in flight at once.
    #[arg(
        long,
        env = "KAIRN_CONNECTIONS",
        global = true,
        default_value_t = 16,
        hide_short_help = true
    )]
    pub connections: usize,

    /// Limit storage traffic to this many bytes per second (500K, 10M).
    #[arg(long, env = "KAIRN_LIMIT_BANDWIDTH", global = true, value_parser = parse_size,
          value_name = "BYTES", hide_short_help = true)]
    pub limit_bandwidth: Option<u64>,

    /// Limit uploads to the repository, on every store a local one included: a bare number is
    /// KiB/s as in restic (`--limit-upload 1024`), or give a unit (`500K`, `10M` per second).
    #[arg(long, env = "KAIRN_LIMIT_UPLOAD", global = true, value_parser = parse_rate,
          value_name = "RATE", hide_short_help = true)]
    pub limit_upload: Option<u64>,

    /// Limit downloads from the repository, as --limit-upload.
    #[arg(long, env = "KAIRN_LIMIT_DOWNLOAD", global = true, value_parser = parse_rate,
          value_name = "RATE", hide_short_help = true)]
    pub limit_download: Option<u64>,

    /// Read the password from the first line of this file.
    #[arg(long, env = "KAIRN_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Run this shell command and take the first line it prints as the password (a secret
    /// manager: `pass show kairn`, `vault kv get -field=password secret/kairn`).
    #[arg(
        long,
        env = "KAIRN_PASSWORD_COMMAND",
        global = true,
        value_name = "COMMAND"
    )]
    pub password_command: Option<String>,

    /// Read storage options (KEY=VALUE lines, `#` comments) from this file, so that a secret
    /// key is not on the command line where `ps` shows it. `-o` wins over the file, the file
    /// over `KAIRN_OPTION_<KEY>` variables (`KAIRN_OPTION_SECRET_ACCESS_KEY=...`).
    #[arg(long, env = "KAIRN_OPTION_FILE", global = true, value_name = "FILE")]
    pub option_file: Option<PathBuf>,

    /// Take defaults from this profile: NAME.toml in $KAIRN_CONFIG_DIR, ~/.config/kairn or
    /// /etc/kairn, or a path. Typed options win over the profile's.
    #[arg(
        short = 'P',
        long,
        env = "KAIRN_PROFILE",
        global = true,
        value_name = "NAME"
    )]
    pub profile: Option<String>,

    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,

    /// No progress bar, fewer messages.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Keep snapshots, index files and tree packs in this local cache directory (default for
    /// object storage: $XDG_CACHE_HOME/kairn or ~/.cache/kairn; none for local repositories).
    #[arg(
        long,
        env = "KAIRN_CACHE_DIR",
        global = true,
        value_name = "DIR",
        hide_short_help = true
    )]
    pub cache_dir: Option<PathBuf>,

    /// Use no local cache.
    #[arg(long, env = "KAIRN_NO_CACHE", global = true, hide_short_help = true)]
    pub no_cache: bool,

    /// The most the local cache holds (least recently used files go first).
    #[arg(long, env = "KAIRN_CACHE_SIZE", global = true, value_parser = parse_size,
          default_value = "2G", value_name = "BYTES", hide_short_help = true)]
    pub cache_size: u64,

    /// Index entries held in memory (46 bytes each); past this many blobs the index is kept
    /// as a sorted file in the cache directory (or a temporary one) and memory holds about
    /// 1.2 bytes per blob.
    #[arg(long, env = "KAIRN_INDEX_MEMORY", global = true, default_value_t = engine::index::DEFAULT_BLOBS_IN_MEMORY,
          value_name = "BLOBS", hide_short_help = true)]
    pub index_memory: usize,

    /// Never delete anything, as if opened with an append-only key: for a storage credential
    /// that may create, read and list, but not delete. Prune and forget refuse to run.
    #[arg(long, env = "KAIRN_APPEND_ONLY", global = true)]
    pub append_only: bool,

    /// Seconds without a stored heartbeat after which a prune may expire a writer's session
    /// (repo-format.md §14.1). Writers beat every sixth of it.
    #[arg(long, env = "KAIRN_SESSION_EXPIRY", global = true, value_name = "SECONDS",
          default_value_t = engine::session::DEFAULT_EXPIRY.as_secs(), hide_short_help = true)]
    pub session_expiry: u64,

    /// Key files whose Argon2id memory cost is above this many MiB are not tried (a warning
    /// names them), nor made by `init` and `key add`: a planted key file must not make a
    /// command allocate gigabytes.
    #[arg(long, env = "KAIRN_MAX_KDF_MEMORY", global = true, value_name = "MiB",
          default_value_t = KdfLimit::default().memory_kib / 1024, hide_short_help = true)]
    pub max_kdf_memory: u32,

    /// Key files whose Argon2id passes are above this are not tried (as --max-kdf-memory).
    #[arg(long, env = "KAIRN_MAX_KDF_PASSES", global = true, value_name = "N",
          default_value_t = KdfLimit::default().iterations, hide_short_help = true)]
    pub max_kdf_passes: u32,
}

impl Global {
    /// The directory of a local repository, to keep it out of its own backups.
    pub fn local_repository_dir(&self) -> Option<std::path::PathBuf> {
        match self.repo.as_deref()?.parse::<Location>() {
            Ok(Location::Local(dir)) => Some(dir),
            _ => None,
        }
    }

    /// The storage backend of an existing repository.
    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        self.backend_at(false)
    }

    /// The storage backend for the repository location, created when `create` is set.
    pub fn backend_at(&self, create: bool) -> Result<Arc<dyn Backend>> {
        let Some(location) = &self.repo else {
            bail!(crate::exit::UsageError(
                "no repository given: use -r/--repo or set KAIRN_REPOSITORY".into()
            ));
        };
        let location: Location = location
            .parse()
            .map_err(|e: engine::Error| crate::exit::UsageError(e.to_string()))?;
        self.refuse_local_bandwidth_limit(&location)?;
        let opts = self.storage_options(&location, &self.all_options(&location)?);
        let backend: Arc<dyn Backend> = Arc::new(OpendalBackend::open(&location, &opts, create)?);
        Ok(self.throttled(with_injected_faults(backend)?))
    }

    /// The backend paced to --limit-upload / --limit-download, when given.
    fn throttled(&self, backend: Arc<dyn Backend>) -> Arc<dyn Backend> {
        if self.limit_upload.is_none() && self.limit_download.is_none() {
            return backend;
        }
        Arc::new(engine::backend::throttle::ThrottledBackend::new(
            backend,
            self.limit_upload,
            self.limit_download,
        ))
    }

    /// A bandwidth limit throttles traffic to object storage; on a local repository it would be
    /// silently ignored, so it is refused there.
    fn refuse_local_bandwidth_limit(&self, location: &Location) -> Result<()> {
        if self.limit_bandwidth.is_some() && matches!(location, Location::Local(_)) {
            bail!(crate::exit::UsageError(
                "--limit-bandwidth (KAIRN_LIMIT_BANDWIDTH) limits traffic to object storage; a \
                 local repository is limited by its disk, so leave it out"
                    .into()
            ));
        }
        Ok(())
    }

    /// Opens the source repository of `copy`, with its own location, storage options and
    /// password, and this command's retry, timeout, connection, bandwidth and cache settings.
    /// The password comes from `password_file`, then `KAIRN_FROM_PASSWORD`, then a prompt on a
    /// terminal; never from the destination's password options.
    pub fn open_source(
        &self,
        location: &str,
        options: &[(String, String)],
        password_file: Option<&std::path::Path>,
    ) -> Result<Repository> {
        let parsed: Location = location
            .parse()
            .map_err(|e: engine::Error| crate::exit::UsageError(e.to_string()))?;
        self.refuse_local_bandwidth_limit(&parsed)?;
        let opts = self.storage_options(&parsed, options);
        let backend = self.throttled(Arc::new(OpendalBackend::open(&parsed, &opts, false)?));
        let password = match (password_file, std::env::var("KAIRN_FROM_PASSWORD")) {
            (Some(file), _) => read_password_file(file)?,
            (None, Ok(p)) => p.into_bytes(),
            (None, Err(_)) if std::io::stdin().is_terminal() => {
                rpassword::prompt_password(format!("password of {location}: "))
                    .context("cannot read the password")?
                    .into_bytes()
            }
            (None, Err(_)) => bail!(crate::exit::UsageError(
                "no password given for the source repository: use --from-password-file, \
                 KAIRN_FROM_PASSWORD_FILE or KAIRN_FROM_PASSWORD, or run on a terminal"
                    .into()
            )),
        };
        let repo = self.unlock(backend, &password)?;
        self.bound_index(&repo);
        if let Some(dir) = self.cache_base(Some(location)) {
            repo.use_cache(&dir, self.cache_size)?;
        }
        Ok(repo)
    }

    /// The storage options, with S3 credentials and region from the usual `AWS_*` variables
    /// unless given as options, so they work even with ambient credentials turned off.
    fn storage_options(&self, location: &Location, options: &[(String, String)]) -> StorageOptions {
        let mut options: std::collections::BTreeMap<String, String> =
            options.iter().cloned().collect();
        if matches!(location, Location::S3 { .. }) {
            for (key, vars) in [
                ("access-key-id", &["AWS_ACCESS_KEY_ID"][..]),
                ("secret-access-key", &["AWS_SECRET_ACCESS_KEY"][..]),
                ("session-token", &["AWS_SESSION_TOKEN"][..]),
                ("region", &["AWS_REGION", "AWS_DEFAULT_REGION"][..]),
                ("endpoint", &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"][..]),
            ] {
                if options.contains_key(key) {
                    continue;
                }
                if let Some(v) = vars.iter().find_map(|v| std::env::var(v).ok()) {
                    options.insert(key.to_string(), v);
                }
            }
        }
        let timeout = std::time::Duration::from_secs(self.timeout.max(1));
        StorageOptions {
            retries: self.retries,
            timeout,
            io_timeout: timeout,
            connections: self.connections.max(1),
            bandwidth: self.limit_bandwidth,
            options,
        }
    }

    /// With both a password file and a password command, keeps one: a typed one over one from
    /// the environment, and of two typed (a profile's, placed first, and the user's) the later.
    pub fn keep_one_password_source(&mut self, args: &[std::ffi::OsString]) {
        if self.password_file.is_none() || self.password_command.is_none() {
            return;
        }
        if typed_position(args, "--password-command") > typed_position(args, "--password-file") {
            self.password_file = None;
        } else {
            self.password_command = None;
        }
    }

    /// The storage options: `-o`, then `--option-file`, then `KAIRN_OPTION_<KEY>` variables
    /// (the first to name a key wins). A variable's key is lower-cased, with `_` read as `-`
    /// for s3:// (`secret-access-key`) and kept for opendal:<service>, whose keys use `_`.
    pub fn all_options(&self, location: &Location) -> Result<Vec<(String, String)>> {
        let mut options = self.options.clone();
        let mut add = |k: String, v: String| {
            if !options.iter().any(|(have, _)| *have == k) {
                options.push((k, v));
            }
        };
        if let Some(file) = &self.option_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read option file {}", file.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (k, v) = parse_storage_option(line).map_err(|e| {
                    crate::exit::UsageError(format!("{} line {}: {e}", file.display(), n + 1))
                })?;
                add(k, v);
            }
        }
        let dashes = !matches!(location, Location::Opendal { .. });
        // vars_os: a variable that is not UTF-8 (anyone's, not only ours) must not stop us.
        for (name, value) in std::env::vars_os() {
            let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
                continue;
            };
            if let Some(key) = name.strip_prefix("KAIRN_OPTION_")
                && !key.is_empty()
                && name != "KAIRN_OPTION_FILE"
            {
                let key = key.to_ascii_lowercase();
                let key = if dashes { key.replace('_', "-") } else { key };
                add(key, value.to_string());
            }
        }
        Ok(options)
    }

    /// The password from a file, a command, `KAIRN_PASSWORD`, or a prompt on a terminal.
    pub fn password(&self, prompt: &str) -> Result<Vec<u8>> {
        if let Some(file) = &self.password_file {
            return read_password_file(file);
        }
        if let Some(command) = &self.password_command {
            return password_from_command(command);
        }
        if let Ok(p) = std::env::var("KAIRN_PASSWORD") {
            return Ok(p.into_bytes());
        }
        if std::io::stdin().is_terminal() {
            let p = rpassword::prompt_password(prompt).context("cannot read the password")?;
            return Ok(p.into_bytes());
        }
        bail!(crate::exit::UsageError(
            "no password given: use --password-file, --password-command, KAIRN_PASSWORD_FILE, \
             KAIRN_PASSWORD_COMMAND or KAIRN_PASSWORD, or run on a terminal"
                .into()
        ))
    }

    /// Opens the repository.
    pub fn open(&self) -> Result<Repository> {
        let backend = self.backend()?;
        let password = self.password("repository password: ")?;
        let repo = self.unlock(backend, &password)?;
        if self.append_only {
            repo.set_append_only();
        }
        self.bound_index(&repo);
        if let Some(dir) = self.cache_base(self.repo.as_deref()) {
            repo.use_cache(&dir, self.cache_size)?;
        }
        Ok(repo)
    }

    /// The most KDF cost a key file may ask for before it is tried or made.
    pub fn kdf_limit(&self) -> KdfLimit {
        KdfLimit {
            memory_kib: self.max_kdf_memory.saturating_mul(1024),
            iterations: self.max_kdf_passes,
        }
    }

    /// Refuses to make a key file that a later open would skip for its cost.
    pub fn refuse_costly_kdf(&self, params: &engine::crypto::KdfParams) -> Result<()> {
        if let Some(excess) = self.kdf_limit().excess(params) {
            bail!(crate::exit::UsageError(format!(
                "a key with this KDF cost ({excess}) would be skipped when opening the \
                 repository: raise --max-kdf-memory / --max-kdf-passes for this and every \
                 later command, or choose a lower cost"
            )));
        }
        Ok(())
    }

    /// Opens with the key files within the KDF limit, warning about those skipped.
    fn unlock(&self, backend: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
        let (repo, skipped) = Repository::open_with_limit(backend, password, self.kdf_limit())?;
        for key in skipped {
            eprintln!(
                "warning: key file {} was not tried: its KDF cost is above the limit ({}); \
                 raise it with --max-kdf-memory / --max-kdf-passes if you trust it",
                key.id.short(),
                key.excess
            );
        }
        Ok(repo)
    }

    /// Where the cache of the repository at `location` lives: `--cache-dir`, or for object
    /// storage the user's cache directory.
    fn cache_base(&self, location: Option<&str>) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        if self.cache_dir.is_some() {
            return self.cache_dir.clone();
        }
        let remote = location
            .and_then(|r| r.parse::<Location>().ok())
            .is_some_and(|l| !matches!(l, Location::Local(_)));
        if !remote {
            return None;
        }
        self.default_cache_base()
    }

    /// Where a large index keeps its sorted run: the cache directory, for a local repository
    /// too (its files are local already, but the run saves reading every index file).
    fn index_run_base(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(|| self.default_cache_base())
    }

    fn default_cache_base(&self) -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("kairn"))
    }

    /// Applies the index memory bound and where its run is kept.
    fn bound_index(&self, repo: &Repository) {
        repo.set_index_memory(self.index_memory);
        if let Some(base) = self.index_run_base() {
            repo.keep_index_runs_in(&base);
        }
    }

    /// The session expiry.
    pub fn expiry(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.session_expiry.max(6))
    }

    /// Opens the repository, starts a writer session, then loads the index (in that order:
    /// repo-format.md §14.1).
    pub fn open_for_writing(&self, kind: &str) -> Result<(Repository, Session, Index)> {
        let repo = self.open()?;
        let session = repo.begin_session(kind, self.expiry())?;
        let index = Index::load(&repo)?;
        Ok((repo, session, index))
    }

    /// Opens the repository and loads its index.
    pub fn open_indexed(&self) -> Result<(Repository, Index)> {
        let repo = self.open()?;
        let index = Index::load(&repo)?;
        Ok((repo, index))
    }
}

/// The last place `flag` (as `--flag VALUE` or `--flag=VALUE`) is on the command line, plus
/// one; 0 when it is not there (it came from the environment).
fn typed_position(args: &[std::ffi::OsString], flag: &str) -> usize {
    let with_value = format!("{flag}=");
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    args[..end]
        .iter()
        .rposition(|a| {
            let a = a.to_string_lossy();
            a == flag || a.starts_with(&with_value)
        })
        .map_or(0, |i| i + 1)
}

/// First line of a password file, without its line ending.
pub fn read_password_file(file: &std::path::Path) -> Result<Vec<u8>> {
    let text = std::fs::read(file)
        .with_context(|| format!("cannot read password file {}", file.display()))?;
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let password = line.strip_suffix(b"\r").unwrap_or(line);
    if password.is_empty() {
        // Said apart from a wrong password: no key opens with nothing, and "wrong password"
        // sent people looking for the right one instead of at the file.
        bail!(crate::exit::UsageError(format!(
            "password file {} is empty: its first line is the password",
            file.display()
        )));
    }
    Ok(password.to_vec())
}

/// Runs `command` with `sh -c` and takes the first line of its output as the password; its
/// stderr goes to the terminal (a secret manager may ask for a PIN there).
pub fn password_from_command(command: &str) -> Result<Vec<u8>> {
    let out = std::process::Command::new("sh")
        .args(["-c", command])
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run the password command {command:?}"))?;
    if !out.status.success() {
        bail!(crate::exit::UsageError(format!(
            "the password command {command:?} failed ({})",
            out.status
        )));
    }
    let line = out.stdout.split(|&b| b == b'\n').next().unwrap_or_default();
    let password = line.strip_suffix(b"\r").unwrap_or(line);
    if password.is_empty() {
        bail!(crate::exit::UsageError(format!(
            "the password command {command:?} printed no password"
        )));
    }
    Ok(password.to_vec())
}

/// Asks for a new password twice on a terminal, or reads it from a file.
pub fn new_password(file: Option<&std::path::Path>, global: &Global) -> Result<Vec<u8>> {
    if let Some(file) = file {
        return read_password_file(file);
    }
    if std::io::stdin().is_terminal()
        && global.password_file.is_none()
        && global.password_command.is_none()
        && std::env::var("KAIRN_PASSWORD").is_err()
    {
        let a = rpassword::prompt_password("new password: ")?;
        let b = rpassword::prompt_password("repeat new password: ")?;
        if a != b {
            bail!("the passwords do not match");
        }
        if a.is_empty() {
            bail!("an empty password is not allowed");
        }
        return Ok(a.into_bytes());
    }
    global.password("new password: ")
}

pub fn parse_storage_option(s: &str) -> std::result::Result<(String, String), String> {
    engine::backend::location::parse_option(s).map_err(|e| e.to_string())
}

/// Parses a size like `500M`, `10G`, `1T` or a plain number of bytes (powers of 1024).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    engine::units::parse_size(s)
        .ok_or_else(|| format!("bad size {s:?}: use a number with K, M, G or T"))
}

/// A rate in bytes per second: a bare number is KiB/s (restic's unit for these flags), else a
/// size with its unit per second.
pub fn parse_rate(s: &str) -> std::result::Result<u64, String> {
    let bytes = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>()
            .map_err(|e| format!("bad rate {s:?}: {e}"))?
            .saturating_mul(1024)
    } else {
        parse_size(s)?
    };
    if bytes == 0 {
        return Err("a rate of 0 would never finish: leave the limit out instead".into());
    }
    Ok(bytes)
}

/// Wraps the backend in a fault injector when `KAIRN_FAULTS` is set: a testing hook that makes
/// the storage misbehave on purpose (RELIABILITY.md). Never set it on a repository you care for.
fn with_injected_faults(backend: Arc<dyn Backend>) -> Result<Arc<dyn Backend>> {
    let Ok(spec) = std::env::var("KAIRN_FAULTS") else {
        return Ok(backend);
    };
    let plan = FaultPlan::parse(&spec)
        .map_err(|e| crate::exit::UsageError(format!("KAIRN_FAULTS: {e}")))?;
    eprintln!("warning: KAIRN_FAULTS is set: injecting storage faults ({spec})");
    Ok(Arc::new(FaultyBackend::new(backend, plan)))
}
