//! ClusterBackup: one point in time of the cluster, carried out by every agent together.
//!
//! - Volumes: each agent creates a VolumeBackup (marked with the group) for each selected PVC
//!   its node's pods mount; those run like any other.
//! - etcd: one agent claims the part with a conditional status write (resourceVersion), on a
//!   control-plane node unless told otherwise, and streams a snapshot into the repository.
//! - Manifests: one agent claims the part the same way, exports the resources through API
//!   discovery and stores them.
//! - Any agent settles the whole once every part is final: `Completed` when all succeeded,
//!   `PartiallyFailed` when some did, `Failed` when none did.
//!
//! A part claimed by an agent that then died is taken over by the next instance on the same
//! node (there is one agent per node, so the old one is gone).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use crate::agent::Agent;
use crate::crd::{
    BackupSchedule, ClusterBackup, ClusterBackupStatus, EtcdSpec, GroupRef, PartStatus, Phase,
    VolumeBackup, VolumesStatus,
};
use crate::export::{ExportFilter, export};
use crate::job::JobProgress;
use crate::status;

/// The node label kubeadm (and most installers) put on control-plane nodes.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// Namespace and PVC labels read during one pass, so each object is read once however many
/// schedules and cluster backups select from it.
#[derive(Default)]
pub struct LabelCache {
    namespaces: HashMap<String, Option<BTreeMap<String, String>>>,
    pvcs: HashMap<(String, String), Option<BTreeMap<String, String>>>,
}

/// Which part of a cluster backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Etcd,
    Manifests,
}

impl Part {
    fn field(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::Manifests => "manifests",
        }
    }
}

/// The group a cluster backup's snapshots record.
pub fn group_of(cb: &ClusterBackup) -> GroupRef {
    let id = cb.name_any();
    let series = if cb.spec.series.is_empty() {
        id.clone()
    } else {
        cb.spec.series.clone()
    };
    GroupRef { id, series }
}

/// True when this agent should take `part` now: nobody has; or a previous agent of this same
/// node did and is gone; or this agent did, and its job is no longer running (its final
/// status write was lost).
fn should_claim(part: Option<&PartStatus>, node: &str, instance: &str, running_here: bool) -> bool {
    match part {
        None => true,
        Some(p) if p.phase == Phase::New => true,
        Some(p) if p.phase == Phase::InProgress => {
            p.node.as_deref() == Some(node)
                && (p.agent.as_deref() != Some(instance) || !running_here)
        }
        Some(_) => false,
    }
}

/// The phase of the whole, once every part asked for is final; `None` while one is not.
pub fn settled_phase(
    status: &ClusterBackupStatus,
    wants_etcd: bool,
    wants_manifests: bool,
    volumes_settled: bool,
) -> Option<Phase> {
    let part = |p: &Option<PartStatus>| p.as_ref().map_or(Phase::New, |p| p.phase);
    let mut outcomes = Vec::new();
    if wants_etcd {
        outcomes.push(part(&status.etcd));
    }
    if wants_manifests {
        outcomes.push(part(&status.manifests));
    }
    if !volumes_settled || outcomes.iter().any(|p| !p.is_final()) {
        return None;
    }
    let v = &status.volumes;
    if v.total > 0 {
        outcomes.push(if v.failed == 0 {
            Phase::Completed
        } else if v.completed > 0 {
            Phase::PartiallyFailed
        } else {
            Phase::Failed
        });
    }
    let ok = outcomes.iter().filter(|p| **p == Phase::Completed).count();
    let bad = outcomes
        .iter()
        .filter(|p| matches!(p, Phase::Failed | Phase::Canceled))
        .count();
    Some(if ok == outcomes.len() {
        Phase::Completed
    } else if bad == outcomes.len() {
        Phase::Failed
    } else {
        Phase::PartiallyFailed
    })
}

