mod files_from;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Args};
use engine::backup::resume::adopt_interrupted_packs;
use engine::backup::{
    BackupOptions, BackupOutcome, CACHEDIR_TAG, DryRunOutcome, ParentChoice, backup, backup_stream,
};
use engine::etcd::{EtcdSource, EtcdTls, backup_etcd};
use engine::format::snapshot::Group;
use engine::index::Index;
use engine::session::Session;

use self::files_from::ListKind;
use crate::args::Global;
use crate::exit::Partial;
use crate::progress::CliProgress;
use crate::{exit, output};

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Files and directories to back up.
    paths: Vec<PathBuf>,
    /// Exclude paths matching this glob (a name pattern, or an absolute path pattern with `/`).
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    excludes: Vec<String>,
    /// Read exclude patterns from a file, one per line (`#` starts a comment).
    #[arg(long, value_name = "FILE")]
    exclude_file: Vec<PathBuf>,
    /// Exclude paths matching this glob, ignoring case.
    #[arg(long = "iexclude", value_name = "PATTERN")]
    iexcludes: Vec<String>,
    /// Read case-insensitive exclude patterns from a file, one per line.
    #[arg(long, value_name = "FILE")]
    iexclude_file: Vec<PathBuf>,
    /// Leave out files larger than this (500K, 2G).
    #[arg(long, value_name = "SIZE", value_parser = crate::args::parse_size)]
    exclude_larger_than: Option<u64>,
    /// Leave out the contents of cache directories, those holding a valid CACHEDIR.TAG
    /// (https://bford.info/cachedir/); the tag file itself is kept.
    #[arg(long)]
    exclude_caches: bool,
    /// Leave out the contents of directories holding FILE (that begins with HEADER, when
    /// given); FILE itself is kept. Repeatable.
    #[arg(long, value_name = "FILE[:HEADER]")]
    exclude_if_present: Vec<String>,
    /// Read paths to back up from this file, one a line (`#` comments and blank lines are
    /// ignored, a line's surrounding blanks trimmed; `-` for standard input). Repeatable.
    #[arg(long, value_name = "FILE")]
    files_from: Vec<PathBuf>,
    /// Like --files-from, each non-empty line taken exactly as written.
    #[arg(long, value_name = "FILE")]
    files_from_verbatim: Vec<PathBuf>,
    /// Read NUL-separated paths to back up (`find -print0`) from this file.
    #[arg(long, value_name = "FILE")]
    files_from_raw: Vec<PathBuf>,
    /// Do not cross into other filesystems.
    #[arg(short = 'x', long)]
    one_file_system: bool,
    /// Write nothing: walk and chunk as a backup would, then say what it would add.
    #[arg(short = 'n', long, conflicts_with_all = ["stdin", "etcd", "manifests", "images", "images_from"])]
    dry_run: bool,
    /// List each new and modified file on standard output; -vv unchanged ones too.
    #[arg(short = 'v', long, action = ArgAction::Count)]
    verbose: u8,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Record this host name instead of the machine's.
    #[arg(long)]
    host: Option<String>,
    /// Compare against this snapshot to skip unchanged files.
    #[arg(long, conflicts_with = "force")]
    parent: Option<String>,
    /// Read every file, ignoring any parent snapshot.
    #[arg(long)]
    force: bool,
    /// Back up standard input as one file.
    #[arg(long, requires = "stdin_filename")]
    stdin: bool,
    /// The file name to give standard input in the snapshot.
    #[arg(long, value_name = "NAME")]
    stdin_filename: Option<String>,
    /// Take an etcd snapshot from this client URL (repeatable, or comma-separated: the first
    /// that answers is used). Stored as `/etcd-snapshot.db`, checked against etcd's SHA-256.
    #[arg(long, value_name = "ENDPOINT", value_delimiter = ',', conflicts_with_all = ["stdin", "paths"])]
    etcd: Vec<String>,
    /// The CA that signed etcd's server certificate (kubeadm: /etc/kubernetes/pki/etcd/ca.crt).
    #[arg(long, value_name = "FILE", requires = "etcd")]
    etcd_cacert: Option<PathBuf>,
    /// Client certificate for etcd (kubeadm: .../healthcheck-client.crt).
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    etcd_cert: Option<PathBuf>,
    /// The client certificate's key (kubeadm: .../healthcheck-client.key).
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    etcd_key: Option<PathBuf>,
    /// Make the snapshot part of this cluster backup: snapshots that share the id are listed
    /// as one (`snapshots --group`) and kept or forgotten together.
    #[arg(long, value_name = "ID")]
    group: Option<String>,
    /// The series the cluster backup belongs to (a schedule's name): retention decides each
    /// series' cluster backups as one sequence.
    #[arg(long, value_name = "NAME", requires = "group")]
    series: Option<String>,
    /// Store Kubernetes objects as a manifests snapshot: a file (`-` for standard input) of what
    /// `kubectl get ... -o json` or `-o yaml` prints. Each object is normalised and stored at
    /// `<namespace or _cluster>/<group>/<Kind>/<name>.yaml`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["stdin", "paths", "etcd"])]
    manifests: Option<PathBuf>,
    /// With --manifests: keep each object's status.
    #[arg(long, requires = "manifests")]
    keep_status: bool,
    /// Store these container images (`registry/repository:tag` or `@sha256:...`) as an images
    /// snapshot: an OCI image layout of each image's manifests, config and layers, fetched
    /// by digest and checked. `repo restore` gives a directory `skopeo copy oci:DIR:REF` reads.
    #[arg(long, value_name = "REF", num_args = 1.., conflicts_with_all = ["stdin", "paths", "etcd", "manifests"])]
    images: Vec<String>,
    /// Like --images, with the references read from a file (one a line; `-` for standard input).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["stdin", "paths", "etcd", "manifests"])]
    images_from: Option<PathBuf>,
    /// With --images: of a multi-platform image keep only this platform (`linux/amd64`),
    /// stored as that platform's manifest. Every platform by default.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    #[command(flatten)]
    registry: super::images::RegistryArgs,
    /// Kubernetes cluster name to record on an etcd, manifests or images snapshot.
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
}

