//! The agent's settings, from its command line and environment (the DaemonSet sets them),
//! and what is made of them at startup: the agent's configuration, the repository access,
//! logging, and the exit code of a fatal error.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use engine::backend::faults::{FaultPlan, FaultyBackend};
use engine::backend::{Location, OpendalBackend, StorageOptions};

use crate::config::AgentConfig;
use crate::freeze_state::StateDir;
use crate::job::RepoAccess;
use crate::mount_pod::MountPodSettings;

/// The repository settings the node agent and the maintenance workload share.
#[derive(Debug, clap::Args)]
pub struct RepoArgs {
    /// Repository location: a local directory, s3://bucket/prefix, or opendal:<service>.
    #[arg(long = "repo", env = "KAIRN_REPOSITORY")]
    pub repo: String,
    /// File holding the repository password on its first line (a mounted Secret).
    #[arg(long, env = "KAIRN_PASSWORD_FILE")]
    pub password_file: PathBuf,
    /// File of storage options, one key=value per line (a mounted Secret: credentials stay out
    /// of the pod spec, the environment and the process list).
    #[arg(long, env = "KAIRN_STORAGE_OPTIONS_FILE")]
    pub storage_options_file: Option<PathBuf>,
    /// Never delete anything, as if the key were append-only: for a storage credential that
    /// may create, read and list, but not delete. Retention is then the maintenance
    /// workload's job.
    #[arg(long, env = "KAIRN_APPEND_ONLY")]
    pub append_only: bool,
    /// Local cache of snapshots, indexes and tree packs (an emptyDir, bounded by --cache-size).
    #[arg(long, env = "KAIRN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The most the cache holds, in bytes.
    #[arg(long, env = "KAIRN_CACHE_SIZE", default_value_t = 1 << 30)]
    pub cache_size: u64,
    /// Seconds without a heartbeat after which a prune may expire a writer's session.
    #[arg(long, env = "KAIRN_SESSION_EXPIRY", default_value_t = engine::session::DEFAULT_EXPIRY.as_secs())]
    pub session_expiry: u64,
}

impl RepoArgs {
    /// The repository, as the storage options and password files describe it.
    pub fn access(&self) -> Result<RepoAccess> {
        repo_access(self)
    }

    /// The repository location without any credentials a URL might carry.
    pub fn redacted(&self) -> String {
        redacted_location(&self.repo)
    }
}

