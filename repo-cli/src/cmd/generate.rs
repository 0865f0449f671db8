//! `repo version` and `repo generate`: what this build is, and shell completions and man pages
//! made from the same command definitions the parser uses, so they never drift.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use clap_complete::Shell;

use crate::args::Global;
use crate::output;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Print the completion script of this shell to standard output.
    #[arg(long, value_enum, value_name = "SHELL")]
    completions: Option<CompletionShell>,
    /// Write man pages (repo.1 and one per subcommand, like repo-backup.1) into this directory.
    #[arg(long, value_name = "DIR")]
    man: Option<PathBuf>,
}

/// The shells completions are made for.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

impl From<CompletionShell> for Shell {
    fn from(s: CompletionShell) -> Self {
        match s {
            CompletionShell::Bash => Shell::Bash,
            CompletionShell::Zsh => Shell::Zsh,
            CompletionShell::Fish => Shell::Fish,
            CompletionShell::Powershell => Shell::PowerShell,
        }
    }
}

pub fn run(_g: &Global, a: GenerateArgs, mut command: clap::Command) -> Result<()> {
    if a.completions.is_none() && a.man.is_none() {
        bail!(crate::exit::UsageError(
            "say what to generate: --completions bash|zsh|fish|powershell, --man DIR, or both"
                .into()
        ));
    }
    if let Some(dir) = &a.man {
        let written = write_man_pages(&command, dir)?;
        eprintln!("wrote {written} man pages to {}", dir.display());
    }
    if let Some(shell) = a.completions {
        let name = command.get_name().to_string();
        // Into a buffer first: clap_complete panics on a write error, a closed pipe included.
        let mut script = Vec::new();
        clap_complete::generate(Shell::from(shell), &mut command, name, &mut script);
        std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
    }
    Ok(())
}

/// Writes `repo.1` and `repo-<sub>[-<subsub>].1` for every command; returns how many.
fn write_man_pages(command: &clap::Command, dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut command = command.clone();
    command.build();
    let mut pending = vec![(command.get_name().to_string(), command)];
    let mut written = 0;
    while let Some((name, cmd)) = pending.pop() {
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            let sub_name = format!("{name}-{}", sub.get_name());
            let bin_name = sub_name.replace('-', " ");
            pending.push((sub_name, sub.clone().bin_name(bin_name)));
        }
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd)
            .title(name.to_uppercase())
            .render(&mut page)?;
        let file = dir.join(format!("{name}.1"));
        std::fs::write(&file, page).with_context(|| format!("cannot write {}", file.display()))?;
        written += 1;
    }
    Ok(written)
}

/// `repo version`: the release, the repository format it writes, and the platform.
pub fn version(g: &Global) -> Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    let format = engine::format::FORMAT_VERSION;
    let (os, arch) = (std::env::consts::OS, std::env::consts::ARCH);
    if g.json {
        return output::json(&serde_json::json!({
            "version": version, "format_version": format, "os": os, "arch": arch,
        }));
    }
    output::line(format!(
        "repo {version} (Kairn), repository format {format}, {os}/{arch}"
    ))?;
    Ok(())
}
