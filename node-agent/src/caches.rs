//! What the reconcilers read, kept current by watches (kube-runtime reflectors) instead of
//! listing every resource on every pass: after the initial list, an idle agent costs the API
//! server one open watch per resource, re-established every few minutes. Each agent watches
//! only its own node's pods (a field selector). Objects are kept without their managedFields,
//! which are most of a small object's size and which no reconciler reads.

use std::fmt::Debug;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use crate::crd::{BackupSchedule, ClusterBackup, NamespaceRestore, VolumeBackup, VolumeRestore};

/// The watched resources.
pub struct Caches {
    /// This node's pods.
    pub pods: Store<Pod>,
    pub volume_backups: Store<VolumeBackup>,
    pub volume_restores: Store<VolumeRestore>,
    pub cluster_backups: Store<ClusterBackup>,
    pub namespace_restores: Store<NamespaceRestore>,
    pub schedules: Store<BackupSchedule>,
}

impl Caches {
    /// Starts a watch per resource, each on a task of its own that retries with backoff.
    pub fn start(client: &Client, node: &str) -> Self {
        let on_node = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        Self {
            pods: reflect(Api::all(client.clone()), on_node),
            volume_backups: reflect(Api::all(client.clone()), watcher::Config::default()),
            volume_restores: reflect(Api::all(client.clone()), watcher::Config::default()),
            cluster_backups: reflect(Api::all(client.clone()), watcher::Config::default()),
            namespace_restores: reflect(Api::all(client.clone()), watcher::Config::default()),
            schedules: reflect(Api::all(client.clone()), watcher::Config::default()),
        }
    }

    /// True once every watch has listed its resource at least once.
    pub fn ready(&self) -> bool {
        fn listed<K: Resource + Clone>(s: &Store<K>) -> bool
        where
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            // A store is empty until its first list completed, and ready after it.
            futures::FutureExt::now_or_never(s.wait_until_ready()).is_some()
        }
        listed(&self.pods)
            && listed(&self.volume_backups)
            && listed(&self.volume_restores)
            && listed(&self.cluster_backups)
            && listed(&self.namespace_restores)
            && listed(&self.schedules)
    }
}

/// The objects of `store`, as owned values for the reconcilers.
pub fn snapshot<K: Resource + Clone>(store: &Store<K>) -> Vec<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.state().iter().map(|o| K::clone(o)).collect()
}

fn reflect<K>(api: Api<K>, config: watcher::Config) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&()).to_string();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(|o: &mut K| o.meta_mut().managed_fields = None);
    let events = reflector::reflector(writer, stream);
    tokio::spawn(async move {
        events
            .for_each(|event| {
                if let Err(e) = event {
                    tracing::warn!(kind, "watch interrupted (retrying): {e}");
                }
                std::future::ready(())
            })
            .await;
    });
    reader
}
