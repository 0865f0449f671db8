//! Shared helpers for Kairn's end-to-end tests: run the built `repo` binary against a repository
//! in a temporary directory, build file trees with every kind of entry, and compare trees.
//!
//! The `repo` binary is `target/<profile>/repo`. `cargo test --workspace` builds it because the
//! `repo-cli` package has an integration test of its own (cargo builds a package's binaries for
//! its integration tests), so it is always fresh when these tests run.

pub mod agent;
pub mod chart;
pub mod control_plane;
pub mod etcd;
pub mod fake_kube;
pub mod kubelet;
pub mod registry;
pub mod s3;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the built `repo` binary.
pub fn repo_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join("repo");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p repo-cli` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// A repository in a temporary directory, driven through the CLI.
pub struct Cli {
    /// Holds everything; removed on drop.
    pub dir: tempfile::TempDir,
    /// The repository path.
    pub repo: PathBuf,
    /// A file holding the password.
    pub password_file: PathBuf,
    /// Arguments every command gets after the repository (storage options).
    pub extra: Vec<String>,
}

/// Cheap Argon2id settings so tests do not spend seconds in key derivation.
pub const CHEAP_KDF: [&str; 4] = ["--kdf-memory-kib", "64", "--kdf-iterations", "1"];

/// `init` arguments for 16/64/256 KiB chunks, so that a few MB of test data make many chunks.
pub const SMALL_CHUNKS: [&str; 6] = [
    "--chunk-min",
    "16384",
    "--chunk-avg",
    "65536",
    "--chunk-max",
    "262144",
];

impl Cli {
    /// A fresh, initialised repository with password `correct horse`.
    pub fn init() -> Self {
        Self::init_with(&[])
    }

    /// A fresh repository, passing extra `init` arguments.
    pub fn init_with(extra: &[&str]) -> Self {
        let cli = Self::uninitialised();
        let mut args = vec!["init"];
        args.extend_from_slice(&CHEAP_KDF);
        args.extend_from_slice(extra);
        cli.ok(&args);
        cli
    }

    /// No repository yet, at a location such as `s3://bucket/prefix`, with storage options.
    pub fn at(location: &str, extra: Vec<String>) -> Self {
        let mut cli = Self::uninitialised();
        cli.repo = PathBuf::from(location);
        cli.extra = extra;
        cli
    }

    /// A temporary directory with a password file and no repository yet.
    pub fn uninitialised() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, "correct horse\n").expect("password file");
        Self {
            dir,
            repo,
            password_file,
            extra: Vec::new(),
        }
    }

    /// A command with the repository and password set, and no inherited KAIRN_ variables.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(repo_bin());
        for (k, _) in std::env::vars_os() {
            if k.as_bytes().starts_with(b"KAIRN_") {
                c.env_remove(k);
            }
        }
        c.arg("-r")
            .arg(&self.repo)
            .arg("--password-file")
            .arg(&self.password_file)
            .args(&self.extra)
            // The local cache (on for object storage) stays inside the test's directory.
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"));
        c
    }

    /// Runs `repo ARGS`.
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        self.cmd().args(args).output().expect("run repo")
    }

    /// Runs `repo ARGS`, asserts success, and returns stdout.
    pub fn ok<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "repo {:?} failed with {:?}\nstdout: {}\nstderr: {}",
            args.iter()
                .map(|a| a.as_ref().to_owned())
                .collect::<Vec<OsString>>(),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command with `--json` and parses its output.
    pub fn json<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> serde_json::Value {
        let mut all: Vec<OsString> = vec!["--json".into()];
        all.extend(args.iter().map(|a| a.as_ref().to_owned()));
        serde_json::from_str(&self.ok(&all)).expect("json output")
    }

    /// Backs up `path` and returns the new snapshot's full id.
    pub fn backup(&self, path: &Path) -> String {
        let v = self.json(&[OsString::from("backup"), path.as_os_str().to_owned()]);
        v["snapshot"].as_str().expect("snapshot id").to_string()
    }

    /// Files under the repository directory of one kind (`data`, `index`, `snapshots`, `keys`).
    pub fn files(&self, kind: &str) -> Vec<PathBuf> {
        walk_files(&self.repo.join(kind))
    }
}

/// Every regular file below `dir`, sorted.
pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The exit code of a finished command.
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// What is compared for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `f`, `d`, `l`, `b`, `c`, `p`, `s`.
    pub kind: char,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// mtime in nanoseconds (not for symlinks' targets; for the link itself).
    pub mtime: i128,
    /// atime in nanoseconds, for regular files only (reading directories changes theirs).
    pub atime: Option<i128>,
    /// Size of regular files.
    pub size: u64,
    /// BLAKE3 of regular file content.
    pub content: Option<[u8; 32]>,
    /// Symlink target.
    pub target: Option<Vec<u8>>,
    /// Device number of device nodes.
    pub rdev: u64,
    /// Extended attributes.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// For files with several links: the sorted relative paths sharing the inode.
    pub link_group: Vec<PathBuf>,
}

fn ns(secs: i64, nanos: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nanos)
}