fn read_exclude_file(path: &PathBuf) -> Result<Vec<String>> {
    // Deliberately unlike --files-from: a pattern keeps its inner and trailing spaces minus
    // the line's ends, as restic reads exclude files.
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read exclude file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

fn read_pem(path: &Option<PathBuf>) -> Result<Option<Vec<u8>>> {
    path.as_ref()
        .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()
}

impl BackupArgs {
    /// True for `--dry-run`, which writes nothing (Ctrl-C then says so).
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }
}

pub fn run(g: &Global, a: BackupArgs) -> Result<()> {
    if !a.etcd.is_empty() {
        return run_etcd(g, &a);
    }
    if let Some(file) = &a.manifests {
        return run_manifests(g, &a, file);
    }
    if !a.images.is_empty() || a.images_from.is_some() {
        let refs = super::images::references(&a.images, a.images_from.as_ref())?;
        let opts = cluster_source_options(&a);
        let (registry, platform) = (&a.registry, a.platform.clone());
        return super::images::backup(g, refs, registry, platform, opts, a.force, open_resuming);
    }
    if a.platform.is_some() {
        bail!(crate::exit::UsageError(
            "--platform is for an --images backup".into()
        ));
    }
    if a.cluster.is_some() {
        bail!(crate::exit::UsageError(
            "--cluster names the cluster of an --etcd, --manifests or --images backup".into()
        ));
    }
    let paths = backup_paths(&a)?;
    if a.stdin != paths.is_empty() {
        if a.stdin {
            bail!(crate::exit::UsageError("--stdin takes no paths".into()));
        }
        bail!(crate::exit::UsageError(
            "nothing to back up: give paths, --files-from, or --stdin".into()
        ));
    }
    let mut opts = file_options(g, &a, paths)?;
    if a.dry_run {
        let (repo, index) = g.open_indexed()?;
        opts.parent = parent_choice(&repo, &a)?;
        return dry_run(g, &a, &repo, &index, &opts);
    }
    let (repo, session, index) = open_resuming(g)?;
    opts.parent = parent_choice(&repo, &a)?;
    let outcome = if a.stdin {
        let progress = CliProgress::new(g.quiet || g.json, !g.json);
        let name = a.stdin_filename.as_deref().unwrap_or("stdin");
        backup_stream(
            &repo,
            &session,
            &index,
            &mut std::io::stdin().lock(),
            name,
            &opts,
            &progress,
        )?
    } else {
        let progress = backup_progress(g, &a);
        with_totals(&progress, &opts, || {
            backup(&repo, &session, &index, &opts, &progress)
        })?
    };
    session.end()?;
    report(g, &outcome)
}