/// Kairn's node agent: backs up and restores the pod volumes of its node.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// This node's name (set it from the downward API: spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// The kubelet's root directory, as mounted into the agent.
    #[arg(long, env = "KAIRN_KUBELET_ROOT", default_value = "/var/lib/kubelet")]
    pub kubelet_root: PathBuf,
    /// The repository and how to reach it.
    #[command(flatten)]
    pub repository: RepoArgs,
    /// The cluster's name, recorded in every snapshot.
    #[arg(long, env = "KAIRN_CLUSTER")]
    pub cluster: Option<String>,
    /// The most backups and restores at once on this node.
    #[arg(long, env = "KAIRN_MAX_CONCURRENT", default_value_t = 2)]
    pub max_concurrent: usize,
    /// The most attempts a backup or restore gets across agent restarts.
    #[arg(long, env = "KAIRN_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
    /// Seconds between reconciles.
    #[arg(long, env = "KAIRN_RESYNC_SECONDS", default_value_t = 10.0)]
    pub resync_seconds: f64,
    /// Seconds between two reads of the repository by the leading agent, which keeps the
    /// cluster's ClusterBackups and VolumeBackups in step with the snapshots it holds
    /// (written by this cluster or another); 0 turns this off.
    #[arg(long, env = "KAIRN_REPO_SYNC_SECONDS", default_value_t = 300.0)]
    pub repo_sync_seconds: f64,
    /// Seconds between the leading agent's sweeps of finished objects, read from the API
    /// rather than kept in memory: their expiry (TTL), and every schedule's status (written at
    /// once, too, when one of its runs moves on).
    #[arg(long, env = "KAIRN_HISTORY_SECONDS", default_value_t = 300.0)]
    pub history_seconds: f64,
    /// Seconds this node's Lease lasts unrenewed (renewed every resync): past it, the other
    /// agents take over this node's work, or fail it as "node lost".
    #[arg(long, env = "KAIRN_LEASE_SECONDS", default_value_t = 60)]
    pub lease_seconds: u32,
    /// Seconds between progress updates of a running job's status.
    #[arg(long, env = "KAIRN_PROGRESS_SECONDS", default_value_t = 5.0)]
    pub progress_seconds: f64,
    /// The agent's own namespace (the downward API's metadata.namespace): only VolumeRestores
    /// there may read another namespace's backups, write into another namespace, or write to
    /// a path on a node.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kairn-system")]
    pub admin_namespace: String,
    /// The longest a volume's filesystem stays frozen (hooks.fsfreeze), in seconds.
    #[arg(long, env = "KAIRN_FREEZE_LIMIT_SECONDS", default_value_t = 300)]
    pub freeze_limit_seconds: u64,
    /// Node-local directory that outlives the agent's pod (a hostPath): records of frozen
    /// filesystems, so that the next agent thaws what a killed one left frozen.
    #[arg(long, env = "KAIRN_STATE_DIR", default_value = "/var/lib/kairn/state")]
    pub state_dir: PathBuf,
    /// Address of the metrics and health endpoints.
    #[arg(long, env = "KAIRN_LISTEN", default_value = "0.0.0.0:8085")]
    pub listen: String,
    /// Log as plain text instead of JSON lines.
    #[arg(long, env = "KAIRN_LOG_TEXT")]
    pub log_text: bool,
    /// The image of mount pods (for volumes no running pod mounts); by default the agent's
    /// own, read from its pod (POD_NAME), whose binary has the mount pod's `mount-pod` mode.
    #[arg(long, env = "KAIRN_MOUNT_POD_IMAGE")]
    pub mount_pod_image: Option<String>,
    /// Mount pods' resources, as a pod container's `resources` in JSON.
    #[arg(
        long,
        env = "KAIRN_MOUNT_POD_RESOURCES",
        default_value = r#"{"requests":{"cpu":"10m","memory":"16Mi"},"limits":{"memory":"64Mi"}}"#
    )]
    pub mount_pod_resources: String,
    /// Mount pods' tolerations, as a pod's `tolerations` in JSON.
    #[arg(long, env = "KAIRN_MOUNT_POD_TOLERATIONS", default_value = "[]")]
    pub mount_pod_tolerations: String,
    /// Mount pods' priority class.
    #[arg(long, env = "KAIRN_MOUNT_POD_PRIORITY_CLASS")]
    pub mount_pod_priority_class: Option<String>,
}

impl Args {
    /// This process's instance id: the pod's name (or the node's) and the start time, so it
    /// differs after every restart.
    pub fn instance(&self) -> String {
        format!(
            "{}-{:x}",
            std::env::var("POD_NAME").unwrap_or_else(|_| self.node_name.clone()),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_micros()
        )
    }

    /// The agent's configuration, with every setting brought within its bounds. `retention`:
    /// whether the agent applies schedules' retention itself (it cannot with an append-only
    /// key).
    pub fn agent_config(&self, instance: String, retention: bool) -> AgentConfig {
        AgentConfig {
            node: self.node_name.clone(),
            instance,
            kubelet_pods: self.kubelet_root.join("pods"),
            cluster: self.cluster.clone(),
            max_concurrent: self.max_concurrent.max(1),
            max_attempts: self.max_attempts.max(1),
            resync: Duration::from_secs_f64(self.resync_seconds.max(0.1)),
            history: Duration::from_secs_f64(self.history_seconds.max(0.1)),
            repo_sync: (self.repo_sync_seconds > 0.0)
                .then(|| Duration::from_secs_f64(self.repo_sync_seconds.max(1.0))),
            // At least three resyncs, so a busy agent is not judged lost between two renewals.
            lease_seconds: i32::try_from(self.lease_seconds)
                .unwrap_or(i32::MAX)
                .max((3.0 * self.resync_seconds).ceil() as i32)
                .max(1),
            progress_interval: Duration::from_secs_f64(self.progress_seconds.max(0.1)),
            freeze_limit: Duration::from_secs(self.freeze_limit_seconds.max(1)),
            state_dir: StateDir::new(&self.state_dir),
            admin_namespace: self.admin_namespace.clone(),
            retention,
            mount_pod: MountPodSettings::default(),
        }
    }

