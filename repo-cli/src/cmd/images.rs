//! Container images: `backup --images` stores them, `images list` shows what a snapshot holds,
//! `images push` sends them back to a registry.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use engine::images::{Credentials, ImageOptions, PushOptions, RegistryOptions};

use crate::args::Global;
use crate::cmd::select::FilterArgs;
use crate::exit::{Partial, for_kind};
use crate::output;
use crate::progress::CliProgress;

/// How to reach registries: logins and plain-HTTP hosts.
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryArgs {
    /// Registry logins: a Docker `config.json` (what `docker login`, `skopeo login` or a
    /// `kubernetes.io/dockerconfigjson` Secret holds). Default: `$DOCKER_CONFIG/config.json`,
    /// else `~/.docker/config.json`, when it exists.
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// Reach this registry (`host[:port]`) over plain HTTP (repeatable). Loopback hosts always
    /// are.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure: Vec<String>,
}

impl RegistryArgs {
    /// The engine's registry options, with the logins read.
    pub fn options(&self) -> Result<RegistryOptions> {
        let mut credentials = Credentials::default();
        let file = self.authfile.clone().or_else(|| {
            let dir = std::env::var_os("DOCKER_CONFIG")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
            Some(dir.join("config.json")).filter(|p| p.exists())
        });
        if let Some(file) = file {
            let bytes = std::fs::read(&file)
                .with_context(|| format!("cannot read the registry logins {}", file.display()))?;
            credentials
                .add_config(&bytes)
                .map_err(|e| crate::exit::UsageError(format!("{}: {e}", file.display())))?;
        }
        Ok(RegistryOptions {
            credentials,
            insecure: self.insecure.clone(),
        })
    }
}

/// `repo images ...`.
#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// List the images an images snapshot holds: reference, digest, platforms, size.
    List {
        /// The snapshot (`latest` is the newest images snapshot).
        snapshot: String,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Push the images of a snapshot to a registry, digests unchanged.
    Push(PushArgs),
}

/// `repo images push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The snapshot (`latest` is the newest images snapshot).
    snapshot: String,
    /// Push to this registry, `host[:port][/prefix]`, each image keeping its repository path
    /// below the prefix; without it, to the registry each image came from.
    #[arg(long, value_name = "REGISTRY[/PREFIX]")]
    to: Option<String>,
    /// Only this image, as `images list` names it (repeatable).
    #[arg(long = "image", value_name = "REF")]
    only: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(g: &Global, c: ImagesCommand) -> Result<()> {
    match c {
        ImagesCommand::List { snapshot, filter } => list(g, &snapshot, &filter),
        ImagesCommand::Push(a) => push(g, a),
    }
}

/// The snapshot named: `latest` is the newest images snapshot passing the filters.
fn images_snapshot(
    repo: &engine::repo::Repository,
    name: &str,
    filter: &FilterArgs,
) -> Result<engine::format::snapshot::Snapshot> {
    use engine::format::snapshot::SourceKind;
    let mut filter = filter.filter();
    if name == "latest" && filter.kinds.is_empty() {
        filter.kinds = vec![SourceKind::Images];
    }
    Ok(engine::snapshots::find(repo, name, &filter)?.1)
}

fn list(g: &Global, name: &str, filter: &FilterArgs) -> Result<()> {
    let (repo, index) = g.open_indexed()?;
    let snap = images_snapshot(&repo, name, filter)?;
    let images = engine::images::list_images(&repo, &index, &snap)?;
    if g.json {
        return output::json(&images);
    }
    for i in &images {
        let platforms = if i.platforms.is_empty() {
            String::new()
        } else {
            format!("  [{}]", i.platforms.join(", "))
        };
        output::line(format!(
            "{}  {}  {}{platforms}",
            i.reference,
            i.digest,
            output::bytes(i.bytes)
        ))?;
    }
    Ok(())
}

