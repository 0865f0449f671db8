//! The `node-agent` binary: configuration, logging, the thaw of what a killed predecessor
//! left frozen, the repository and API connections, then the reconcile loop and the HTTP
//! endpoints until SIGTERM. It only wires together what the library provides.
//!
//! Exit codes: 0 after a clean shutdown; 1 for any error at startup (bad configuration, the
//! repository cannot be opened, no API credentials), with the reason logged; 12 for a wrong
//! repository password.
//!
//! With an append-only key the agent applies no retention (it could not: forgetting deletes);
//! with a full key it still does after each scheduled backup, as before, so an existing
//! deployment keeps working until it moves to the maintenance workload.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use node_agent::context::Context;
use node_agent::freeze_recovery::{self, Handled};
use node_agent::freeze_state::StateDir;
use node_agent::job::RepoAccess;
use node_agent::settings::{Args, fail, init_logging};

fn main() -> std::process::ExitCode {
    engine::allocator::fix_mmap_threshold();
    // A mount pod's process: it only keeps the pod, and so its volume's mount, alive.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == node_agent::mount_pod::PAUSE_ARG)
    {
        return pause();
    }
    let args = Args::parse();
    init_logging(args.log_text);
    // First of all, before anything that can fail: an agent that cannot start (a wrong
    // password, an unreachable API) must still thaw what a killed predecessor left frozen.
    let left_frozen =
        freeze_recovery::thaw_left_frozen(&StateDir::new(&args.state_dir), &args.kubelet_root);
    // The storage backend owns a runtime of its own for blocking calls, so it is built, and
    // finally dropped, here, outside the agent's async runtime. It is opened once at startup:
    // a wrong password or an unreachable repository shows at once in the logs and the pod's
    // restarts, not at the first backup.
    let (access, append_only) = match args.repository.access().and_then(|a| {
        let append_only = a.open()?.append_only();
        Ok((a, append_only))
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
    let result = runtime.block_on(run(args, access.clone(), !append_only, left_frozen));
    drop(runtime);
    drop(access);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn run(
    args: Args,
    access: RepoAccess,
    retention: bool,
    left_frozen: Vec<Handled>,
) -> Result<()> {
    let kube_config = kube::Config::infer()
        .await
        .context("cannot configure the Kubernetes client (in-cluster or KUBECONFIG)")?;
    let client = kube::Client::try_from(kube_config.clone())
        .context("cannot configure the Kubernetes client (in-cluster or KUBECONFIG)")?;
    let export_client = node_agent::export::export_client(kube_config)
        .context("cannot configure the Kubernetes client for exports")?;
    let instance = args.instance();
    freeze_recovery::announce(&client, &instance, &args.node_name, &left_frozen).await;
    let mut config = args.agent_config(instance.clone(), retention);
    config.mount_pod = args.mount_pod(&client).await?;
    let ctx = Context::new(client, export_client, config, access);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        node = %args.node_name,
        instance = %instance,
        listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        repository = %args.repository.redacted(),
        "node agent started"
    );
    if !retention {
        // Said once, here: a retention that fails after every backup is the silent failure
        // this replaces.
        tracing::info!(
            "the repository is open append-only (an append-only key or KAIRN_APPEND_ONLY): \
             this agent only adds; schedules' retention and prune are the maintenance \
             workload's job (kairn-maintenance)"
        );
    }
    let server = axum::serve(listener, node_agent::http::router(ctx.clone()));
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!("the metrics endpoint stopped: {e}");
        }
    });
    let shutdown = Arc::new(AtomicBool::new(false));
    let loop_task = tokio::spawn(node_agent::controller::run(ctx.clone(), shutdown.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: stopping running jobs");
    shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
    node_agent::controller::stop_all(&ctx, Duration::from_secs(20)).await;
    let _ = loop_task.await;
    Ok(())
}

/// Waits for SIGTERM (or SIGINT) and exits 0. As a container's PID 1 a signal without a
/// handler is ignored, so the handler is what lets a mount pod stop at once when deleted.
fn pause() -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let waited = runtime.map(|r| {
        r.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok::<(), std::io::Error>(())
        })
    });
    match waited {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(e)) | Err(e) => {
            eprintln!("mount-pod: cannot wait for signals: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
