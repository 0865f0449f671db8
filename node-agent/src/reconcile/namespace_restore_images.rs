//! A namespace restore's images: the cluster backup's images pushed to the registry the
//! restore names, and the restored workloads pointed there by digest.

use engine::format::snapshot::Snapshot;
use engine::images::{Credentials, PushOptions, RegistryOptions};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use crate::context::Context;
use crate::crd::RestoreImages;
use crate::job::JobProgress;
use crate::restore_plan::BackupGroup;

/// The logins of `images.credentialsSecret` (in the agents' namespace).
pub(super) async fn credentials(
    ctx: &Context,
    images: &RestoreImages,
) -> Result<Credentials, String> {
    let mut credentials = Credentials::default();
    let Some(name) = &images.credentials_secret else {
        return Ok(credentials);
    };
    let admin = &ctx.config.admin_namespace;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), admin);
    let secret = api
        .get(name)
        .await
        .map_err(|e| format!("cannot read the registry Secret {admin}/{name}: {e}"))?;
    let data = secret.data.unwrap_or_default();
    let config = data
        .get(".dockerconfigjson")
        .or_else(|| data.get(".dockercfg"))
        .ok_or_else(|| format!("the Secret {admin}/{name} holds no .dockerconfigjson"))?;
    credentials
        .add_config(&config.0)
        .map_err(|e| format!("the Secret {admin}/{name}: {e}"))?;
    Ok(credentials)
}

/// What the restore read from the repository.
pub(super) struct Found<'a> {
    pub repo: &'a engine::repo::Repository,
    pub index: &'a engine::index::Index,
    pub snapshots: &'a [(String, Snapshot)],
    pub group: &'a BackupGroup,
}

impl Found<'_> {
    /// Pushes the group's images (when `push`) and rewrites the workloads in `objects`;
    /// returns notes for the status.
    pub fn push_and_rewrite(
        &self,
        images: &RestoreImages,
        credentials: Credentials,
        push: bool,
        objects: &mut [serde_json::Value],
    ) -> Result<Vec<String>, String> {
        let to = &images.push_to;
        let id =
            self.group.images.as_deref().ok_or_else(|| {
                format!("cluster backup {} holds no images to push", self.group.id)
            })?;
        let (_, snap) = self
            .snapshots
            .iter()
            .find(|(i, _)| i == id)
            .ok_or_else(|| format!("images snapshot {id} is gone"))?;
        let fail = |e: engine::Error| format!("cannot read the images snapshot {id}: {e}");
        let stored = engine::images::read_layout(self.repo, self.index, snap).map_err(fail)?;
        let mut notes = Vec::new();
        if push {
            let opts = PushOptions {
                registry: RegistryOptions {
                    credentials,
                    insecure: images.insecure_registries.clone(),
                },
                to: Some(to.clone()),
                only: Vec::new(),
            };
            let progress = JobProgress::default();
            let report = engine::images::push_images(self.repo, self.index, snap, &opts, &progress)
                .map_err(|e| format!("cannot push the images to {to}: {e}"))?;
            if let Some((image, e)) = report.failed.first() {
                return Err(format!("cannot push {image} to {to}: {e}"));
            }
            notes.push(format!("pushed {} image(s) to {to}", report.pushed.len()));
        }
        let map = engine::images::image_map(&stored.images, to)
            .map_err(|e| format!("imagesPushTo {to:?}: {e}"))?;
        let rewritten: usize = objects
            .iter_mut()
            .map(|o| engine::images::rewrite_images(o, &map))
            .sum();
        if push {
            notes.push(format!("{rewritten} container image(s) now point to {to}"));
        }
        Ok(notes)
    }
}
