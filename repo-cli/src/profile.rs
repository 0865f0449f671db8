//! Profiles (rustic's model): a TOML file names the repository, its options and defaults per
//! command, and `-P NAME` selects it. A profile is turned into command-line arguments placed
//! before the ones typed, so the parser, its checks and its help are the same for both, and
//! what is typed wins (`args_override_self`): command line > profile > environment.
//!
//! ```toml
//! [global]                      # any global option, by its long name
//! repo = "s3://backups/prod"
//! password-command = "pass show kairn/prod"
//! [global.option]               # storage options, as -o KEY=VALUE
//! endpoint = "http://127.0.0.1:9000"
//! [backup]                      # defaults of `repo backup`
//! tag = ["nightly"]
//! exclude = ["*.tmp"]
//! [forget]
//! keep-daily = 7
//! [images.push]                 # a subcommand's subcommand
//! insecure-registry = ["127.0.0.1:5000"]
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::exit::UsageError;

/// Where `-P NAME` is looked for, in order: NAME itself when it is a path (has a `/` or ends
/// in `.toml`), else `NAME.toml` in `$KAIRN_CONFIG_DIR`, `$XDG_CONFIG_HOME/kairn` (or
/// `~/.config/kairn`), then `/etc/kairn`.
pub fn candidates(name: &str) -> Vec<PathBuf> {
    if name.contains('/') || name.ends_with(".toml") {
        return vec![PathBuf::from(name)];
    }
    let file = format!("{name}.toml");
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("KAIRN_CONFIG_DIR") {
        dirs.push(PathBuf::from(d));
    }
    match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) => dirs.push(PathBuf::from(d).join("kairn")),
        None => {
            if let Some(home) = std::env::var_os("HOME") {
                dirs.push(PathBuf::from(home).join(".config/kairn"));
            }
        }
    }
    dirs.push(PathBuf::from("/etc/kairn"));
    dirs.into_iter().map(|d| d.join(&file)).collect()
}

/// The profile named on the command line (`-P NAME`, `-PNAME`, `--profile NAME`,
/// `--profile=NAME`) or in `KAIRN_PROFILE`.
pub fn requested(args: &[OsString]) -> Option<String> {
    let mut iter = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(arg) = iter.next() {
        if arg == "--" {
            break;
        }
        if arg == "-P" || arg == "--profile" {
            return iter.next().map(|v| v.into_owned());
        }
        if let Some(v) = arg.strip_prefix("--profile=") {
            return Some(v.to_string());
        }
        if let Some(v) = arg.strip_prefix("-P")
            && !arg.starts_with("--")
        {
            return Some(v.to_string());
        }
    }
    std::env::var("KAIRN_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
}

/// Reads the profile and returns `args` with its options inserted: global ones after the
/// program name, a command's after that command's name.
pub fn apply(
    command: &clap::Command,
    args: Vec<OsString>,
    name: &str,
) -> Result<Vec<OsString>, UsageError> {
    let places = candidates(name);
    let Some(file) = places.iter().find(|p| p.is_file()) else {
        let looked: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
        return Err(UsageError(format!(
            "profile {name:?} not found; looked for {}",
            looked.join(", ")
        )));
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| UsageError(format!("cannot read profile {}: {e}", file.display())))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| UsageError(format!("profile {}: {e}", file.display())))?;
    warn_if_others_can_read(file, &table);
    expand(command, args, &table)
        .map_err(|e| UsageError(format!("profile {}: {e}", file.display())))
}

