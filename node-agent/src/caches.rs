//! What the reconcilers read, kept current by watches (kube-runtime reflectors) instead of
//! listing every resource on every pass: after the initial list, an idle agent costs the API
//! server one open watch per resource, re-established every few minutes. Each agent watches
//! only its own node's pods (a field selector). Objects are kept without their managedFields,
//! which are most of a small object's size and which no reconciler reads.
//!
//! Backups and restores are kept only while unfinished: one that reaches a final phase leaves
//! its cache as if deleted, so an agent's memory does not grow with the history. What needs
//! finished objects reads them from the API ([`crate::history`]).

use std::fmt::Debug;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use crate::crd::{BackupSchedule, ClusterBackup, NamespaceRestore, VolumeBackup, VolumeRestore};

/// The watched resources; the watches stop when this is dropped.
pub struct Caches {
    tasks: Vec<tokio::task::AbortHandle>,
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
        let mut tasks = Vec::new();
        let t = &mut tasks;
        let on_node = Watch {
            config: watcher::Config::default().fields(&format!("spec.nodeName={node}")),
            keep: |_| true,
        };
        let pods = reflect(t, Api::all(client.clone()), on_node);
        let volume_backups = reflect(t, Api::all(client.clone()), unfinished::<VolumeBackup>());
        let volume_restores = reflect(t, Api::all(client.clone()), unfinished::<VolumeRestore>());
        let cluster_backups = reflect(t, Api::all(client.clone()), unfinished::<ClusterBackup>());
        let namespace_restores = reflect(
            t,
            Api::all(client.clone()),
            unfinished::<NamespaceRestore>(),
        );
        let schedules = reflect(t, Api::all(client.clone()), Watch::every());
        Self {
            tasks,
            pods,
            volume_backups,
            volume_restores,
            cluster_backups,
            namespace_restores,
            schedules,
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

impl Drop for Caches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The objects of `store`, as owned values for the reconcilers.
pub fn snapshot<K: Resource + Clone>(store: &Store<K>) -> Vec<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.state().iter().map(|o| K::clone(o)).collect()
}

/// What to watch, and which objects to keep.
struct Watch<K> {
    config: watcher::Config,
    keep: fn(&K) -> bool,
}

impl<K> Watch<K> {
    fn every() -> Self {
        Self {
            config: watcher::Config::default(),
            keep: |_| true,
        }
    }
}

/// A resource whose objects reach a final phase.
trait Finishes {
    fn finished(&self) -> bool;
}

macro_rules! finishes {
    ($($kind:ty),*) => {$(
        impl Finishes for $kind {
            fn finished(&self) -> bool {
                self.status.as_ref().is_some_and(|s| s.phase.is_final())
            }
        }
    )*};
}
finishes!(VolumeBackup, VolumeRestore, ClusterBackup, NamespaceRestore);

fn unfinished<K: Finishes>() -> Watch<K> {
    Watch {
        config: watcher::Config::default(),
        keep: |o| !o.finished(),
    }
}

/// An event as the cache should see it: a finished object is removed (or, while the watch
/// lists, never added), and no object keeps its managedFields.
fn kept<K: Resource>(event: watcher::Event<K>, keep: fn(&K) -> bool) -> Option<watcher::Event<K>> {
    use watcher::Event;
    let strip = |mut o: K| {
        o.meta_mut().managed_fields = None;
        o
    };
    match event {
        Event::Apply(o) if !keep(&o) => Some(Event::Delete(strip(o))),
        Event::InitApply(o) if !keep(&o) => None,
        Event::Apply(o) => Some(Event::Apply(strip(o))),
        Event::InitApply(o) => Some(Event::InitApply(strip(o))),
        other => Some(other),
    }
}

fn reflect<K>(tasks: &mut Vec<tokio::task::AbortHandle>, api: Api<K>, watch: Watch<K>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&()).to_string();
    let keep = watch.keep;
    let stream = watcher(api, watch.config)
        .default_backoff()
        .filter_map(move |event| {
            std::future::ready(match event {
                Ok(e) => kept(e, keep).map(Ok),
                Err(e) => Some(Err(e)),
            })
        });
    let events = reflector::reflector(writer, stream);
    let task = tokio::spawn(async move {
        events
            .for_each(|event| {
                if let Err(e) = event {
                    tracing::warn!(kind, "watch interrupted (retrying): {e}");
                }
                std::future::ready(())
            })
            .await;
    });
    tasks.push(task.abort_handle());
    reader
}
