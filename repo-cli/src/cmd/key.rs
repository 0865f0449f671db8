use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use engine::id::KeyId;

use crate::args::{Global, new_password};
use crate::cmd::init::KdfArgs;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Add a password.
    Add(NewKeyArgs),
    /// List the key files.
    List,
    /// Remove a key file (not the one in use).
    Remove {
        /// The key's id or a unique prefix.
        id: String,
    },
    /// Change the password in use: add a new key, then remove the old one.
    Passwd(NewKeyArgs),
}

#[derive(Debug, Args)]
pub struct NewKeyArgs {
    /// Read the new password from this file instead of prompting.
    #[arg(long)]
    new_password_file: Option<PathBuf>,
    /// The new key may add to the repository, never delete: for backup agents (the flag is
    /// sealed with the key, repo-format.md §5). An append-only key adds only such keys.
    #[arg(long)]
    append_only: bool,
    #[command(flatten)]
    kdf: KdfArgs,
}

pub fn run(g: &Global, cmd: KeyCommand) -> Result<()> {
    if let KeyCommand::Add(NewKeyArgs { kdf, .. }) | KeyCommand::Passwd(NewKeyArgs { kdf, .. }) =
        &cmd
    {
        g.refuse_costly_kdf(&kdf.params())?;
    }
    let repo = g.open()?;
    match cmd {
        KeyCommand::Add(a) => {
            let password = new_password(a.new_password_file.as_deref(), g)?;
            let id = repo.add_key(&password, a.kdf.params(), a.append_only)?;
            if g.json {
                output::json(&serde_json::json!({
                    "added": id.to_hex(), "append_only": a.append_only,
                }))?;
            } else {
                output::line(format!("added key {}", id.short()))?;
            }
        }
        KeyCommand::Passwd(a) => {
            repo.refuse_append_only("key passwd")?;
            let password = new_password(a.new_password_file.as_deref(), g)?;
            let id = repo.add_key(&password, a.kdf.params(), a.append_only)?;
            let old = repo.key_id();
            repo.backend()
                .delete(engine::format::FileKind::Key, &old.to_hex())?;
            if g.json {
                output::json(&serde_json::json!({
                    "added": id.to_hex(), "removed": old.to_hex(), "append_only": a.append_only,
                }))?;
            } else {
                output::line(format!(
                    "password changed: new key {}, removed key {}",
                    id.short(),
                    old.short()
                ))?;
            }
        }
        KeyCommand::List => {
            let keys = repo.list_keys()?;
            if g.json {
                let items: Vec<_> = keys
                    .iter()
                    .map(|(id, k)| serde_json::json!({
                        "id": id.to_hex(), "current": *id == repo.key_id(), "created": k.created,
                        "host": k.host, "username": k.username, "kdf": k.kdf_params,
                        "append_only": k.append_only,
                    }))
                    .collect();
                return output::json(&items);
            }
            output::line(format!(
                " {:<8}  {:<16}  {:<12}  {:<19}  {}",
                "ID", "Host", "User", "Created", "Access"
            ))?;
            for (id, k) in keys {
                let mark = if id == repo.key_id() { "*" } else { " " };
                let access = if k.append_only { "append-only" } else { "full" };
                output::line(format!(
                    "{mark}{:<8}  {:<16}  {:<12}  {:<19}  {access}",
                    id.short(),
                    k.host,
                    k.username,
                    output::local_time_of(&k.created)
                ))?;
            }
        }
        KeyCommand::Remove { id } => {
            repo.refuse_append_only("key remove")?;
            let matches: Vec<KeyId> = repo
                .list_keys()?
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| k.to_hex().starts_with(&id))
                .collect();
            match matches.as_slice() {
                [one] => {
                    repo.remove_key(*one)?;
                    if g.json {
                        output::json(&serde_json::json!({ "removed": one.to_hex() }))?;
                    } else {
                        output::line(format!("removed key {}", one.short()))?;
                    }
                }
                [] => anyhow::bail!(engine::Error::new(
                    engine::ErrorKind::NotFound,
                    format!("no key {id}")
                )),
                _ => anyhow::bail!(crate::exit::UsageError(format!(
                    "key prefix {id} is ambiguous"
                ))),
            }
        }
    }
    Ok(())
}
