//! The jobs running in this agent, by key: the registry the reconcilers consult before they
//! start anything, and that shutdown asks to stop.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::job::JobProgress;

/// What a running job works on: its kind, and the uid of its resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobKey {
    /// A VolumeBackup.
    Backup(String),
    /// A VolumeRestore.
    Restore(String),
    /// The etcd part of a ClusterBackup.
    ClusterEtcd(String),
    /// The manifests part of a ClusterBackup.
    ClusterManifests(String),
    /// A ClusterBackup's images, by its uid.
    ClusterImages(String),
}

impl JobKey {
    /// The kind, as logs and the `kind` label of the metrics name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Backup(_) => "backup",
            Self::Restore(_) => "restore",
            Self::ClusterEtcd(_) => "cluster-etcd",
            Self::ClusterManifests(_) => "cluster-manifests",
            Self::ClusterImages(_) => "cluster-images",
        }
    }
}

/// The running jobs, each with its progress and stop switch.
#[derive(Debug, Default)]
pub struct Jobs {
    running: Mutex<HashMap<JobKey, Arc<JobProgress>>>,
}

impl Jobs {
    /// How many run.
    pub fn count(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// The job of `key`, when it runs.
    pub fn get(&self, key: &JobKey) -> Option<Arc<JobProgress>> {
        self.running.lock().ok()?.get(key).cloned()
    }

    /// True while the job of `key` runs.
    pub fn contains(&self, key: &JobKey) -> bool {
        self.running.lock().is_ok_and(|r| r.contains_key(key))
    }

    /// Records a job as running.
    pub fn insert(&self, key: JobKey, progress: Arc<JobProgress>) {
        if let Ok(mut r) = self.running.lock() {
            r.insert(key, progress);
        }
    }

    /// Records a job as ended.
    pub fn remove(&self, key: &JobKey) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(key);
        }
    }

    /// Asks every running job to stop.
    pub fn stop_all(&self) {
        if let Ok(running) = self.running.lock() {
            for p in running.values() {
                p.stop.store(true, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_kinds_never_collide() {
        let jobs = Jobs::default();
        jobs.insert(JobKey::Backup("u1".into()), Arc::default());
        assert!(jobs.contains(&JobKey::Backup("u1".into())));
        assert!(!jobs.contains(&JobKey::Restore("u1".into())));
        assert_eq!(JobKey::ClusterEtcd("u1".into()).kind(), "cluster-etcd");
        jobs.stop_all();
        assert!(
            jobs.get(&JobKey::Backup("u1".into()))
                .is_some_and(|p| p.stop.load(Ordering::Relaxed))
        );
        jobs.remove(&JobKey::Backup("u1".into()));
        assert_eq!(jobs.count(), 0);
    }
}
