//! `repo`: initialise, back up to, inspect and restore from a Kairn repository.

mod args;
mod cmd;
mod exit;
mod interrupt;
mod output;
mod profile;
mod progress;
mod record;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::exit::{Partial, UsageError};

#[derive(Debug, Parser)]
#[command(
    name = "repo",
    version,
    about = "Kairn: encrypted, deduplicating backups",
    max_term_width = 100
)]
struct Cli {
    #[command(flatten)]
    global: args::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new repository.
    Init(cmd::init::InitArgs),
    /// Back up files and directories (or standard input) into a new snapshot.
    Backup(Box<cmd::backup::BackupArgs>),
    /// List snapshots.
    Snapshots(cmd::snapshots::SnapshotsArgs),
    /// List the files of a snapshot; with --json one object per line, in the shape of restic's
    /// `ls --json`.
    Ls(cmd::ls::LsArgs),
    /// Restore a snapshot, or a part of it, into a directory.
    Restore(cmd::restore::RestoreArgs),
    /// Write a file to stdout, or a directory as a tar stream.
    Dump(cmd::dump::DumpArgs),
    /// Print a manifests snapshot as YAML for `kubectl apply`, in dependency order.
    Manifests(cmd::manifests::ManifestsArgs),
    /// The container images of an images snapshot: list them, or push them to a registry.
    #[command(subcommand)]
    Images(cmd::images::ImagesCommand),
    /// Show what changed between two snapshots.
    Diff(cmd::diff::DiffArgs),
    /// Find files and directories by name or path pattern across snapshots, or the files that
    /// use a blob or pack.
    Find(cmd::find::FindArgs),
    /// Add, remove or set the tags of existing snapshots (each is rewritten under a new id).
    Tag(cmd::tag::TagArgs),
    /// Remove files from existing snapshots: a secret backed up by mistake.
    Rewrite(cmd::rewrite::RewriteArgs),
    /// Browse the snapshots as a read-only filesystem (FUSE) until Ctrl-C.
    Mount(cmd::mount::MountArgs),
    /// Print a repository object, decrypted, as JSON.
    Cat(cmd::cat::CatArgs),
    /// Copy snapshots from another repository, re-chunked with this one's keys and deduplicated.
    Copy(cmd::copy::CopyArgs),
    /// Verify the repository: structure, and with --read-data every stored byte.
    Check(cmd::check::CheckArgs),
    /// Show sizes, deduplication and compression.
    Stats(cmd::stats::StatsArgs),
    /// The restore-readiness report: per volume the newest snapshot against its schedule, per
    /// cluster backup whether it is whole, and the newest check and prune (--html, --json).
    Report(cmd::report::ReportArgs),
    /// Manage the passwords (key files) of the repository.
    #[command(subcommand)]
    Key(cmd::key::KeyCommand),
    /// Remove snapshots by a retention policy or by id (the data stays until a prune).
    Forget(cmd::forget::ForgetArgs),
    /// Delete data no snapshot uses; safe while backups run.
    Prune(cmd::prune::PruneCommand),
    /// Repair the repository.
    #[command(subcommand)]
    Repair(cmd::repair::RepairCommand),
    /// Print the version, the repository format it writes, and the platform.
    Version,
    /// Make shell completions (bash, zsh, fish, powershell) and man pages.
    Generate(cmd::generate::GenerateArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    if let Command::Backup(a) = &cli.command
        && a.is_dry_run()
    {
        interrupt::stoppable_with("stopping; a dry run has written nothing");
    } else if matches!(
        cli.command,
        Command::Backup(_)
            | Command::Restore(_)
            | Command::Images(cmd::images::ImagesCommand::Push(_))
    ) {
        interrupt::stoppable();
    }
    match cli.command {
        Command::Init(a) => cmd::init::run(g, a),
        Command::Backup(a) => cmd::backup::run(g, *a),
        Command::Snapshots(a) => cmd::snapshots::run(g, a),
        Command::Ls(a) => cmd::ls::run(g, a),
        Command::Restore(a) => cmd::restore::run(g, a),
        Command::Dump(a) => cmd::dump::run(g, a),
        Command::Manifests(a) => cmd::manifests::run(g, a),
        Command::Images(c) => cmd::images::run(g, c),
        Command::Diff(a) => cmd::diff::run(g, a),
        Command::Find(a) => cmd::find::run(g, a),
        Command::Tag(a) => cmd::tag::run(g, a),
        Command::Rewrite(a) => cmd::rewrite::run(g, a),
        Command::Mount(a) => cmd::mount::run(g, a),
        Command::Cat(a) => cmd::cat::run(g, a),
        Command::Stats(a) => cmd::stats::run(g, a),
        Command::Report(a) => cmd::report::run(g, a),
        Command::Check(a) => cmd::check::run(g, a),
        Command::Copy(a) => cmd::copy::run(g, a),
        Command::Key(a) => cmd::key::run(g, a),
        Command::Forget(a) => cmd::forget::run(g, a),
        Command::Prune(a) => cmd::prune::run(g, a),
        Command::Repair(a) => cmd::repair::run(g, a),
        Command::Version => cmd::generate::version(g),
        Command::Generate(a) => cmd::generate::run(g, a, Cli::command()),
    }
}

fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(p) = cause.downcast_ref::<Partial>() {
            return p.code;
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return exit::USAGE;
        }
        if let Some(e) = cause.downcast_ref::<engine::Error>() {
            return exit::for_kind(e.kind());
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>()
            && engine::error::is_no_space(e)
        {
            return exit::NO_SPACE;
        }
    }
    exit::ERROR
}