/// The paths given on the command line and in --files-from* lists.
fn backup_paths(a: &BackupArgs) -> Result<Vec<PathBuf>> {
    let mut paths = a.paths.clone();
    let mut stdin_taken = false;
    let lists = [
        (ListKind::Lines, &a.files_from),
        (ListKind::Verbatim, &a.files_from_verbatim),
        (ListKind::Raw, &a.files_from_raw),
    ];
    for (kind, files) in lists {
        for file in files {
            if a.stdin && file.as_os_str() == "-" {
                bail!(crate::exit::UsageError(
                    "--stdin backs up standard input: it cannot also list paths".into()
                ));
            }
            paths.extend(files_from::read(kind, file, &mut stdin_taken)?);
        }
    }
    Ok(paths)
}

/// The options of a file-system (or standard input) backup; the parent is chosen later.
fn file_options(g: &Global, a: &BackupArgs, paths: Vec<PathBuf>) -> Result<BackupOptions> {
    let mut excludes = a.excludes.clone();
    for f in &a.exclude_file {
        excludes.extend(read_exclude_file(f)?);
    }
    let mut iexcludes = a.iexcludes.clone();
    for f in &a.iexclude_file {
        iexcludes.extend(read_exclude_file(f)?);
    }
    let mut exclude_if_present = a.exclude_if_present.clone();
    if a.exclude_caches {
        exclude_if_present.push(CACHEDIR_TAG.to_string());
    }
    let opts = BackupOptions {
        paths,
        excludes,
        iexcludes,
        exclude_larger_than: a.exclude_larger_than,
        exclude_if_present,
        one_file_system: a.one_file_system,
        tags: a.tags.clone(),
        host: a.host.clone(),
        group: group_of(a),
        repository_dir: g.local_repository_dir(),
        ..Default::default()
    };
    // Bad patterns and tag specs are the user's mistake: say so before opening anything.
    engine::backup::filters(&opts).map_err(|e| crate::exit::UsageError(e.to_string()))?;
    Ok(opts)
}

fn parent_choice(repo: &engine::repo::Repository, a: &BackupArgs) -> Result<ParentChoice> {
    Ok(match (&a.parent, a.force) {
        (_, true) => ParentChoice::None,
        (Some(name), _) => {
            ParentChoice::Snapshot(engine::snapshots::find(repo, name, &Default::default())?.0)
        }
        (None, false) => ParentChoice::Latest,
    })
}

fn backup_progress(g: &Global, a: &BackupArgs) -> CliProgress {
    let verbose = if g.quiet || g.json { 0 } else { a.verbose };
    CliProgress::for_backup(g.quiet || g.json, !g.json, verbose)
}

/// Runs `work` (a backup or dry run of `opts`) with, when the progress display shows them, a
/// scan beside it that counts the totals; the scan stops when the work ends.
fn with_totals<T>(
    progress: &CliProgress,
    opts: &BackupOptions,
    work: impl FnOnce() -> engine::Result<T>,
) -> engine::Result<T> {
    if !progress.shows_totals() {
        return work();
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut running =
                |t: engine::backup::ScanTotals| progress.set_totals(t.files, t.bytes, false);
            if let Ok(t) = engine::backup::scan_totals(opts, &stop, &mut running)
                && !stop.load(Ordering::Relaxed)
            {
                progress.set_totals(t.files, t.bytes, true);
            }
        });
        let result = work();
        stop.store(true, Ordering::Relaxed);
        result
    })
}