    /// How mount pods are made. Without `KAIRN_MOUNT_POD_IMAGE`, the image is the agent's
    /// own, read from its pod; failing that (no POD_NAME), the release's image.
    pub async fn mount_pod(&self, client: &kube::Client) -> Result<MountPodSettings> {
        let resources = serde_json::from_str(&self.mount_pod_resources)
            .context("KAIRN_MOUNT_POD_RESOURCES is not a container's resources in JSON")?;
        let tolerations = serde_json::from_str(&self.mount_pod_tolerations)
            .context("KAIRN_MOUNT_POD_TOLERATIONS is not a list of tolerations in JSON")?;
        let image = match &self.mount_pod_image {
            Some(image) => image.clone(),
            None => own_image(client, &self.admin_namespace)
                .await
                .unwrap_or_else(|| {
                    format!("ghcr.io/kairn/node-agent:{}", env!("CARGO_PKG_VERSION"))
                }),
        };
        Ok(MountPodSettings {
            image,
            resources: Some(resources),
            tolerations,
            priority_class: self.mount_pod_priority_class.clone(),
        })
    }
}

/// The image of the agent's own container (`node-agent`, or its pod's first), from its pod.
async fn own_image(client: &kube::Client, namespace: &str) -> Option<String> {
    let name = std::env::var("POD_NAME").ok()?;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), namespace);
    let pod = match pods.get(&name).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(pod = %name, "cannot read the agent's own pod for its image: {e}");
            return None;
        }
    };
    let containers = pod.spec?.containers;
    let own = containers.iter().find(|c| c.name == "node-agent");
    own.or(containers.first())?.image.clone()
}

/// Logs a fatal error and gives its exit code: 12 for a wrong password, 18 for a key that is
/// append-only where deleting is the point (the codes of `repo`), 1 for anything else.
pub fn fail(e: &anyhow::Error) -> std::process::ExitCode {
    let kind = e.downcast_ref::<engine::Error>().map(|e| e.kind());
    tracing::error!("{e:#}");
    std::process::ExitCode::from(match kind {
        Some(engine::ErrorKind::WrongPassword) => 12,
        Some(engine::ErrorKind::AppendOnly) => 18,
        _ => 1,
    })
}

/// Logs to stderr: JSON lines, or plain text with `text`; `RUST_LOG` filters.
pub fn init_logging(text: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if text {
        builder.init();
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    }
}

/// The repository location without any credentials a URL might carry.
pub fn redacted_location(repo: &str) -> String {
    match repo.split_once('@') {
        Some((_, rest)) if repo.contains("://") => format!("<credentials>@{rest}"),
        _ => repo.to_string(),
    }
}

/// Storage options, one `key=value` per line; blank lines and `#` comments are skipped.
/// `origin` names the text in errors (never a value: values may be credentials).
pub fn parse_storage_options(
    text: &str,
    origin: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    let mut options = std::collections::BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            bail!("{origin} line {}: expected key=value", n + 1);
        };
        options.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(options)
}

/// The password on the first line of `text`, without its line ending; refused when empty.
pub fn first_line_password(text: &[u8], origin: &str) -> Result<Vec<u8>> {
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let password = first.strip_suffix(b"\r").unwrap_or(first).to_vec();
    if password.is_empty() {
        bail!("the password in {origin} is empty");
    }
    Ok(password)
}

fn repo_access(args: &RepoArgs) -> Result<RepoAccess> {
    let location: Location = args.repo.parse().context("bad repository location")?;
    let mut options = std::collections::BTreeMap::new();
    if let Some(file) = &args.storage_options_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read storage options from {}", file.display()))?;
        options = parse_storage_options(&text, &file.display().to_string())?;
    }
    let opts = StorageOptions {
        options,
        ..Default::default()
    };
    let mut backend: Arc<dyn engine::backend::Backend> =
        Arc::new(OpendalBackend::open(&location, &opts, false)?);
    // The testing hook the CLI has too (engine/src/backend/faults.rs).
    if let Ok(spec) = std::env::var("KAIRN_FAULTS") {
        let plan = FaultPlan::parse(&spec).map_err(|e| anyhow::anyhow!("KAIRN_FAULTS: {e}"))?;
        tracing::warn!("KAIRN_FAULTS is set: injecting storage faults ({spec})");
        backend = Arc::new(FaultyBackend::new(backend, plan));
    }
    let text = std::fs::read(&args.password_file).with_context(|| {
        format!(
            "cannot read the password file {}",
            args.password_file.display()
        )
    })?;
    let password = first_line_password(
        &text,
        &format!("the password file {}", args.password_file.display()),
    )?;
    Ok(RepoAccess {
        backend,
        password: Arc::new(password),
        cache_dir: args.cache_dir.clone(),
        cache_size: args.cache_size,
        session_expiry: Duration::from_secs(args.session_expiry.max(6)),
        append_only: args.append_only,
    })
}