/// The profile's tables turned into arguments and inserted.
pub fn expand(
    command: &clap::Command,
    mut args: Vec<OsString>,
    table: &toml::Table,
) -> Result<Vec<OsString>, String> {
    let chain = subcommand_positions(command, &args);
    // Inserted from the last position backwards, so earlier positions stay valid.
    let mut inserts: Vec<(usize, Vec<OsString>)> = Vec::new();
    for (section, value) in table {
        let toml::Value::Table(options) = value else {
            return Err(format!("{section:?} must be a table ([{section}])"));
        };
        if section == "global" {
            inserts.push((1, options_to_args(command, section, options)?));
            continue;
        }
        let (sub, nested) = split_nested(section, options);
        for (path, options) in std::iter::once((section.to_string(), sub)).chain(nested) {
            let names: Vec<&str> = path.split('.').collect();
            let Some(target) = find_subcommand(command, &names) else {
                return Err(format!(
                    "[{path}]: there is no command `repo {}`",
                    names.join(" ")
                ));
            };
            // A section applies only when its command is the one run.
            if let Some(&(_, pos)) = chain.iter().find(|(n, _)| *n == names)
                && !options.is_empty()
            {
                inserts.push((pos + 1, options_to_args(target, &path, &options)?));
            }
        }
    }
    inserts.sort_by_key(|(pos, _)| std::cmp::Reverse(*pos));
    for (pos, new) in inserts {
        let pos = pos.min(args.len());
        args.splice(pos..pos, new);
    }
    Ok(args)
}

/// A section's own options, and its sub-tables that name subcommands (`[images.push]`).
fn split_nested(section: &str, options: &toml::Table) -> (toml::Table, Vec<(String, toml::Table)>) {
    let mut own = toml::Table::new();
    let mut nested = Vec::new();
    for (k, v) in options {
        match v {
            toml::Value::Table(t) => nested.push((format!("{section}.{k}"), t.clone())),
            other => {
                own.insert(k.clone(), other.clone());
            }
        }
    }
    (own, nested)
}

fn find_subcommand<'a>(command: &'a clap::Command, names: &[&str]) -> Option<&'a clap::Command> {
    names
        .iter()
        .try_fold(command, |cmd, name| cmd.find_subcommand(name))
}

/// The subcommands named in `args` and the index of each: `repo -r X images push` gives
/// `[(["images"], 3), (["images", "push"], 4)]`.
fn subcommand_positions<'a>(
    command: &'a clap::Command,
    args: &[OsString],
) -> Vec<(Vec<&'a str>, usize)> {
    let mut found = Vec::new();
    let mut current = command;
    let mut names: Vec<&str> = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let arg = args[i].to_string_lossy();
        if arg == "--" {
            break;
        }
        if let Some(flag) = arg.strip_prefix("--") {
            if !flag.contains('=') && takes_value(current, |a| a.get_long() == Some(flag)) {
                i += 1;
            }
        } else if let Some(short) = arg.strip_prefix('-').and_then(|s| s.chars().next()) {
            if arg.len() == 2 && takes_value(current, |a| a.get_short() == Some(short)) {
                i += 1;
            }
        } else if let Some(sub) = current.find_subcommand(arg.as_ref()) {
            names.push(sub.get_name());
            found.push((names.clone(), i));
            current = sub;
        } else {
            break;
        }
        i += 1;
    }
    found
}

/// Whether the option found by `which` (among `command`'s and the global ones) takes a value.
fn takes_value(command: &clap::Command, which: impl Fn(&clap::Arg) -> bool) -> bool {
    command
        .get_arguments()
        .find(|a| which(a))
        .is_some_and(|a| a.get_action().takes_values())
}

/// `key = value` pairs as `--key=value` arguments, each key checked against the command.
fn options_to_args(
    command: &clap::Command,
    section: &str,
    options: &toml::Table,
) -> Result<Vec<OsString>, String> {
    let mut out = Vec::new();
    for (key, value) in options {
        if key == "option" || key == "options" {
            let toml::Value::Table(pairs) = value else {
                return Err(format!("[{section}] {key} must be a table of KEY = VALUE"));
            };
            for (k, v) in pairs {
                out.push(OsString::from(format!("--option={k}={}", scalar(v, key)?)));
            }
            continue;
        }
        if key == "profile" {
            return Err(format!("[{section}] a profile cannot name another profile"));
        }
        let Some(arg) = command.get_arguments().find(|a| a.get_long() == Some(key)) else {
            return Err(format!(
                "[{section}] has no option {key:?} (global options go in [global])"
            ));
        };
        let flag = !arg.get_action().takes_values();
        match value {
            toml::Value::Boolean(true) if flag => out.push(OsString::from(format!("--{key}"))),
            toml::Value::Boolean(false) if flag => {}
            toml::Value::Array(items) => {
                for item in items {
                    out.push(OsString::from(format!("--{key}={}", scalar(item, key)?)));
                }
            }
            _ if flag => return Err(format!("[{section}] {key} is a switch: true or false")),
            other => out.push(OsString::from(format!("--{key}={}", scalar(other, key)?))),
        }
    }
    Ok(out)
}

