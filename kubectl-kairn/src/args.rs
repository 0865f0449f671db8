//! The command line: `kubectl kairn COMMAND`, as kubectl passes it to the plugin.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Back up and restore PVCs and namespaces with Kairn, and see what the agents did.
///
/// kubectl does not pass its own global flags to a plugin: use this plugin's `--kubeconfig`,
/// `--context` and `-n` (or KUBECONFIG and the context's namespace).
#[derive(Debug, Parser)]
#[command(name = "kubectl-kairn", bin_name = "kubectl kairn", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the API server is, and how to print.
#[derive(Debug, Args)]
pub struct Global {
    /// The kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace (default: the context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Every namespace (`get`, `snapshots`).
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// The namespace the agents run in: where cross-namespace restores and logs are found.
    #[arg(
        long,
        global = true,
        env = "KAIRN_NAMESPACE",
        default_value = "kairn-system"
    )]
    pub kairn_namespace: String,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// One JSON document for scripts.
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up one PVC now: creates a VolumeBackup.
    Backup(BackupArgs),
    /// Restore a snapshot into a PVC: creates a VolumeRestore.
    Restore(RestoreArgs),
    /// Restore namespaces of a cluster backup in one step: creates a NamespaceRestore.
    RestoreNamespace(RestoreNamespaceArgs),
    /// Backups, restores, schedules and cluster backups in one table.
    Get,
    /// Everything about one backup or restore: for a cluster backup, every volume.
    Describe(NameArgs),
    /// The log lines of the agent that ran a backup or restore.
    Logs(LogsArgs),
    /// The snapshots in the repository, as the agents see them.
    Snapshots(SnapshotsArgs),
    /// The restore-readiness report (as `repo report`), with each schedule's interval and
    /// every PVC a schedule selects taken from the cluster.
    Report(ReportArgs),
}

/// `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write the page to this file: one HTML file with everything inline, that opens offline.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// The recovery point objective of a volume no schedule covers.
    #[arg(long, value_parser = parse_duration, default_value = "24h")]
    pub expect_interval: Duration,
}

/// Waiting for the work to finish.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait until the work is finished, and exit with its outcome.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (`90s`, `30m`, `2h`).
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    pub timeout: Duration,
}

/// `backup NS/PVC`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The PVC: `NAMESPACE/PVC`, or `PVC` in the current namespace.
    pub pvc: String,
    /// Tags recorded in the snapshot.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// How long the VolumeBackup object is kept once finished (`720h` by default).
    #[arg(long)]
    pub ttl: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `restore SNAPSHOT --to NS/PVC`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A snapshot id (or a unique prefix), or `latest`.
    pub snapshot: String,
    /// The PVC to fill: `NAMESPACE/PVC`, or `PVC` in the current namespace.
    #[arg(long)]
    pub to: String,
    /// With `latest`: whose latest snapshot (`NAMESPACE/PVC`); the target PVC by default.
    #[arg(long)]
    pub from: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `restore-namespace`.
#[derive(Debug, Args)]
pub struct RestoreNamespaceArgs {
    /// The namespaces to restore; every one in the backup when none is given.
    pub namespaces: Vec<String>,
    /// The cluster backup (a ClusterBackup's name).
    #[arg(long, conflicts_with = "series", required_unless_present = "series")]
    pub backup: Option<String>,
    /// Instead of --backup: the newest complete cluster backup of this schedule.
    #[arg(long)]
    pub series: Option<String>,
    /// Restore namespace OLD as NEW (repeatable).
    #[arg(long = "map", value_name = "OLD=NEW")]
    pub mappings: Vec<String>,
    /// Leave Secrets out.
    #[arg(long)]
    pub exclude_secrets: bool,
    /// Objects only: do not fill the restored PVCs.
    #[arg(long)]
    pub no_volumes: bool,
    /// What happens to an object that already exists: `Skip` (keep it) or `Update`.
    #[arg(long, default_value = "Skip")]
    pub existing_resource_policy: String,
    /// Push the cluster backup's images to this registry (`host[:port][/prefix]`) first, and
    /// point the restored workloads there by digest (for when the old registry is gone).
    #[arg(long, value_name = "REGISTRY[/PREFIX]")]
    pub push_images_to: Option<String>,
    /// With --push-images-to: a dockerconfigjson Secret in the agents' namespace that logs in
    /// to that registry.
    #[arg(long, value_name = "SECRET", requires = "push_images_to")]
    pub registry_secret: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// A backup or restore, by name.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The name of a ClusterBackup, VolumeBackup, VolumeRestore or NamespaceRestore.
    pub name: String,
}

/// `logs NAME`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub target: NameArgs,
    /// Every line of the agent's log, not only those naming the work.
    #[arg(long)]
    pub all: bool,
}

/// `snapshots`.
#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Only this PVC's snapshots.
    #[arg(long)]
    pub pvc: Option<String>,
    /// List the VolumeBackup objects (which the agents sync from the repository) instead of
    /// reading the repository: for users who may not read the agents' Secret. Taken on its
    /// own when that Secret is forbidden.
    #[arg(long)]
    pub objects: bool,
}

/// A duration like `90s`, `30m`, `2h` or `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("{text:?}: units are s, m, h and d")),
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?}: a number must come before each unit"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() || text.is_empty() {
        return Err(format!("{text:?}: give a unit, as in 90s, 30m or 2h"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_bare_numbers() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
