//! Reading the repository through the agents' own credentials: the location from the agent
//! DaemonSet's environment, the password and storage options from the Secret it mounts. The
//! user needs no password on their workstation, only the right to read that Secret (cluster
//! administrators); the values are kept in memory and never printed.

use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use engine::backend::{Location, OpendalBackend, StorageOptions};
use engine::repo::Repository;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, PodSpec, Secret};
use kube::api::{Api, ListParams};

use crate::Ctx;

/// Where a file the agent reads comes from: a key of a Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// The Secret's name.
    pub secret: String,
    /// The key in it.
    pub key: String,
}

/// How the agents reach the repository, as their pod template says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentAccess {
    /// `KAIRN_REPOSITORY`.
    pub location: String,
    /// Where `KAIRN_PASSWORD_FILE` comes from.
    pub password: SecretFile,
    /// Where `KAIRN_STORAGE_OPTIONS_FILE` comes from, if set.
    pub storage_options: Option<SecretFile>,
    /// `KAIRN_CLUSTER`, the name the agents record in snapshots.
    pub cluster: Option<String>,
}

fn env<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
    let vars = c.env.as_ref()?;
    vars.iter().find(|e| e.name == name)?.value.as_deref()
}

/// The Secret key mounted at `path` in `c`, per the pod's volumes.
fn secret_file(spec: &PodSpec, c: &Container, path: &str) -> Result<SecretFile> {
    let mounts = c.volume_mounts.as_deref().unwrap_or_default();
    let mount = mounts
        .iter()
        .filter(|m| {
            let dir = m.mount_path.trim_end_matches('/');
            path.strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|m| m.mount_path.len())
        .ok_or_else(|| anyhow!("no volume of the agent is mounted over {path}"))?;
    let rest = path[mount.mount_path.trim_end_matches('/').len() + 1..].to_string();
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let volume = volumes
        .iter()
        .find(|v| v.name == mount.name)
        .ok_or_else(|| anyhow!("the agent mounts volume {} that it lacks", mount.name))?;
    let Some(secret) = &volume.secret else {
        bail!("{path} is not in a Secret volume of the agent");
    };
    let name = secret
        .secret_name
        .clone()
        .ok_or_else(|| anyhow!("the agent's Secret volume {} names no Secret", volume.name))?;
    let key = match &secret.items {
        Some(items) => items
            .iter()
            .find(|i| i.path == rest)
            .map(|i| i.key.clone())
            .ok_or_else(|| anyhow!("Secret {name} maps no key to {rest}"))?,
        None => rest,
    };
    Ok(SecretFile { secret: name, key })
}

/// The access the agent DaemonSet's pod template describes.
pub fn agent_access(ds: &DaemonSet) -> Result<AgentAccess> {
    let spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .ok_or_else(|| anyhow!("the agent DaemonSet has no pod template"))?;
    let c = spec
        .containers
        .iter()
        .find(|c| env(c, "KAIRN_REPOSITORY").is_some())
        .ok_or_else(|| anyhow!("no agent container sets KAIRN_REPOSITORY"))?;
    let location = env(c, "KAIRN_REPOSITORY").unwrap_or_default().to_string();
    let password_path = env(c, "KAIRN_PASSWORD_FILE")
        .ok_or_else(|| anyhow!("the agent container sets no KAIRN_PASSWORD_FILE"))?;
    let password = secret_file(spec, c, password_path)?;
    let storage_options = env(c, "KAIRN_STORAGE_OPTIONS_FILE")
        .map(|p| secret_file(spec, c, p))
        .transpose()?;
    Ok(AgentAccess {
        location,
        password,
        storage_options,
        cluster: env(c, "KAIRN_CLUSTER").map(String::from),
    })
}

async fn secret_value(api: &Api<Secret>, file: &SecretFile) -> Result<Vec<u8>> {
    let secret = api
        .get(&file.secret)
        .await
        .with_context(|| format!("cannot read Secret {}", file.secret))?;
    let data = secret.data.unwrap_or_default();
    let value = data
        .get(&file.key)
        .ok_or_else(|| anyhow!("Secret {} has no key {}", file.secret, file.key))?;
    Ok(value.0.clone())
}

/// Opens the repository the agents write, append-only (this plugin never deletes).
pub async fn open(ctx: &Ctx) -> Result<Arc<Repository>> {
    Ok(open_with_access(ctx).await?.0)
}

/// [`open`], with what the agents' pod template said.
pub async fn open_with_access(ctx: &Ctx) -> Result<(Arc<Repository>, AgentAccess)> {
    let ns = &ctx.global.kairn_namespace;
    let sets: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), ns);
    let params = ListParams::default().labels(node_agent::node_lease::LEASE_SELECTOR);
    let list = sets
        .list(&params)
        .await
        .with_context(|| format!("cannot list the agent DaemonSet in {ns}"))?;
    let ds = list
        .items
        .first()
        .ok_or_else(|| anyhow!("no agent DaemonSet in {ns} (is Kairn installed there?)"))?;
    let access = agent_access(ds)?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let password = secret_value(&secrets, &access.password).await?;
    let password = node_agent::settings::first_line_password(&password, &access.password.secret)?;
    let options = match &access.storage_options {
        Some(file) => {
            let text = String::from_utf8(secret_value(&secrets, file).await?)
                .with_context(|| format!("Secret {} key {} is not text", file.secret, file.key))?;
            node_agent::settings::parse_storage_options(&text, &file.secret)?
        }
        None => Default::default(),
    };
    let location: Location = access
        .location
        .parse()
        .context("the agents' KAIRN_REPOSITORY is not a repository location")?;
    let repo = tokio::task::spawn_blocking(move || -> Result<Arc<Repository>> {
        let opts = StorageOptions {
            options,
            ..Default::default()
        };
        let backend = Arc::new(OpendalBackend::open(&location, &opts, false)?);
        let repo = Repository::open(backend, &password)?;
        repo.set_append_only();
        Ok(Arc::new(repo))
    })
    .await
    .context("opening the repository stopped")??;
    Ok((repo, access))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployed_daemonset_says_where_its_credentials_are() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/daemonset.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let ds: DaemonSet = serde_yaml::from_str(&text).unwrap();
        let access = agent_access(&ds).unwrap();
        assert_eq!(access.location, "s3://kairn-backups/cluster-a");
        let file = |key: &str| SecretFile {
            secret: "kairn-repository".into(),
            key: key.into(),
        };
        assert_eq!(access.password, file("password"));
        assert_eq!(access.storage_options, Some(file("storage-options")));
        assert_eq!(access.cluster.as_deref(), Some("cluster-a"));
    }
}