/// True when a storage option table anywhere in the profile names a secret.
fn holds_secret_option(table: &toml::Table) -> bool {
    table.iter().any(|(k, v)| match v {
        toml::Value::Table(t) if k == "option" || k == "options" => t.keys().any(|key| {
            ["secret", "token", "password", "key"]
                .iter()
                .any(|w| key.contains(w))
        }),
        toml::Value::Table(t) => holds_secret_option(t),
        _ => false,
    })
}

fn scalar(value: &toml::Value, key: &str) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(format!(
            "{key}: a value must be a string, number or boolean"
        )),
    }
}

/// Storage options in a profile may hold secrets: say so when others can read it.
fn warn_if_others_can_read(file: &Path, table: &toml::Table) {
    use std::os::unix::fs::PermissionsExt;
    let secret = holds_secret_option(table);
    if let Ok(meta) = std::fs::metadata(file)
        && secret
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: profile {} may hold secrets and others can read it: chmod 600 it",
            file.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn cli() -> Command {
        Command::new("repo")
            .arg(Arg::new("repo").short('r').long("repo").global(true))
            .arg(
                Arg::new("option")
                    .short('o')
                    .long("option")
                    .action(ArgAction::Append)
                    .global(true),
            )
            .arg(
                Arg::new("json")
                    .long("json")
                    .action(ArgAction::SetTrue)
                    .global(true),
            )
            .subcommand(
                Command::new("backup")
                    .arg(Arg::new("tag").long("tag").action(ArgAction::Append))
                    .arg(Arg::new("paths").action(ArgAction::Append)),
            )
            .subcommand(
                Command::new("images")
                    .subcommand(Command::new("push").arg(Arg::new("to").long("to"))),
            )
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn strings(list: Vec<OsString>) -> Vec<String> {
        list.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn sections_land_after_their_command_and_only_for_it() {
        let table: toml::Table = r#"
            [global]
            repo = "/srv/r"
            json = true
            [global.option]
            endpoint = "http://127.0.0.1:9"
            [backup]
            tag = ["a", "b"]
            [images.push]
            to = "127.0.0.1:5000"
        "#
        .parse()
        .unwrap();
        let out = expand(
            &cli(),
            args(&["repo", "-r", "x", "backup", "/data"]),
            &table,
        )
        .unwrap();
        assert_eq!(
            strings(out),
            [
                "repo",
                "--json",
                "--option=endpoint=http://127.0.0.1:9",
                "--repo=/srv/r",
                "-r",
                "x",
                "backup",
                "--tag=a",
                "--tag=b",
                "/data"
            ]
        );
        let out = expand(&cli(), args(&["repo", "images", "push"]), &table).unwrap();
        assert_eq!(strings(out)[4..], ["images", "push", "--to=127.0.0.1:5000"]);
    }

    #[test]
    fn unknown_sections_and_options_are_named() {
        let bad: toml::Table = "[backup]\ncolour = 1\n".parse().unwrap();
        let e = expand(&cli(), args(&["repo", "backup"]), &bad).unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let bad: toml::Table = "[restore]\nx = 1\n".parse().unwrap();
        assert!(
            expand(&cli(), args(&["repo"]), &bad)
                .unwrap_err()
                .contains("restore")
        );
        let bad: toml::Table = "[global]\njson = \"yes\"\n".parse().unwrap();
        assert!(
            expand(&cli(), args(&["repo"]), &bad)
                .unwrap_err()
                .contains("switch")
        );
    }

    #[test]
    fn the_profile_flag_is_found_in_every_spelling() {
        for form in [
            &["repo", "-P", "prod"][..],
            &["repo", "-Pprod"],
            &["repo", "--profile=prod"],
        ] {
            assert_eq!(requested(&args(form)).as_deref(), Some("prod"));
        }
        assert_eq!(requested(&args(&["repo", "--", "-P", "x"])), None);
    }
}
