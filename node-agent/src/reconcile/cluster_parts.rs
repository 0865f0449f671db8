//! The jobs of a ClusterBackup's claimed parts: an etcd snapshot streamed into the
//! repository, or the cluster's resource manifests exported and stored. Each runs in a task
//! of its own, registered as a running job, and records its outcome in the part's status.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;

use crate::cluster_plan::{Part, group_of};
use crate::context::Context;
use crate::crd::{ClusterBackup, Phase};
use crate::export::{ExportFilter, export};
use crate::job::JobProgress;
use crate::jobs::JobKey;
use crate::patch::{ClusterStatusPatch, PartPatch};
use crate::status;

/// The key a part's job runs under.
pub fn key(part: Part, uid: &str) -> JobKey {
    match part {
        Part::Etcd => JobKey::ClusterEtcd(uid.to_string()),
        Part::Manifests => JobKey::ClusterManifests(uid.to_string()),
        Part::Images => JobKey::ClusterImages(uid.to_string()),
    }
}

/// A status patch of one part.
pub fn part_patch(part: Part, patch: PartPatch) -> ClusterStatusPatch {
    match part {
        Part::Etcd => ClusterStatusPatch {
            etcd: Some(patch),
            ..Default::default()
        },
        Part::Manifests => ClusterStatusPatch {
            manifests: Some(patch),
            ..Default::default()
        },
        Part::Images => ClusterStatusPatch {
            images: Some(patch),
            ..Default::default()
        },
    }
}

/// Runs a claimed part in a task of its own.
pub fn spawn(ctx: &Arc<Context>, cb: &ClusterBackup, part: Part) {
    let ctx = ctx.clone();
    let cb = cb.clone();
    let key = key(part, &cb.uid().unwrap_or_default());
    ctx.jobs.insert(key.clone(), Arc::default());
    tokio::spawn(async move {
        let name = cb.name_any();
        tracing::info!(cluster_backup = %name, part = part.field(), "started");
        let outcome = match part {
            Part::Etcd => run_etcd(&ctx, &cb).await,
            Part::Manifests => run_manifests(&ctx, &cb).await,
            Part::Images => crate::images::run(&ctx, &cb, part_options(&ctx, &cb)).await,
        };
        let done = match outcome {
            Ok((id, messages)) => PartPatch {
                phase: if messages.is_empty() {
                    Phase::Completed
                } else {
                    Phase::PartiallyFailed
                },
                snapshot_id: Some(id),
                messages: status::error_list(&messages, 10),
                ..Default::default()
            },
            Err(e) => PartPatch {
                phase: Phase::Failed,
                messages: status::error_list(&[e], 10),
                ..Default::default()
            },
        };
        match serde_json::to_value(&done) {
            Ok(value) => tracing::info!(cluster_backup = %name, part = part.field(), "{value}"),
            Err(e) => {
                tracing::warn!(cluster_backup = %name, part = part.field(), "cannot show the outcome: {e}")
            }
        }
        let api: Api<ClusterBackup> = Api::all(ctx.client.clone());
        status::patch_final(&api, &name, &part_patch(part, done)).await;
        ctx.jobs.remove(&key);
    });
}

/// Streams an etcd snapshot into the repository; its snapshot id.
async fn run_etcd(ctx: &Context, cb: &ClusterBackup) -> Result<(String, Vec<String>), String> {
    let Some(spec) = cb.spec.etcd.clone() else {
        return Err("no etcd part asked for".into());
    };
    let mut tls = engine::etcd::EtcdTls::default();
    if let Some(secret) = &spec.tls_secret {
        let admin = &ctx.config.admin_namespace;
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), admin);
        let s = api
            .get(secret)
            .await
            .map_err(|e| format!("cannot read the etcd TLS Secret {admin}/{secret}: {e}"))?;
        let data = s.data.unwrap_or_default();
        let field = |k: &str| data.get(k).map(|b| b.0.clone());
        tls = engine::etcd::EtcdTls {
            ca: field("ca.crt"),
            cert: field("tls.crt"),
            key: field("tls.key"),
        };
    }
    let source = engine::etcd::EtcdSource {
        endpoints: spec.endpoints.clone(),
        tls,
        ..Default::default()
    };
    let opts = part_options(ctx, cb);
    let access = ctx.access.clone();
    let done = tokio::task::spawn_blocking(move || {
        crate::job::in_writer_session(&access, |repo, session, index| {
            let progress = JobProgress::default();
            engine::etcd::backup_etcd(repo, session, index, &source, &opts, &progress)
        })
    })
    .await
    .map_err(|e| format!("the etcd job failed: {e}"))?
    .map_err(|e| e.to_string())?;
    Ok((done.outcome.id.to_hex(), Vec::new()))
}

/// Exports the cluster's resources and stores them; the snapshot id, and what was left out.
async fn run_manifests(ctx: &Context, cb: &ClusterBackup) -> Result<(String, Vec<String>), String> {
    let filter: ExportFilter = cb.spec.manifests.clone().unwrap_or_default();
    let exported = export(&ctx.export_client, &filter)
        .await
        .map_err(|e| format!("cannot discover the cluster's resources: {e}"))?;
    let opts = part_options(ctx, cb);
    let access = ctx.access.clone();
    let manifest_opts = engine::manifests::ManifestOptions {
        keep_status: filter.include_status,
    };
    let objects = exported.objects;
    let done = tokio::task::spawn_blocking(move || {
        crate::job::in_writer_session(&access, |repo, session, index| {
            let progress = JobProgress::default();
            engine::manifests::backup_manifests(
                repo,
                session,
                index,
                objects,
                &manifest_opts,
                &opts,
                &progress,
            )
        })
    })
    .await
    .map_err(|e| format!("the manifests job failed: {e}"))?
    .map_err(|e| e.to_string())?;
    tracing::info!(
        cluster_backup = %cb.name_any(),
        stored = done.stored,
        left_out = done.skipped.len(),
        "manifests stored"
    );
    Ok((done.outcome.id.to_hex(), exported.warnings))
}

/// The snapshot options of a part: the cluster backup's tags and group, this node.
pub(crate) fn part_options(ctx: &Context, cb: &ClusterBackup) -> engine::backup::BackupOptions {
    let group = group_of(cb);
    let mut tags = cb.spec.tags.clone();
    tags.push(format!("cluster-backup:{}", group.id));
    engine::backup::BackupOptions {
        tags,
        host: Some(ctx.config.node.clone()),
        source: engine::format::snapshot::Source {
            cluster: ctx.config.cluster.clone(),
            node: Some(ctx.config.node.clone()),
            ..Default::default()
        },
        group: Some(engine::format::snapshot::Group {
            id: group.id,
            series: group.series,
        }),
        ..Default::default()
    }
}
