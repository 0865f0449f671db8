//! `kubectl kairn`: back up and restore PVCs and namespaces, and see what the agents did,
//! through the API server only. kubectl finds this binary on PATH as a plugin.

mod args;
mod describe;
mod exit;
mod format;
mod get;
mod logs;
mod lookup;
mod report;
mod repository;
mod snapshots;
mod submit;
mod wait;

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use args::{Cli, Command, Global};

/// What every command needs: the client, the namespace meant, and the global flags.
pub struct Ctx {
    /// The API server.
    pub client: Client,
    /// `-n`, or the context's namespace.
    pub namespace: String,
    /// The global flags.
    pub global: Global,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return exit::fail(&anyhow::Error::new(e).context("cannot start the runtime")),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => exit::fail(&e),
    }
}

async fn run(cli: Cli) -> Result<u8> {
    let ctx = connect(cli.global).await?;
    match cli.command {
        Command::Backup(a) => submit::backup(&ctx, a).await,
        Command::Restore(a) => submit::restore(&ctx, a).await,
        Command::RestoreNamespace(a) => submit::restore_namespace(&ctx, a).await,
        Command::Get => get::run(&ctx).await,
        Command::Describe(a) => describe::run(&ctx, a).await,
        Command::Logs(a) => logs::run(&ctx, a).await,
        Command::Snapshots(a) => snapshots::run(&ctx, a).await,
        Command::Report(a) => report::run(&ctx, a).await,
    }
}

/// A client from `--kubeconfig`/`--context`, else the usual inference (KUBECONFIG,
/// ~/.kube/config, then the in-cluster service account).
async fn connect(global: Global) -> Result<Ctx> {
    let options = KubeConfigOptions {
        context: global.context.clone(),
        ..Default::default()
    };
    let config = match (&global.kubeconfig, &global.context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(file, &options).await?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options).await?,
        (None, None) => Config::infer()
            .await
            .context("no cluster: set KUBECONFIG or --kubeconfig")?,
    };
    let namespace = global
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).context("cannot build a client")?;
    Ok(Ctx {
        client,
        namespace,
        global,
    })
}
