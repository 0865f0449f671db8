//! The custom resources the agents act on, under the group `kairn.dev`. The CRD manifests in
//! `deploy/crds.yaml` are generated from these types (a test keeps them in step).
//!
//! - [`VolumeBackup`]: back up one PVC, on the node whose pod mounts it.
//! - [`VolumeRestore`]: restore a snapshot into a PVC or a path.
//! - [`BackupSchedule`]: create VolumeBackups on a cron schedule for the PVCs a selector picks,
//!   or a ClusterBackup when it also asks for etcd or manifests, and apply retention.
//! - [`ClusterBackup`]: one point in time of the cluster: the volume snapshots, an etcd
//!   snapshot and the resource manifests, grouped under the resource's name.
//! - [`NamespaceRestore`]: namespaces of a cluster backup back in one step, volumes before
//!   workloads.

mod backup_schedule;
mod cluster_backup;
mod common;
mod namespace_restore;
mod volume_backup;
mod volume_restore;

pub use backup_schedule::{
    BackupSchedule, BackupScheduleSpec, BackupScheduleStatus, Retention, ScheduleCondition,
};
pub use cluster_backup::{
    ClusterBackup, ClusterBackupSpec, ClusterBackupStatus, PartStatus, VolumesStatus,
};
pub use common::{EtcdSpec, ExecHook, GroupRef, Hooks, ImagesSpec, OnError, Phase, Progress};
pub use namespace_restore::{
    ExistingResourcePolicy, NamespaceRestore, NamespaceRestoreSpec, NamespaceRestoreStatus,
    ObjectCounts, RestoreImages, RestoreStage, VolumeProgress,
};
pub use volume_backup::{VolumeBackup, VolumeBackupSpec, VolumeBackupStatus};
pub use volume_restore::{RestoreTarget, VolumeRestore, VolumeRestoreSpec, VolumeRestoreStatus};

/// The API group of every Kairn resource.
pub const GROUP: &str = "kairn.dev";

/// The CRD manifests of every resource, as one YAML stream (`deploy/crds.yaml`).
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let mut out = String::from(
        "# Generated from node-agent/src/crd.rs by `KAIRN_BLESS=1 cargo test -p kairn-node-agent crds`;\n# do not edit.\n",
    );
    for crd in [
        VolumeBackup::crd(),
        VolumeRestore::crd(),
        BackupSchedule::crd(),
        ClusterBackup::crd(),
        NamespaceRestore::crd(),
    ] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn crds_in_deploy_match_the_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds.yaml");
        let generated = crds_yaml().unwrap();
        if std::env::var_os("KAIRN_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "deploy/crds.yaml is out of date: run KAIRN_BLESS=1 cargo test -p kairn-node-agent crds"
        );
    }

    #[test]
    fn names_scope_and_status_subresource() {
        let backup = VolumeBackup::crd();
        assert_eq!(backup.spec.group, GROUP);
        assert_eq!(backup.spec.names.plural, "volumebackups");
        assert_eq!(backup.spec.scope, "Namespaced");
        assert!(
            backup.spec.versions[0]
                .subresources
                .as_ref()
                .unwrap()
                .status
                .is_some()
        );
        assert_eq!(BackupSchedule::crd().spec.scope, "Cluster");
    }
}