/// The error and its causes, each said once: an engine error's message already ends with its
/// source's text, which the chain would otherwise repeat.
fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// The exit code when the command stopped because a signal asked it to.
fn interrupted(err: &anyhow::Error) -> Option<u8> {
    let canceled = err.chain().any(|c| {
        c.downcast_ref::<engine::Error>()
            .is_some_and(|e| e.kind() == engine::ErrorKind::Canceled)
    });
    if canceled {
        interrupt::exit_code()
    } else {
        None
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Says what failed on stderr: a line of text, or under `--json` one JSON document with the
/// message, the exit code, and for an engine error its kind and whether a retry can help.
fn report_error(err: &anyhow::Error, code: u8, json: bool) {
    if !json {
        eprintln!("repo: {}", describe(err));
        return;
    }
    let engine_error = err.chain().find_map(|c| c.downcast_ref::<engine::Error>());
    let doc = serde_json::json!({
        "error": describe(err),
        "code": code,
        "kind": engine_error.map(|e| format!("{:?}", e.kind())),
        "retryable": engine_error.map(|e| e.is_retryable()),
    });
    eprintln!("{}", output::stamped(doc));
}

/// The command definition with every (sub)command letting a later occurrence of an option
/// replace an earlier one, so that what is typed overrides a profile's default.
fn overriding(command: clap::Command) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    let mut command = command.args_override_self(true);
    for name in names {
        command = command.mut_subcommand(name, overriding);
    }
    command
}

/// Parses the command line, with the profile's defaults in front of what was typed.
fn parse() -> Result<Cli, ExitCode> {
    let mut command = overriding(Cli::command());
    command.build();
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(name) = profile::requested(&args) {
        args = profile::apply(&command, args, &name).map_err(|e| {
            eprintln!("repo: {e}");
            ExitCode::from(exit::USAGE)
        })?;
    }
    let matches = command
        .try_get_matches_from(&args)
        .unwrap_or_else(|e| e.exit());
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cli.global.keep_one_password_source(&args);
    Ok(cli)
}

fn main() -> ExitCode {
    engine::allocator::fix_mmap_threshold();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = interrupt::install() {
        eprintln!("repo: warning: cannot handle Ctrl-C in order ({e}); it will stop at once");
    }
    let json = cli.global.json;
    match run(cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(err) if is_broken_pipe(&err) => ExitCode::from(exit::OK),
        Err(err) if let Some(code) = interrupted(&err) => {
            eprintln!(
                "repo: interrupted: stopped in order (what was stored is kept, the session ended)"
            );
            ExitCode::from(code)
        }
        Err(err) => {
            let code = exit_code(&err);
            if err.downcast_ref::<Partial>().is_none() || !err.to_string().is_empty() {
                report_error(&err, code, json);
            }
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command's own option named like a global one hides the global option there (clap
    /// does not propagate it), so `repo mount --cache-size` would quietly mean something else.
    #[test]
    fn no_command_option_shadows_a_global_option() {
        let root = Cli::command();
        let globals: Vec<String> = root
            .get_arguments()
            .filter(|a| a.is_global_set())
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect();
        let mut pending: Vec<&clap::Command> = root.get_subcommands().collect();
        while let Some(cmd) = pending.pop() {
            pending.extend(cmd.get_subcommands());
            for arg in cmd.get_arguments() {
                // `key add/passwd --append-only` makes the new key append-only, which is what
                // the global flag would mean there anyway (its holder may not delete).
                if arg.get_long() == Some("append-only")
                    && matches!(cmd.get_name(), "add" | "passwd")
                {
                    continue;
                }
                if let Some(long) = arg.get_long() {
                    assert!(
                        !globals.iter().any(|g| g == long),
                        "repo {} --{long} shadows the global option",
                        cmd.get_name()
                    );
                }
            }
        }
    }
}
