//! The images part of a ClusterBackup: the container images its namespaces run, stored as one
//! `images` snapshot of the group. Running pods say which digest each container runs
//! (`status.containerStatuses[].imageID`); workloads scaled to zero (and CronJobs between
//! runs) only name their templates' references, fetched as they resolve now. With
//! `pullSecrets`, each image is fetched with its namespace's `imagePullSecrets` and no other.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Pod, PodSpec, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::context::Context;
use crate::crd::{ClusterBackup, ImagesSpec};
use crate::job::JobProgress;
use crate::selection::{LabelCache, claims};

/// What a namespace runs: image references, and the pull secrets its pods name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NamespaceImages {
    /// References, by digest where a pod's status gives one.
    pub references: BTreeSet<String>,
    /// Names of the Secrets its pods pull with.
    pub pull_secrets: BTreeSet<String>,
    /// For a reference by digest, the references the pods' specs name it by (`app:v1`).
    pub aliases: BTreeMap<String, BTreeSet<String>>,
}

/// The reference a container status names: its `imageID` when that is a repository digest
/// (`registry/repo@sha256:...`, with Docker's `docker-pullable://` prefix dropped), else the
/// image it was started from. A bare `sha256:` id (an image built on the node) has no
/// registry to fetch from, so the spec's reference is used.
pub fn running_reference(image_id: &str, image: &str) -> Option<String> {
    let id = image_id
        .strip_prefix("docker-pullable://")
        .unwrap_or(image_id);
    if id.contains('@') && !id.contains("://") {
        return Some(id.to_string());
    }
    (!image.is_empty()).then(|| image.to_string())
}

/// Adds a pod's running images and pull secrets.
pub fn add_pod(pod: &Pod, into: &mut NamespaceImages) {
    if let Some(spec) = &pod.spec {
        add_pull_secrets(spec, into);
    }
    let Some(status) = &pod.status else { return };
    let all = [
        status.container_statuses.as_deref(),
        status.init_container_statuses.as_deref(),
        status.ephemeral_container_statuses.as_deref(),
    ];
    for s in all.into_iter().flatten().flatten() {
        if let Some(r) = running_reference(&s.image_id, &s.image) {
            if r != s.image && !s.image.is_empty() {
                into.aliases
                    .entry(r.clone())
                    .or_default()
                    .insert(s.image.clone());
            }
            into.references.insert(r);
        }
    }
}

/// Adds a template's images and pull secrets (a workload with no pod running).
pub fn add_template(spec: &PodSpec, into: &mut NamespaceImages) {
    add_pull_secrets(spec, into);
    let init = spec.init_containers.iter().flatten();
    for c in spec.containers.iter().chain(init) {
        if let Some(image) = c.image.as_ref().filter(|i| !i.is_empty()) {
            into.references.insert(image.clone());
        }
    }
}

fn add_pull_secrets(spec: &PodSpec, into: &mut NamespaceImages) {
    for s in spec.image_pull_secrets.iter().flatten() {
        if !s.name.is_empty() {
            into.pull_secrets.insert(s.name.clone());
        }
    }
}

/// The images of the chosen namespaces; `Err` when the pods cannot be listed, with notes on
/// what else could not be read.
async fn collect(
    client: &Client,
    cb: &ClusterBackup,
) -> Result<(BTreeMap<String, NamespaceImages>, Vec<String>), String> {
    let mut cache = LabelCache::default();
    let namespaces: BTreeSet<String> = claims(client, &mut cache)
        .await
        .map_err(|e| format!("cannot list the namespaces: {e}"))?
        .namespaces
        .iter()
        .filter(|(_, labels)| crate::schedule::matches(cb.spec.namespace_selector.as_ref(), labels))
        .map(|(ns, _)| ns.clone())
        .collect();
    let mut out: BTreeMap<String, NamespaceImages> = BTreeMap::new();
    let chosen = |ns: Option<String>| ns.filter(|n| namespaces.contains(n));
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("cannot list the pods: {e}"))?;
    for pod in &pods.items {
        if let Some(ns) = chosen(pod.namespace()) {
            add_pod(pod, out.entry(ns).or_default());
        }
    }
    let mut notes = Vec::new();
    let params = ListParams::default();
    match Api::<Deployment>::all(client.clone()).list(&params).await {
        Ok(list) => {
            for d in list
                .items
                .iter()
                .filter(|d| replicas(d.spec.as_ref().and_then(|s| s.replicas)) == 0)
            {
                if let (Some(ns), Some(t)) = (
                    chosen(d.namespace()),
                    d.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
                ) {
                    add_template(t, out.entry(ns).or_default());
                }
            }
        }
        Err(e) => notes.push(format!("cannot list the Deployments: {e}")),
    }
    match Api::<StatefulSet>::all(client.clone()).list(&params).await {
        Ok(list) => {
            for s in list
                .items
                .iter()
                .filter(|s| replicas(s.spec.as_ref().and_then(|s| s.replicas)) == 0)
            {
                if let (Some(ns), Some(t)) = (
                    chosen(s.namespace()),
                    s.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
                ) {
                    add_template(t, out.entry(ns).or_default());
                }
            }
        }
        Err(e) => notes.push(format!("cannot list the StatefulSets: {e}")),
    }
    match Api::<CronJob>::all(client.clone()).list(&params).await {
        Ok(list) => {
            for c in &list.items {
                let template = c.spec.as_ref().and_then(|s| s.job_template.spec.as_ref());
                if let (Some(ns), Some(t)) = (
                    chosen(c.namespace()),
                    template.and_then(|j| j.template.spec.as_ref()),
                ) {
                    add_template(t, out.entry(ns).or_default());
                }
            }
        }
        Err(e) => notes.push(format!("cannot list the CronJobs: {e}")),
    }
    Ok((out, notes))
}

