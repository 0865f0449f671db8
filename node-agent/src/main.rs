//! The `node-agent` binary: configuration, logging, the repository and API connections, then
//! the reconcile loop and the HTTP endpoints until SIGTERM.
//!
//! Exit codes: 0 after a clean shutdown; 1 for any error at startup (bad configuration, the
//! repository cannot be opened, no API credentials), with the reason logged; 12 for a wrong
//! repository password.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use engine::backend::faults::{FaultPlan, FaultyBackend};
use engine::backend::{Location, OpendalBackend, StorageOptions};
use node_agent::agent::{Agent, AgentConfig};
use node_agent::job::RepoAccess;

/// Kairn's node agent: backs up and restores the pod volumes of its node.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// This node's name (set it from the downward API: spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// The kubelet's root directory, as mounted into the agent.
    #[arg(long, env = "KAIRN_KUBELET_ROOT", default_value = "/var/lib/kubelet")]
    kubelet_root: PathBuf,
    /// Repository location: a local directory, s3://bucket/prefix, or opendal:<service>.
    #[arg(long = "repo", env = "KAIRN_REPOSITORY")]
    repo: String,
    /// File holding the repository password on its first line (a mounted Secret).
    #[arg(long, env = "KAIRN_PASSWORD_FILE")]
    password_file: PathBuf,
    /// File of storage options, one key=value per line (a mounted Secret: credentials stay out
    /// of the pod spec, the environment and the process list).
    #[arg(long, env = "KAIRN_STORAGE_OPTIONS_FILE")]
    storage_options_file: Option<PathBuf>,
    /// The cluster's name, recorded in every snapshot.
    #[arg(long, env = "KAIRN_CLUSTER")]
    cluster: Option<String>,
    /// The most backups and restores at once on this node.
    #[arg(long, env = "KAIRN_MAX_CONCURRENT", default_value_t = 2)]
    max_concurrent: usize,
    /// The most attempts a backup or restore gets across agent restarts.
    #[arg(long, env = "KAIRN_MAX_ATTEMPTS", default_value_t = 3)]
    max_attempts: u32,
    /// Seconds between reconciles.
    #[arg(long, env = "KAIRN_RESYNC_SECONDS", default_value_t = 10.0)]
    resync_seconds: f64,
    /// Seconds between progress updates of a running job's status.
    #[arg(long, env = "KAIRN_PROGRESS_SECONDS", default_value_t = 5.0)]
    progress_seconds: f64,
    /// The agent's own namespace (the downward API's metadata.namespace): only VolumeRestores
    /// there may read another namespace's backups, write into another namespace, or write to
    /// a path on a node.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kairn-system")]
    admin_namespace: String,
    /// The longest a volume's filesystem stays frozen (hooks.fsfreeze), in seconds.
    #[arg(long, env = "KAIRN_FREEZE_LIMIT_SECONDS", default_value_t = 300)]
    freeze_limit_seconds: u64,
    /// Address of the metrics and health endpoints.
    #[arg(long, env = "KAIRN_LISTEN", default_value = "0.0.0.0:8085")]
    listen: String,
    /// Local cache of snapshots, indexes and tree packs (an emptyDir, bounded by --cache-size).
    #[arg(long, env = "KAIRN_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// The most the cache holds, in bytes.
    #[arg(long, env = "KAIRN_CACHE_SIZE", default_value_t = 1 << 30)]
    cache_size: u64,
    /// Seconds without a heartbeat after which a prune may expire a writer's session.
    #[arg(long, env = "KAIRN_SESSION_EXPIRY", default_value_t = engine::session::DEFAULT_EXPIRY.as_secs())]
    session_expiry: u64,
    /// Log as plain text instead of JSON lines.
    #[arg(long, env = "KAIRN_LOG_TEXT")]
    log_text: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging(args.log_text);
    // The storage backend owns a runtime of its own for blocking calls, so it is built, and
    // finally dropped, here, outside the agent's async runtime. It is opened once at startup:
    // a wrong password or an unreachable repository shows at once in the logs and the pod's
    // restarts, not at the first backup.
    let access = match repo_access(&args).and_then(|a| {
        a.open()?;
        Ok(a)
    }) {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(args, access.clone()));
    drop(runtime);
    drop(access);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Logs a fatal error and gives its exit code.
fn fail(e: &anyhow::Error) -> std::process::ExitCode {
    let wrong_password = e
        .downcast_ref::<engine::Error>()
        .is_some_and(|e| e.kind() == engine::ErrorKind::WrongPassword);
    tracing::error!("{e:#}");
    std::process::ExitCode::from(if wrong_password { 12 } else { 1 })
}

fn init_logging(text: bool) {
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

async fn run(args: Args, access: RepoAccess) -> Result<()> {
    let kube_config = kube::Config::infer()
        .await
        .context("cannot configure the Kubernetes client (in-cluster or KUBECONFIG)")?;
    let client = kube::Client::try_from(kube_config.clone())
        .context("cannot configure the Kubernetes client (in-cluster or KUBECONFIG)")?;
    let export_client = node_agent::export::export_client(kube_config)
        .context("cannot configure the Kubernetes client for exports")?;
    let instance = format!(
        "{}-{:x}",
        std::env::var("POD_NAME").unwrap_or_else(|_| args.node_name.clone()),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros()
    );
    let config = AgentConfig {
        node: args.node_name.clone(),
        instance: instance.clone(),
        kubelet_pods: args.kubelet_root.join("pods"),
        cluster: args.cluster.clone(),
        max_concurrent: args.max_concurrent.max(1),
        max_attempts: args.max_attempts.max(1),
        resync: Duration::from_secs_f64(args.resync_seconds.max(0.1)),
        progress_interval: Duration::from_secs_f64(args.progress_seconds.max(0.1)),
        freeze_limit: Duration::from_secs(args.freeze_limit_seconds.max(1)),
        admin_namespace: args.admin_namespace.clone(),
    };
    let agent = Agent::new(client, export_client, config, access);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        node = %args.node_name,
        instance = %instance,
        listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        repository = %agent_location(&args.repo),
        "node agent started"
    );
    let server = axum::serve(listener, node_agent::http::router(agent.clone()));
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!("the metrics endpoint stopped: {e}");
        }
    });
    let shutdown = Arc::new(AtomicBool::new(false));
    let loop_task = tokio::spawn(agent.clone().run(shutdown.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: stopping running jobs");
    shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
    agent.stop_all(Duration::from_secs(20)).await;
    let _ = loop_task.await;
    Ok(())
}

/// The repository location without any credentials a URL might carry.
fn agent_location(repo: &str) -> String {
    match repo.split_once('@') {
        Some((_, rest)) if repo.contains("://") => format!("<credentials>@{rest}"),
        _ => repo.to_string(),
    }
}

fn repo_access(args: &Args) -> Result<RepoAccess> {
    let location: Location = args.repo.parse().context("bad repository location")?;
    let mut options = std::collections::BTreeMap::new();
    if let Some(file) = &args.storage_options_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read storage options from {}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                bail!("{} line {}: expected key=value", file.display(), n + 1);
            };
            options.insert(k.trim().to_string(), v.trim().to_string());
        }
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
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let password = first.strip_suffix(b"\r").unwrap_or(first).to_vec();
    if password.is_empty() {
        bail!(
            "the password file {} is empty",
            args.password_file.display()
        );
    }
    Ok(RepoAccess {
        backend,
        password: Arc::new(password),
        cache_dir: args.cache_dir.clone(),
        cache_size: args.cache_size,
        session_expiry: Duration::from_secs(args.session_expiry.max(6)),
    })
}