/// `--dry-run`: what a backup would add, with nothing written.
fn dry_run(
    g: &Global,
    a: &BackupArgs,
    repo: &engine::repo::Repository,
    index: &Index,
    opts: &BackupOptions,
) -> Result<()> {
    let progress = backup_progress(g, a);
    let outcome = with_totals(&progress, opts, || {
        engine::backup::dry_run(repo, index, opts, &progress)
    })?;
    report_dry_run(g, &outcome)
}

fn report_dry_run(g: &Global, outcome: &DryRunOutcome) -> Result<()> {
    output::warn_skipped_snapshots(&outcome.skipped_snapshots);
    let s = &outcome.snapshot.summary;
    for n in &outcome.notes {
        eprintln!("note: {}: {}", n.path.display(), n.message);
    }
    if g.json {
        output::json(&serde_json::json!({
            "dry_run": true,
            "parent": outcome.snapshot.parent.map(|p| p.to_hex()),
            "summary": s,
            "stored_bytes_estimated": true,
            "warnings": problems_json(&outcome.warnings),
        }))?;
    } else if !g.quiet {
        print_parent_and_counts(&outcome.snapshot)?;
        output::line(format!(
            "dry run: would read {} of {}; would add {} ({} stored, estimated)",
            output::bytes(s.bytes_read),
            output::bytes(s.total_bytes),
            output::bytes(s.new_bytes_raw),
            output::bytes(s.new_bytes_stored)
        ))?;
        output::line("dry run: nothing was written to the repository")?;
    }
    if !outcome.warnings.is_empty() {
        return Err(Partial {
            code: exit::INCOMPLETE_BACKUP,
            message: format!(
                "dry run: {} file(s) could not be read or changed while read",
                outcome.warnings.len()
            ),
        }
        .into());
    }
    Ok(())
}

/// Warnings or notes as JSON: path and message each.
fn problems_json(list: &[engine::backup::Warning]) -> Vec<serde_json::Value> {
    list.iter()
        .map(|w| serde_json::json!({"path": w.path.to_string_lossy(), "message": w.message}))
        .collect()
}

/// The parent used and the file counts, as a backup and a dry run both say them.
fn print_parent_and_counts(snapshot: &engine::format::snapshot::Snapshot) -> Result<()> {
    let s = &snapshot.summary;
    if let Some(p) = snapshot.parent {
        output::line(format!("parent snapshot {}", p.short()))?;
    }
    output::line(format!(
        "files: {} new, {} changed, {} unmodified; {} dirs",
        s.files_new, s.files_changed, s.files_unmodified, s.dirs
    ))?;
    Ok(())
}

/// Prints what a file backup did; an incomplete snapshot exits with its own code.
fn report(g: &Global, outcome: &BackupOutcome) -> Result<()> {
    output::warn_skipped_snapshots(&outcome.skipped_snapshots);
    let s = &outcome.snapshot.summary;
    for n in &outcome.notes {
        eprintln!("note: {}: {}", n.path.display(), n.message);
    }
    if g.json {
        output::json(&serde_json::json!({
            "snapshot": outcome.id.to_hex(),
            "parent": outcome.snapshot.parent.map(|p| p.to_hex()),
            "summary": s,
            "warnings": problems_json(&outcome.warnings),
            "notes": problems_json(&outcome.notes),
        }))?;
    } else if !g.quiet {
        print_parent_and_counts(&outcome.snapshot)?;
        output::line(format!(
            "read {} of {}; added {} to the repository ({} before compression)",
            output::bytes(s.bytes_read),
            output::bytes(s.total_bytes),
            output::bytes(s.new_bytes_stored),
            output::bytes(s.new_bytes_raw)
        ))?;
        output::saved(outcome)?;
    }
    if !outcome.warnings.is_empty() {
        return Err(Partial {
            code: exit::INCOMPLETE_BACKUP,
            message: format!(
                "snapshot {} is incomplete: {} file(s) could not be read or changed while read",
                outcome.id.short(),
                outcome.warnings.len()
            ),
        }
        .into());
    }
    Ok(())
}