impl Agent {
    /// The PVCs mounted by this node's running pods that the selectors pick.
    pub(crate) async fn selected_pvcs(
        &self,
        pods: &[Pod],
        namespace_selector: Option<&LabelSelector>,
        pvc_selector: Option<&LabelSelector>,
        cache: &mut LabelCache,
    ) -> Vec<(String, String)> {
        let mut claims = BTreeSet::new();
        for pod in pods {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed"))
                || pod.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let ns = pod.namespace().unwrap_or_default();
            for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
                if let Some(c) = &v.persistent_volume_claim {
                    claims.insert((ns.clone(), c.claim_name.clone()));
                }
            }
        }
        let mut out = Vec::new();
        for (ns, pvc) in claims {
            if !cache.namespaces.contains_key(&ns) {
                let api: Api<Namespace> = Api::all(self.client.clone());
                let labels = match api.get(&ns).await {
                    Ok(n) => Some(n.metadata.labels.unwrap_or_default()),
                    Err(e) => {
                        tracing::warn!(namespace = %ns, "cannot read the namespace: {e}");
                        None
                    }
                };
                cache.namespaces.insert(ns.clone(), labels);
            }
            let Some(Some(ns_labels)) = cache.namespaces.get(&ns) else {
                continue;
            };
            if !crate::schedule::matches(namespace_selector, ns_labels) {
                continue;
            }
            let key = (ns.clone(), pvc.clone());
            if !cache.pvcs.contains_key(&key) {
                let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
                let labels = match api.get(&pvc).await {
                    Ok(c) => Some(c.metadata.labels.unwrap_or_default()),
                    Err(e) => {
                        tracing::warn!(namespace = %ns, pvc = %pvc, "cannot read the PVC: {e}");
                        None
                    }
                };
                cache.pvcs.insert(key.clone(), labels);
            }
            let Some(Some(labels)) = cache.pvcs.get(&key) else {
                continue;
            };
            if crate::schedule::matches(pvc_selector, labels) {
                out.push((ns, pvc));
            }
        }
        out
    }

    /// The ClusterBackup a schedule's run at `t` is.
    pub(crate) async fn create_cluster_backup(
        &self,
        schedule: &BackupSchedule,
        t: chrono::DateTime<chrono::Utc>,
    ) {
        let name = schedule.name_any();
        let spec = &schedule.spec;
        let cb = json!({
            "apiVersion": "kairn.dev/v1alpha1",
            "kind": "ClusterBackup",
            "metadata": {
                "name": crate::schedule::cluster_backup_name(&name, t),
                "labels": {crate::schedule::SCHEDULE_LABEL: name},
            },
            "spec": {
                "series": name,
                "volumes": spec.volumes,
                "namespaceSelector": spec.namespace_selector,
                "pvcSelector": spec.pvc_selector,
                "hooks": spec.hooks,
                "etcd": spec.etcd,
                "manifests": spec.manifests,
                "tags": [format!("schedule:{name}")],
            },
        });
        let cb: ClusterBackup = match serde_json::from_value(cb) {
            Ok(cb) => cb,
            Err(e) => {
                tracing::warn!(schedule = %name, "cannot build a ClusterBackup: {e}");
                return;
            }
        };
        let api: Api<ClusterBackup> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &cb).await {
            Ok(_) => tracing::info!(schedule = %name, "scheduled a cluster backup"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => tracing::warn!(schedule = %name, "cannot create the cluster backup: {e}"),
        }
    }

    /// One pass over the ClusterBackups that are not final.
    pub(crate) async fn reconcile_cluster_backups(
        self: &Arc<Self>,
        pods: &[Pod],
        backups: &[VolumeBackup],
    ) -> kube::Result<()> {
        let api: Api<ClusterBackup> = Api::all(self.client.clone());
        let mut labels = LabelCache::default();
        for cb in api.list(&ListParams::default()).await?.items {
            let st = cb.status.clone().unwrap_or_default();
            if st.phase.is_final() {
                continue;
            }
            if cb.spec.volumes {
                let chosen = self
                    .selected_pvcs(
                        pods,
                        cb.spec.namespace_selector.as_ref(),
                        cb.spec.pvc_selector.as_ref(),
                        &mut labels,
                    )
                    .await;
                let mut created = false;
                for (ns, pvc) in chosen {
                    created |= self.create_member(&cb, &ns, &pvc).await;
                }
                // `backups` was listed before: settle on the next pass, which counts them.
                if created {
                    continue;
                }
            }
            let (node, instance) = (&self.config.node, &self.config.instance);
            let uid = cb.uid().unwrap_or_default();
            let running = |part: Part| self.running_part(part, &uid);
            if let Some(etcd) = &cb.spec.etcd
                && should_claim(st.etcd.as_ref(), node, instance, running(Part::Etcd))
                && self.may_take_etcd(etcd).await
                && self.claim(&api, &cb, Part::Etcd).await
            {
                self.spawn_part(&cb, Part::Etcd);
                continue;
            }
            if cb.spec.manifests.is_some()
                && should_claim(
                    st.manifests.as_ref(),
                    node,
                    instance,
                    running(Part::Manifests),
                )
                && self.claim(&api, &cb, Part::Manifests).await
            {
                self.spawn_part(&cb, Part::Manifests);
                continue;
            }
            self.settle(&api, &cb, backups).await;
        }
        Ok(())
    }

    /// Creates the VolumeBackup of one selected PVC; true when it is new.
    async fn create_member(&self, cb: &ClusterBackup, ns: &str, pvc: &str) -> bool {
        let group = group_of(cb);
        let created = created_at(cb);
        let mut tags = cb.spec.tags.clone();
        tags.push(format!("cluster-backup:{}", group.id));
        let vb: VolumeBackup = match serde_json::from_value(json!({
            "apiVersion": "kairn.dev/v1alpha1",
            "kind": "VolumeBackup",
            "metadata": {
                "name": crate::schedule::backup_name(&group.id, pvc, created),
                "namespace": ns,
            },
            "spec": {"pvc": pvc, "tags": tags, "hooks": cb.spec.hooks, "clusterBackup": group},
        })) {
            Ok(vb) => vb,
            Err(e) => {
                tracing::warn!(cluster_backup = %group.id, "cannot build a VolumeBackup: {e}");
                return false;
            }
        };
        let api: Api<VolumeBackup> = Api::namespaced(self.client.clone(), ns);
        match api.create(&PostParams::default(), &vb).await {
            Ok(_) => {
                tracing::info!(cluster_backup = %group.id, namespace = ns, pvc, "created a volume backup");
                true
            }
            Err(kube::Error::Api(s)) if s.code == 409 => false,
            Err(e) => {
                tracing::warn!(cluster_backup = %group.id, namespace = ns, pvc, "cannot create the volume backup: {e}");
                false
            }
        }
    }

    /// Whether this node may take the etcd snapshot.
    async fn may_take_etcd(&self, etcd: &EtcdSpec) -> bool {
        if !etcd.control_plane_only {
            return true;
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        match nodes.get(&self.config.node).await {
            Ok(n) => n.labels().contains_key(CONTROL_PLANE_LABEL),
            Err(e) => {
                tracing::debug!(node = %self.config.node, "cannot read this node: {e}");
                false
            }
        }
    }

    /// Claims a part with a conditional status write; false when another agent was first.
    async fn claim(&self, api: &Api<ClusterBackup>, cb: &ClusterBackup, part: Part) -> bool {
        let st = cb.status.clone().unwrap_or_default();
        let mut patch = json!({
            part.field(): {"phase": "InProgress", "agent": self.config.instance,
                           "node": self.config.node, "messages": []},
            "phase": "InProgress",
        });
        if st.started.is_none() {
            patch["started"] = json!(status::now());
        }
        match status::patch(api, &cb.name_any(), cb.resource_version().as_deref(), patch).await {
            Ok(()) => true,
            Err(e) => {
                if !status::is_conflict(&e) {
                    tracing::warn!(cluster_backup = %cb.name_any(), "cannot claim the {} part: {e}", part.field());
                }
                false
            }
        }
    }

    fn part_key(part: Part, uid: &str) -> crate::agent::JobKey {
        let kind = match part {
            Part::Etcd => "cluster-etcd",
            Part::Manifests => "cluster-manifests",
        };
        (kind, uid.to_string())
    }

    fn running_part(&self, part: Part, uid: &str) -> bool {
        self.running
            .lock()
            .is_ok_and(|r| r.contains_key(&Self::part_key(part, uid)))
    }

    fn spawn_part(self: &Arc<Self>, cb: &ClusterBackup, part: Part) {
        let agent = self.clone();
        let cb = cb.clone();
        let key = Self::part_key(part, &cb.uid().unwrap_or_default());
        if let Ok(mut running) = self.running.lock() {
            running.insert(key.clone(), Arc::default());
        }
        tokio::spawn(async move {
            let name = cb.name_any();
            tracing::info!(cluster_backup = %name, part = part.field(), "started");
            let outcome = match part {
                Part::Etcd => agent.run_etcd(&cb).await,
                Part::Manifests => agent.run_manifests(&cb).await,
            };
            let value = match outcome {
                Ok((id, messages)) => {
                    let phase = if messages.is_empty() {
                        "Completed"
                    } else {
                        "PartiallyFailed"
                    };
                    json!({"phase": phase, "snapshotId": id, "messages": status::error_list(&messages, 10)})
                }
                Err(e) => json!({"phase": "Failed", "messages": status::error_list(&[e], 10)}),
            };
            tracing::info!(cluster_backup = %name, part = part.field(), "{value}");
            let api: Api<ClusterBackup> = Api::all(agent.client.clone());
            status::patch_final(&api, &name, json!({ part.field(): value })).await;
            if let Ok(mut running) = agent.running.lock() {
                running.remove(&key);
            }
        });
    }

    async fn run_etcd(&self, cb: &ClusterBackup) -> Result<(String, Vec<String>), String> {
        let Some(spec) = cb.spec.etcd.clone() else {
            return Err("no etcd part asked for".into());
        };
        let mut tls = engine::etcd::EtcdTls::default();
        if let Some(secret) = &spec.tls_secret {
            let api: Api<Secret> =
                Api::namespaced(self.client.clone(), &self.config.admin_namespace);
            let s = api.get(secret).await.map_err(|e| {
                format!(
                    "cannot read the etcd TLS Secret {}/{secret}: {e}",
                    self.config.admin_namespace
                )
            })?;
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
        let opts = self.part_options(cb);
        let access = self.access.clone();
        let done = tokio::task::spawn_blocking(move || {
            crate::job::in_writer_session(&access, |repo, index| {
                let progress = JobProgress::default();
                engine::etcd::backup_etcd(repo, index, &source, &opts, &progress)
            })
        })
        .await
        .map_err(|e| format!("the etcd job failed: {e}"))?
        .map_err(|e| e.to_string())?;
        Ok((done.outcome.id.to_hex(), Vec::new()))
    }

    async fn run_manifests(&self, cb: &ClusterBackup) -> Result<(String, Vec<String>), String> {
        let filter: ExportFilter = cb.spec.manifests.clone().unwrap_or_default();
        let exported = export(&self.export_client, &filter)
            .await
            .map_err(|e| format!("cannot discover the cluster's resources: {e}"))?;
        let opts = self.part_options(cb);
        let access = self.access.clone();
        let manifest_opts = engine::manifests::ManifestOptions {
            keep_status: filter.include_status,
        };
        let objects = exported.objects;
        let done = tokio::task::spawn_blocking(move || {
            crate::job::in_writer_session(&access, |repo, index| {
                let progress = JobProgress::default();
                engine::manifests::backup_manifests(
                    repo,
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

    fn part_options(&self, cb: &ClusterBackup) -> engine::backup::BackupOptions {
        let group = group_of(cb);
        let mut tags = cb.spec.tags.clone();
        tags.push(format!("cluster-backup:{}", group.id));
        engine::backup::BackupOptions {
            tags,
            host: Some(self.config.node.clone()),
            source: engine::format::snapshot::Source {
                cluster: self.config.cluster.clone(),
                node: Some(self.config.node.clone()),
                ..Default::default()
            },
            group: Some(engine::format::snapshot::Group {
                id: group.id,
                series: group.series,
            }),
            ..Default::default()
        }
    }

    /// Counts the volumes, and records the final phase once every part is final.
    async fn settle(&self, api: &Api<ClusterBackup>, cb: &ClusterBackup, backups: &[VolumeBackup]) {
        let name = cb.name_any();
        let mut volumes = VolumesStatus::default();
        let mut all_final = true;
        for vb in backups {
            if vb.spec.cluster_backup.as_ref().is_none_or(|g| g.id != name) {
                continue;
            }
            volumes.total += 1;
            match vb.status.as_ref().map_or(Phase::New, |s| s.phase) {
                Phase::Completed => volumes.completed += 1,
                p if p.is_final() => volumes.failed += 1,
                _ => all_final = false,
            }
        }
        // Every agent must have had its chance to create its volumes' backups.
        let age = chrono::Utc::now() - created_at(cb);
        let grace = chrono::Duration::from_std(self.config.resync * 3).unwrap_or_default();
        let volumes_settled = !cb.spec.volumes || (all_final && age > grace);
        let mut st = cb.status.clone().unwrap_or_default();
        st.volumes = volumes.clone();
        // No agent can take the etcd part (no agent on a control-plane node, as on managed
        // clusters): say so instead of waiting forever.
        let unclaimed = cb.spec.etcd.is_some() && st.etcd.is_none() && age > unclaimed_limit(grace);
        if unclaimed {
            st.etcd = Some(PartStatus {
                phase: Phase::Failed,
                messages: vec![NO_ETCD_AGENT.into()],
                ..Default::default()
            });
        }
        let phase = settled_phase(
            &st,
            cb.spec.etcd.is_some(),
            cb.spec.manifests.is_some(),
            volumes_settled,
        );
        let old = cb.status.clone().unwrap_or_default();
        if phase.is_none() && !unclaimed && old.volumes == volumes && old.phase != Phase::New {
            return;
        }
        let mut patch = json!({"volumes": volumes});
        if unclaimed {
            patch["etcd"] = json!(st.etcd);
        }
        match phase {
            Some(p) => {
                patch["phase"] = json!(p);
                patch["finished"] = json!(status::now());
            }
            None => patch["phase"] = json!("InProgress"),
        }
        if old.started.is_none() {
            patch["started"] = json!(status::now());
        }
        match status::patch(api, &name, cb.resource_version().as_deref(), patch).await {
            // Only a complete run may make retention forget earlier ones: a run whose database
            // volume failed must not push out the last run that holds it.
            Ok(()) if phase == Some(Phase::Completed) => self.retain(cb).await,
            Ok(()) => {}
            Err(e) if status::is_conflict(&e) => {}
            Err(e) => tracing::warn!(cluster_backup = %name, "cannot record the status: {e}"),
        }
    }

    /// After a scheduled cluster backup: forget the runs the schedule's retention no longer
    /// keeps, whole (the engine decides a series' cluster backups as units).
    async fn retain(&self, cb: &ClusterBackup) {
        let Some(schedule) = cb.labels().get(crate::schedule::SCHEDULE_LABEL).cloned() else {
            return;
        };
        let api: Api<BackupSchedule> = Api::all(self.client.clone());
        let policy = match api.get(&schedule).await {
            Ok(s) => match s.spec.retention {
                Some(r) => r.policy(),
                None => return,
            },
            Err(e) => {
                tracing::warn!(schedule, "cannot read the schedule for its retention: {e}");
                return;
            }
        };
        if policy.is_empty() {
            return;
        }
        let access = self.access.clone();
        let tag = format!("schedule:{schedule}");
        match tokio::task::spawn_blocking(move || {
            crate::job::apply_retention(&access, &tag, None, policy)
        })
        .await
        {
            Ok(Ok(n)) => tracing::info!(schedule, forgotten = n, "retention applied"),
            Ok(Err(e)) => tracing::warn!(schedule, "cannot apply retention: {e}"),
            Err(e) => tracing::warn!(schedule, "retention task failed: {e}"),
        }
    }
}

const NO_ETCD_AGENT: &str = "no agent took the etcd snapshot: none runs on a node labelled \
    node-role.kubernetes.io/control-plane (set etcd.controlPlaneOnly: false if etcd is \
    reachable from other nodes)";

/// How long the etcd part may wait for an agent that can take it: ten resyncs, at least
/// five minutes (agents restart, nodes join).
fn unclaimed_limit(grace: chrono::Duration) -> chrono::Duration {
    (grace * 10 / 3).max(chrono::Duration::minutes(5))
}

/// When the resource was created (now, if the server did not say).
fn created_at(cb: &ClusterBackup) -> chrono::DateTime<chrono::Utc> {
    cb.metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.0.as_second(), 0))
        .unwrap_or_else(chrono::Utc::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(phase: Phase) -> Option<PartStatus> {
        Some(PartStatus {
            phase,
            ..Default::default()
        })
    }

    #[test]
    fn the_whole_settles_only_when_every_part_asked_for_is_final() {
        let mut st = ClusterBackupStatus {
            etcd: part(Phase::Completed),
            manifests: part(Phase::InProgress),
            volumes: VolumesStatus {
                total: 2,
                completed: 2,
                failed: 0,
            },
            ..Default::default()
        };
        assert_eq!(settled_phase(&st, true, true, true), None);
        assert_eq!(
            settled_phase(&st, true, false, true),
            Some(Phase::Completed)
        );
        assert_eq!(settled_phase(&st, true, false, false), None);
        st.manifests = part(Phase::Failed);
        assert_eq!(
            settled_phase(&st, true, true, true),
            Some(Phase::PartiallyFailed)
        );
        st.etcd = part(Phase::Failed);
        st.volumes = VolumesStatus {
            total: 1,
            completed: 0,
            failed: 1,
        };
        assert_eq!(settled_phase(&st, true, true, true), Some(Phase::Failed));
        // Asked for etcd, nobody has taken it yet.
        let fresh = ClusterBackupStatus::default();
        assert_eq!(settled_phase(&fresh, true, false, true), None);
    }

    #[test]
    fn an_etcd_part_nobody_can_take_fails_after_ten_resyncs_or_five_minutes() {
        let grace = |s| chrono::Duration::seconds(s);
        assert_eq!(unclaimed_limit(grace(30)), chrono::Duration::minutes(5));
        assert_eq!(unclaimed_limit(grace(180)), chrono::Duration::minutes(10));
    }

    #[test]
    fn a_part_is_claimed_when_free_or_left_by_this_nodes_previous_agent() {
        let mine = |agent: &str| {
            Some(PartStatus {
                phase: Phase::InProgress,
                node: Some("n1".into()),
                agent: Some(agent.into()),
                ..Default::default()
            })
        };
        assert!(should_claim(None, "n1", "a2", false));
        assert!(should_claim(mine("a1").as_ref(), "n1", "a2", false));
        assert!(!should_claim(mine("a2").as_ref(), "n1", "a2", true));
        // This agent's own job ended without its final write: run it again.
        assert!(should_claim(mine("a2").as_ref(), "n1", "a2", false));
        assert!(!should_claim(mine("a1").as_ref(), "n2", "b1", false));
        assert!(!should_claim(
            part(Phase::Completed).as_ref(),
            "n1",
            "a2",
            false
        ));
    }
}