/// Reads every entry below `root` (not `root` itself), keyed by relative path. Metadata is
/// taken before any content is read, so atimes are as found.
pub fn scan(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut metas = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            if m.is_dir() {
                stack.push(p.clone());
            }
            metas.push((p, m));
        }
    }
    let mut groups: BTreeMap<(u64, u64), Vec<PathBuf>> = BTreeMap::new();
    for (p, m) in &metas {
        if m.is_file() && m.nlink() > 1 {
            groups
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(p.strip_prefix(root).expect("prefix").to_path_buf());
        }
    }
    let mut out = BTreeMap::new();
    for (p, m) in metas {
        let ft = m.file_type();
        let kind = if ft.is_file() {
            'f'
        } else if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_block_device() {
            'b'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_fifo() {
            'p'
        } else {
            's'
        };
        let xattrs = xattr::list(&p)
            .map(|names| {
                names
                    .filter_map(|n| {
                        xattr::get(&p, &n)
                            .ok()
                            .flatten()
                            .map(|v| (n.as_bytes().to_vec(), v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut group = groups.get(&(m.dev(), m.ino())).cloned().unwrap_or_default();
        group.sort();
        let entry = Entry {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            mtime: ns(m.mtime(), m.mtime_nsec()),
            atime: (kind == 'f').then(|| ns(m.atime(), m.atime_nsec())),
            size: if kind == 'f' { m.len() } else { 0 },
            content: None,
            target: (kind == 'l').then(|| {
                std::fs::read_link(&p)
                    .expect("readlink")
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            }),
            rdev: if matches!(kind, 'b' | 'c') {
                m.rdev()
            } else {
                0
            },
            xattrs,
            link_group: group,
        };
        out.insert(
            p.strip_prefix(root).expect("prefix").to_path_buf(),
            (p, entry),
        );
    }
    out.into_iter()
        .map(|(rel, (p, mut e))| {
            if e.kind == 'f' {
                e.content = Some(*blake3::hash(&std::fs::read(&p).expect("read")).as_bytes());
            }
            (rel, e)
        })
        .collect()
}

/// Asserts that two scans are equal, naming the first difference.
pub fn assert_same(expected: &BTreeMap<PathBuf, Entry>, actual: &BTreeMap<PathBuf, Entry>) {
    for (path, e) in expected {
        let Some(a) = actual.get(path) else {
            panic!("{} is missing from the restore", path.display())
        };
        assert_eq!(e, a, "{} differs", path.display());
    }
    for path in actual.keys() {
        assert!(
            expected.contains_key(path),
            "{} was restored but is not in the source",
            path.display()
        );
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), incompressible.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A POSIX access ACL xattr value granting `uid` read access (the kernel's binary layout).
pub fn acl_with_user(uid: u32) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec(); // POSIX_ACL_XATTR_VERSION
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, uid),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

// Helpers for tests that check what a repository holds after many commands.

/// Relative path to BLAKE3 of content, for the regular files below `root`.
pub fn contents(root: &Path) -> BTreeMap<PathBuf, [u8; 32]> {
    walk_files(root)
        .into_iter()
        .map(|p| {
            let hash = *blake3::hash(&fs::read(&p).expect("test setup")).as_bytes();
            (
                p.strip_prefix(root).expect("test setup").to_path_buf(),
                hash,
            )
        })
        .collect()
}

/// Restores snapshot `id` and returns the content of `source` as restored.
pub fn restored(cli: &Cli, id: &str, source: &Path) -> BTreeMap<PathBuf, [u8; 32]> {
    let target = tempfile::tempdir().expect("test setup");
    cli.ok(&[
        "restore",
        id,
        "--target",
        target.path().to_str().expect("test setup"),
    ]);
    contents(
        &target
            .path()
            .join(source.strip_prefix("/").expect("test setup")),
    )
}

pub fn snapshot_ids(cli: &Cli) -> Vec<String> {
    cli.json(&["snapshots"])
        .as_array()
        .expect("test setup")
        .iter()
        .map(|s| s["id"].as_str().expect("test setup").to_string())
        .collect()
}

/// A repository with 1 MiB packs and small chunks, so that a few MB make many packs.
pub fn small_packs() -> Cli {
    Cli::init_with(&[&["--pack-size-mib", "1"][..], &SMALL_CHUNKS].concat())
}

pub fn check_clean(cli: &Cli) {
    let out = cli.run(&["check", "--read-data"]);
    assert_eq!(
        code(&out),
        0,
        "check found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn write_volume(dir: &Path, seed: u64, files: usize) {
    fs::create_dir_all(dir).expect("test setup");
    for i in 0..files {
        let len = 20_000 + (seed as usize * 7919 + i * 104_729) % 300_000;
        fs::write(
            dir.join(format!("f{i}")),
            noise(seed * 1000 + i as u64, len),
        )
        .expect("test setup");
    }
}

/// A tiny deterministic generator (xorshift), so a failing round can be replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A small tmpfs mounted at a directory and unmounted when dropped (also when the test fails),
/// for full-disk tests. Mounting needs root; [`SmallFs::mount`] says why it could not.
pub struct SmallFs(PathBuf);

impl SmallFs {
    /// Where it is mounted.
    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// Mounts a tmpfs of `size` (such as `4m`) at `dir`; `None`, with a note on stderr saying
    /// why, when this process may not mount one.
    pub fn mount(dir: &Path, size: &str) -> Option<Self> {
        fs::create_dir_all(dir).expect("test setup");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Some(Self(dir.to_path_buf())),
            other => {
                eprintln!("skipped: cannot mount a {size} tmpfs here (it needs root): {other:?}");
                None
            }
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A directory's mode and each of its entries with its content (empty for one that cannot be
/// read as a file): what a test asserts stays unchanged.
pub fn listing_with_mode(dir: &Path) -> (u32, BTreeMap<String, Vec<u8>>) {
    let mode = fs::symlink_metadata(dir).expect("test setup").mode() & 0o7777;
    let listing = fs::read_dir(dir)
        .expect("test setup")
        .map(|e| {
            let e = e.expect("test setup");
            let content = fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), content)
        })
        .collect();
    (mode, listing)
}