fn push(g: &Global, a: PushArgs) -> Result<()> {
    let (repo, index) = g.open_indexed()?;
    let snap = images_snapshot(&repo, &a.snapshot, &a.filter)?;
    let opts = PushOptions {
        registry: a.registry.options()?,
        to: a.to,
        only: a.only,
    };
    let progress = CliProgress::new(g.quiet || g.json, !g.json);
    let report = engine::images::push_images(&repo, &index, &snap, &opts, &progress)?;
    let failed: Vec<serde_json::Value> = report
        .failed
        .iter()
        .map(|(r, e)| serde_json::json!({"reference": r, "error": e.to_string()}))
        .collect();
    if g.json {
        output::json(&serde_json::json!({"pushed": report.pushed, "failed": failed}))?;
    } else if !g.quiet {
        for p in &report.pushed {
            output::line(format!(
                "pushed {} as {} ({} blob(s) uploaded, {}; {} already there)",
                p.digest,
                p.target,
                p.uploaded,
                output::bytes(p.bytes),
                p.present
            ))?;
        }
    }
    partial(report.failed.iter().map(|(r, e)| (r.as_str(), e)), "pushed")
}

/// Says what failed on stderr and exits with the first failure's code.
fn partial<'a>(
    failed: impl Iterator<Item = (&'a str, &'a engine::Error)>,
    verb: &str,
) -> Result<()> {
    let mut code = None;
    for (reference, e) in failed {
        eprintln!("repo: {reference} was not {verb}: {e}");
        code.get_or_insert(for_kind(e.kind()));
    }
    match code {
        Some(code) => Err(Partial {
            code,
            message: String::new(),
        }
        .into()),
        None => Ok(()),
    }
}

/// `backup --images`/`--images-from`.
pub fn backup(
    g: &Global,
    references: Vec<String>,
    registry: &RegistryArgs,
    platform: Option<String>,
    opts: engine::backup::BackupOptions,
    force: bool,
    open: impl FnOnce(
        &Global,
    ) -> Result<(
        engine::repo::Repository,
        engine::session::Session,
        engine::index::Index,
    )>,
) -> Result<()> {
    let references = engine::images::parse_references(&references)
        .map_err(|e| crate::exit::UsageError(e.to_string()))?;
    if let Some(p) = &platform {
        engine::images::fetch::check_platform(p)
            .map_err(|e| crate::exit::UsageError(e.to_string()))?;
    }
    let image_opts = ImageOptions {
        registry: registry.options()?,
        platform,
        ..Default::default()
    };
    let (repo, session, index) = open(g)?;
    let opts = engine::backup::BackupOptions {
        parent: if force {
            engine::backup::ParentChoice::None
        } else {
            engine::backup::ParentChoice::Latest
        },
        ..opts
    };
    let progress = CliProgress::new(g.quiet || g.json, !g.json);
    let taken = engine::images::backup_images(
        &repo,
        &session,
        &index,
        &references,
        &image_opts,
        &opts,
        &progress,
    )?;
    session.end()?;
    let failed: Vec<serde_json::Value> = taken
        .failed
        .iter()
        .map(|f| serde_json::json!({"reference": f.reference, "error": f.error.to_string()}))
        .collect();
    if let Some(outcome) = &taken.outcome {
        let s = &outcome.snapshot.summary;
        if g.json {
            output::json(&serde_json::json!({
                "snapshot": outcome.id.to_hex(),
                "images": taken.images,
                "failed": failed,
                "downloaded": taken.downloaded,
                "summary": s,
            }))?;
        } else if !g.quiet {
            for i in &taken.images {
                output::line(format!(
                    "stored {} {} ({})",
                    i.reference,
                    i.digest,
                    output::bytes(i.bytes)
                ))?;
            }
            output::line(format!(
                "{} image(s) stored, {} downloaded, added {} to the repository",
                taken.images.len(),
                output::bytes(taken.downloaded),
                output::bytes(s.new_bytes_stored)
            ))?;
            output::saved(outcome)?;
        }
    }
    partial(
        taken
            .failed
            .iter()
            .map(|f| (f.reference.as_str(), &f.error)),
        "stored",
    )
}

/// The references of `--images` and `--images-from` (one a line, `#` comments, `-` for
/// standard input).
pub fn references(images: &[String], from: Option<&PathBuf>) -> Result<Vec<String>> {
    let mut out: Vec<String> = images.to_vec();
    if let Some(file) = from {
        let text = if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin().lock())
                .context("cannot read standard input")?
        } else {
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?
        };
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    Ok(out)
}
