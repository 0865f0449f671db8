//! `repo mount DIR`: the snapshots as a read-only FUSE filesystem, laid out as restic's mount
//! lays them out, served in the foreground until Ctrl-C or SIGTERM unmounts it (exit 0).

mod fs;
mod inodes;
mod layout;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use fuser::{Config, MountOption, SessionACL, SessionUnmounter};

use crate::args::{Global, parse_size};
use crate::cmd::select::FilterArgs;
use crate::exit::UsageError;
use crate::output;

use self::fs::{MountedSnapshot, SnapshotFs};
use self::inodes::Owner;

#[derive(Debug, Args)]
#[command(after_long_help = "\
Layout (times in local time, `-1`, `-2` added when two share a second):
  snapshots/<time>/…            every snapshot, and snapshots/latest -> the newest
  ids/<short id>/…              by id (the full id where two share the short one)
  hosts/<host>/<time>/…         by host, each with its own latest
  tags/<tag>/<time>/…           by tag
  volumes/<namespace>/<pvc>/<time>/…   Kubernetes volume snapshots

The snapshots are listed once, when the mount starts: one taken later appears after mounting
again. A file is read from the repository as a program reads it, only the blobs under the bytes
asked for, each verified; a damaged one fails that read with EIO and says why on stderr.
Ctrl-C or SIGTERM unmounts and exits 0; so does `fusermount3 -u DIR` from elsewhere.")]
pub struct MountArgs {
    /// An existing directory to mount on.
    mountpoint: PathBuf,
    /// Let other users use the mount (as a user other than root, /etc/fuse.conf must say
    /// user_allow_other). Owners and modes as recorded still apply to them.
    #[arg(long)]
    allow_other: bool,
    /// With --allow-other: every user may read every file, whatever owners and modes say.
    #[arg(long, requires = "allow_other")]
    no_default_permissions: bool,
    /// Decrypted file data kept in memory for reads that come back to it (one blob is always
    /// kept, however large).
    #[arg(long, value_name = "SIZE", default_value = "8M", value_parser = parse_size)]
    read_cache: u64,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(g: &Global, a: MountArgs) -> Result<()> {
    let dir = check_mountpoint(&a.mountpoint)?;
    check_fuse_device()?;
    let owner = owner()?;
    let fusermount = find_fusermount();
    if fusermount.is_none() && owner.uid != 0 {
        bail!(
            "fusermount3 is not installed (not found in PATH): a user other than root mounts \
             through it; install fuse3 (apt install fuse3, dnf install fuse3)"
        );
    }

    let (repo, index) = g.open_indexed()?;
    let found = engine::snapshots::list_readable(&repo, &a.filter.filter())?;
    output::warn_skipped_snapshots(&found.damaged);
    if found.snapshots.is_empty() && !g.quiet {
        eprintln!("warning: no snapshot matches: the mount shows empty directories");
    }
    let root = layout::build(&found.snapshots, &chrono::Local);
    let snapshots: Vec<MountedSnapshot> = found
        .snapshots
        .iter()
        .map(|(_, s)| MountedSnapshot {
            tree: s.tree,
            time: s.datetime().map_or(UNIX_EPOCH, SystemTime::from),
        })
        .collect();
    let count = snapshots.len();
    let cache = usize::try_from(a.read_cache).unwrap_or(usize::MAX);
    let filesystem = SnapshotFs::new(repo, index, snapshots, root, cache, owner);

    // From here the first signal unmounts in order rather than ending the process.
    crate::interrupt::stoppable_with("unmounting");
    // fusermount3 then unmounts even if this process dies without doing it itself, so no
    // "Transport endpoint is not connected" is left behind. It needs allow_root or allow_other.
    let auto_unmount = fusermount.is_some() && (owner.uid == 0 || a.allow_other);
    let config = mount_config(&a, auto_unmount);
    let mut session = fuser::Session::new(filesystem, &dir, &config)
        .map_err(|e| anyhow!(e).context(format!("cannot mount at {}", dir.display())))?;
    let mut unmounter = session.unmount_callable();
    let worker = std::thread::Builder::new()
        .name("kairn-mount".into())
        .spawn(move || session.run())
        .context("cannot start the filesystem thread")?;

    if g.json {
        // Nothing else to print: a failed write must not leave the mount behind.
        let _ = output::json(&serde_json::json!({
            "mountpoint": dir, "snapshots": count,
        }));
    } else if !g.quiet {
        let _ = output::line(format!("mounted at {}; Ctrl-C unmounts", dir.display()));
    }
    while !crate::interrupt::requested() && !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    if worker.is_finished() {
        if !g.quiet {
            eprintln!("repo: {} was unmounted", dir.display());
        }
        return finish(worker);
    }
    unmount(&mut unmounter, &dir, fusermount.as_deref())?;
    if !g.quiet {
        eprintln!("repo: unmounted {}", dir.display());
    }
    wait_for(worker)
}

/// The mountpoint, absolute; a missing one or a file is a usage mistake.
fn check_mountpoint(path: &Path) -> Result<PathBuf> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(UsageError(format!("{} is not a directory", path.display())).into());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(UsageError(format!(
                "mountpoint {} does not exist: create the directory first",
                path.display()
            ))
            .into());
        }
        Err(e) if e.raw_os_error() == Some(ENOTCONN) => {
            bail!(
                "{}: a filesystem is still mounted there but its process is gone: \
                 `fusermount3 -u {}` removes it",
                path.display(),
                path.display()
            );
        }
        Err(e) => {
            return Err(anyhow!(e).context(format!("cannot use {} as mountpoint", path.display())));
        }
    }
    std::fs::canonicalize(path).with_context(|| format!("cannot resolve {}", path.display()))
}