fn group_of(a: &BackupArgs) -> Option<Group> {
    a.group.as_ref().map(|id| Group {
        id: id.clone(),
        series: a.series.clone().unwrap_or_default(),
    })
}

fn open_resuming(g: &Global) -> Result<(engine::repo::Repository, Session, Index)> {
    let (repo, session, mut index) = g.open_for_writing("backup")?;
    let adopted = adopt_interrupted_packs(&repo, &session, &index, g.expiry())?;
    if adopted.packs > 0 {
        index = Index::load(&repo)?;
        if !g.quiet && !g.json {
            eprintln!(
                "resuming: reusing {} pack(s) ({}) stored by an interrupted backup",
                adopted.packs,
                output::bytes(adopted.bytes)
            );
        }
    }
    Ok((repo, session, index))
}

/// Options for a snapshot of cluster state (etcd, manifests): no paths, the cluster's name.
fn cluster_source_options(a: &BackupArgs) -> BackupOptions {
    BackupOptions {
        tags: a.tags.clone(),
        host: a.host.clone(),
        source: engine::format::snapshot::Source {
            cluster: a.cluster.clone(),
            ..Default::default()
        },
        group: group_of(a),
        ..Default::default()
    }
}

fn run_etcd(g: &Global, a: &BackupArgs) -> Result<()> {
    let source = EtcdSource {
        endpoints: a.etcd.clone(),
        tls: EtcdTls {
            ca: read_pem(&a.etcd_cacert)?,
            cert: read_pem(&a.etcd_cert)?,
            key: read_pem(&a.etcd_key)?,
        },
        ..Default::default()
    };
    let (repo, session, index) = open_resuming(g)?;
    let opts = cluster_source_options(a);
    let progress = CliProgress::new(g.quiet || g.json, !g.json);
    let taken = backup_etcd(&repo, &session, &index, &source, &opts, &progress)?;
    session.end()?;
    let s = &taken.outcome.snapshot.summary;
    if g.json {
        output::json(&serde_json::json!({
            "snapshot": taken.outcome.id.to_hex(),
            "endpoint": taken.endpoint,
            "sha256": taken.sha256,
            "size": taken.size,
            "summary": s,
        }))?;
    } else if !g.quiet {
        output::line(format!(
            "etcd snapshot from {}: {}, sha256 {} verified",
            taken.endpoint,
            output::bytes(taken.size),
            taken.sha256
        ))?;
        output::line(format!(
            "added {} to the repository ({} before compression)",
            output::bytes(s.new_bytes_stored),
            output::bytes(s.new_bytes_raw)
        ))?;
        output::saved(&taken.outcome)?;
    }
    Ok(())
}

fn run_manifests(g: &Global, a: &BackupArgs, file: &PathBuf) -> Result<()> {
    let bytes = if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf)
            .context("cannot read standard input")?;
        buf
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let objects = engine::manifests::parse_objects(&bytes)?;
    let (repo, session, index) = open_resuming(g)?;
    let opts = cluster_source_options(a);
    let manifest_opts = engine::manifests::ManifestOptions {
        keep_status: a.keep_status,
    };
    let progress = CliProgress::new(g.quiet || g.json, !g.json);
    let taken = engine::manifests::backup_manifests(
        &repo,
        &session,
        &index,
        objects,
        &manifest_opts,
        &opts,
        &progress,
    )?;
    session.end()?;
    let s = &taken.outcome.snapshot.summary;
    if g.json {
        output::json(&serde_json::json!({
            "snapshot": taken.outcome.id.to_hex(),
            "stored": taken.stored,
            "skipped": taken.skipped,
            "summary": s,
        }))?;
    } else if !g.quiet {
        output::line(format!(
            "{} object(s) stored, {} left out; added {} to the repository",
            taken.stored,
            taken.skipped.len(),
            output::bytes(s.new_bytes_stored)
        ))?;
        output::saved(&taken.outcome)?;
    }
    Ok(())
}
