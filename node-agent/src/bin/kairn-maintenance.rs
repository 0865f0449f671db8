//! The `kairn-maintenance` binary: the maintenance workload's Deployment runs it with the
//! repository's full key. It refuses an append-only key, then applies the BackupSchedules'
//! retention and prunes, pass after pass, until SIGTERM. A binary of its own rather than a
//! subcommand of `node-agent`: it needs none of the agent's node settings, a Deployment names
//! it by its command, and the agent's command line stays as the DaemonSet has it.
//!
//! Exit codes (those of the agent): 0 after SIGTERM; 1 for any error at startup (bad
//! configuration, the repository cannot be opened, no API credentials), with the reason
//! logged; 12 for a wrong repository password; 18 for an append-only key (or
//! KAIRN_APPEND_ONLY): retention and prune delete, so this process needs the full key.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use node_agent::job::RepoAccess;
use node_agent::maintenance::settings::MaintenanceArgs;
use node_agent::maintenance::state::Maintenance;
use node_agent::settings::{fail, init_logging};

/// How long SIGTERM waits for a running step. A prune stopped midway is safe: its marks are
/// recorded before anything is deleted, and the next prune carries them out.
const GRACE: Duration = Duration::from_secs(20);

fn main() -> std::process::ExitCode {
    engine::allocator::fix_mmap_threshold();
    let args = MaintenanceArgs::parse();
    init_logging(args.log_text);
    // Opened once at startup, outside the async runtime (the storage backend owns one of its
    // own): a wrong password or the agents' key shows at once in the pod's restarts.
    let access = match args.repository.access().and_then(|a| {
        a.open()?
            .refuse_append_only("kairn-maintenance (retention and prune)")
            .context(
                "kairn-maintenance needs the repository's full key (the Secret \
                 kairn-repository-full), not the node agents' append-only one",
            )?;
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
    // Not a plain drop, which would wait for a step still running on a blocking thread.
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(access);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn run(args: MaintenanceArgs, access: RepoAccess) -> Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("cannot configure the Kubernetes client (in-cluster or KUBECONFIG)")?;
    let config = args.config();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        instance = %config.instance,
        listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        repository = %args.repository.redacted(),
        interval_seconds = config.interval.as_secs_f64(),
        prune_interval_seconds = config.prune_interval.as_secs_f64(),
        "maintenance started"
    );
    let state = Maintenance::new(client, access, config);
    let server = axum::serve(listener, node_agent::http::router(state.clone()));
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!("the metrics endpoint stopped: {e}");
        }
    });
    let loop_task = tokio::spawn(node_agent::maintenance::cycle::run(state.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    state.health.shutdown.store(true, Ordering::Relaxed);
    if tokio::time::timeout(GRACE, loop_task).await.is_err() {
        tracing::warn!("a step was still running: stopped midway; the next pass takes it up");
    }
    Ok(())
}