fn replicas(r: Option<i32>) -> i32 {
    r.unwrap_or(1)
}

/// A namespace's logins, from the pull secrets its pods name.
async fn logins(
    client: &Client,
    ns: &str,
    names: &BTreeSet<String>,
    notes: &mut Vec<String>,
) -> engine::images::Credentials {
    let mut credentials = engine::images::Credentials::default();
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    for name in names {
        let secret = match api.get(name).await {
            Ok(s) => s,
            Err(e) => {
                notes.push(format!("cannot read the pull secret {ns}/{name}: {e}"));
                continue;
            }
        };
        let data = secret.data.unwrap_or_default();
        let Some(config) = data
            .get(".dockerconfigjson")
            .or_else(|| data.get(".dockercfg"))
        else {
            notes.push(format!(
                "the pull secret {ns}/{name} holds no registry logins"
            ));
            continue;
        };
        if let Err(e) = credentials.add_config(&config.0) {
            notes.push(format!("the pull secret {ns}/{name}: {e}"));
        }
    }
    credentials
}

/// Runs the images part: the snapshot id, and what was left out.
pub async fn run(
    ctx: &Context,
    cb: &ClusterBackup,
    opts: engine::backup::BackupOptions,
) -> Result<(String, Vec<String>), String> {
    let spec: ImagesSpec = cb.spec.images.clone().unwrap_or_default();
    let (by_namespace, mut notes) = collect(&ctx.client, cb).await?;
    let mut references = Vec::new();
    let mut image_opts = engine::images::ImageOptions {
        platform: spec.platform.clone(),
        registry: engine::images::RegistryOptions {
            insecure: spec.insecure_registries.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    for (ns, images) in &by_namespace {
        let credentials = if spec.pull_secrets && !images.pull_secrets.is_empty() {
            Some(logins(&ctx.client, ns, &images.pull_secrets, &mut notes).await)
        } else {
            None
        };
        for r in &images.references {
            let Ok(parsed) = engine::images::parse_references(std::slice::from_ref(r)) else {
                notes.push(format!("{ns}: {r:?} is not an image reference"));
                continue;
            };
            let whole = parsed[0].whole();
            // An image two namespaces run is fetched with the first one's logins.
            if let Some(c) = &credentials
                && !image_opts.logins.contains_key(&whole)
                && !references.contains(r)
            {
                image_opts.logins.insert(whole.clone(), c.clone());
            }
            let aliases = images.aliases.get(r).into_iter().flatten();
            let normalised = aliases.filter_map(|a| engine::images::normalise(a));
            image_opts
                .aliases
                .entry(whole)
                .or_default()
                .extend(normalised);
            references.push(r.clone());
        }
    }
    if references.is_empty() {
        return Err("the chosen namespaces run no images".into());
    }
    let parsed = engine::images::parse_references(&references).map_err(|e| e.to_string())?;
    let access = ctx.access.clone();
    let done = tokio::task::spawn_blocking(move || {
        crate::job::in_writer_session(&access, |repo, session, index| {
            let progress = JobProgress::default();
            engine::images::backup_images(
                repo,
                session,
                index,
                &parsed,
                &image_opts,
                &opts,
                &progress,
            )
        })
    })
    .await
    .map_err(|e| format!("the images job failed: {e}"))?
    .map_err(|e| e.to_string())?;
    notes.extend(
        done.failed
            .iter()
            .map(|f| format!("{}: {}", f.reference, f.error)),
    );
    tracing::info!(
        cluster_backup = %cb.name_any(),
        stored = done.images.len(),
        failed = done.failed.len(),
        downloaded = done.downloaded,
        "images stored"
    );
    let id = done
        .outcome
        .map(|o| o.id.to_hex())
        .ok_or("no image could be stored")?;
    Ok((id, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_status_gives_the_digest_it_runs() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            running_reference(&format!("docker-pullable://nginx@{d}"), "nginx:1"),
            Some(format!("nginx@{d}"))
        );
        assert_eq!(
            running_reference(
                &format!("127.0.0.1:5000/shop/app@{d}"),
                "127.0.0.1:5000/shop/app:v1"
            ),
            Some(format!("127.0.0.1:5000/shop/app@{d}"))
        );
        assert_eq!(
            running_reference(&d, "local/app:dev"),
            Some("local/app:dev".into()),
            "an image built on the node: the spec's reference"
        );
        assert_eq!(running_reference("", ""), None, "not started yet");
    }

    #[test]
    fn pods_and_templates_give_references_and_pull_secrets() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": {"containers": [{"name": "c", "image": "app:v1"}],
                     "imagePullSecrets": [{"name": "regcred"}]},
            "status": {"containerStatuses": [{"name": "c", "image": "app:v1",
                "imageID": format!("r.example/app@sha256:{}", "b".repeat(64)),
                "ready": true, "restartCount": 0}]}
        }))
        .unwrap();
        let mut ns = NamespaceImages::default();
        add_pod(&pod, &mut ns);
        add_template(pod.spec.as_ref().unwrap(), &mut ns);
        assert_eq!(ns.pull_secrets, BTreeSet::from(["regcred".to_string()]));
        assert_eq!(ns.references.len(), 2, "{ns:?}");
        assert!(ns.references.contains("app:v1"));
    }
}