const ENOTCONN: i32 = 107;
const EBUSY: i32 = 16;
const FUSE_DEVICE: &str = "/dev/fuse";

fn check_fuse_device() -> Result<()> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(FUSE_DEVICE)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{FUSE_DEVICE} does not exist: load the fuse kernel module (modprobe fuse); in a \
             container, pass the device in (docker run --device /dev/fuse --cap-add SYS_ADMIN)"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "cannot open {FUSE_DEVICE}: permission denied; on this machine only root may mount \
             FUSE filesystems (the device is usually mode 0666)"
        ),
        Err(e) => {
            Err(anyhow!(e).context(format!("cannot open {FUSE_DEVICE}, which FUSE mounts need")))
        }
    }
}

/// fusermount3 (or fuse 2's fusermount) in PATH, as fuser looks for it.
fn find_fusermount() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["fusermount3", "fusermount"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// This process's effective user and group, from the owner of /proc/self.
fn owner() -> Result<Owner> {
    let m = std::fs::metadata("/proc/self").context("cannot read /proc/self")?;
    Ok(Owner {
        uid: m.uid(),
        gid: m.gid(),
    })
}

fn mount_config(a: &MountArgs, auto_unmount: bool) -> Config {
    let mut options = vec![
        MountOption::RO,
        MountOption::FSName("kairn".into()),
        MountOption::Subtype("kairn".into()),
        MountOption::NoSuid,
        MountOption::NoDev,
    ];
    if !a.no_default_permissions {
        // The kernel checks the recorded owners and modes, as on the original filesystem.
        options.push(MountOption::DefaultPermissions);
    }
    if auto_unmount {
        options.push(MountOption::AutoUnmount);
    }
    let mut config = Config::default();
    config.mount_options = options;
    config.acl = if a.allow_other {
        SessionACL::All
    } else if auto_unmount {
        // The same people as without: root, who mounted it.
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    // A slow read does not hold up listing directories meanwhile.
    config.n_threads = Some(4);
    config
}

/// Unmounts; a mountpoint still in use (a shell inside it) is detached instead, so that it is
/// free at once and the programs using it get errors rather than a hang.
///
/// With fusermount3 at hand it does the unmount, for root as for others: fuser's own unmount
/// under auto_unmount only closes the socket fusermount3 waits on, and fusermount3 then leaves
/// a filesystem that still answers mounted (it only cleans up after a dead process).
fn unmount(unmounter: &mut SessionUnmounter, dir: &Path, fusermount: Option<&Path>) -> Result<()> {
    let Some(fusermount) = fusermount else {
        return match unmounter.unmount() {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(EBUSY) => {
                busy(dir);
                run_quietly(Path::new("umount"), &["-l"], dir)
                    .map_err(|why| anyhow!("cannot unmount {}: {why}", dir.display()))
            }
            Err(e) => Err(anyhow!(e).context(format!("cannot unmount {}", dir.display()))),
        };
    };
    if run_quietly(fusermount, &["-u"], dir).is_err() {
        busy(dir);
        run_quietly(fusermount, &["-u", "-z"], dir).map_err(|why| {
            anyhow!(
                "cannot unmount {}: {why}; `fusermount3 -u -z {}` removes it",
                dir.display(),
                dir.display()
            )
        })?;
    }
    // Nothing is mounted any more: this only lets the waiting fusermount3 go.
    let _ = unmounter.unmount();
    Ok(())
}

fn busy(dir: &Path) {
    eprintln!(
        "repo: {} is in use: detaching it; programs still inside it get errors",
        dir.display()
    );
}

/// Runs `program ARGS -- DIR`; the error is what it said.
fn run_quietly(program: &Path, args: &[&str], dir: &Path) -> std::result::Result<(), String> {
    let out = std::process::Command::new(program)
        .args(args)
        .arg("--")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The filesystem thread ends once the kernel lets go; one still serving a program that kept
/// a file open in a detached mount is left to end with the process.
fn wait_for(worker: JoinHandle<std::io::Result<()>>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !worker.is_finished() {
        if Instant::now() > deadline {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    finish(worker)
}

fn finish(worker: JoinHandle<std::io::Result<()>>) -> Result<()> {
    match worker.join() {
        Ok(result) => result.context("the filesystem stopped"),
        Err(_) => bail!("the filesystem thread panicked"),
    }
}
