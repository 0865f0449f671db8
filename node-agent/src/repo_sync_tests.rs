use super::*;
use crate::restore_plan::VolumeSnapshot;

fn group(id: &str, incomplete: bool) -> BackupGroup {
    BackupGroup {
        id: id.into(),
        series: "nightly".into(),
        time: "2026-11-01T02:00:00Z".into(),
        manifests: Some("m1".into()),
        etcd: None,
        images: None,
        volumes: vec![VolumeSnapshot {
            id: "v1".into(),
            namespace: "shop".into(),
            pvc: "db".into(),
            time: "2026-11-01T02:00:00Z".into(),
        }],
        incomplete,
    }
}

fn lone(id: &str, ns: &str) -> LoneVolume {
    LoneVolume {
        id: id.into(),
        cluster: Some("cluster-a".into()),
        namespace: ns.into(),
        pvc: "db".into(),
        time: "2026-11-02T00:00:00Z".into(),
        incomplete: false,
    }
}

fn long_ago() -> DateTime<Utc> {
    "2020-01-01T00:00:00Z".parse().unwrap()
}

fn existing_cb(name: &str, synced: bool) -> ClusterBackup {
    let mut cb = cluster_backup(&group(name, false));
    if !synced {
        cb.metadata.labels = None;
    }
    cb
}

#[test]
fn an_empty_cluster_gets_every_cluster_backup_and_the_lone_volumes_of_its_namespaces() {
    let groups = [
        group("nightly-1", false),
        group("nightly-2", true),
        group("Bad_Name", false),
    ];
    let lone = [lone("aaaa1111bbbb", "shop"), lone("cccc2222dddd", "gone")];
    let namespaces = BTreeSet::from(["shop".to_string()]);
    let have = InCluster {
        cluster_backups: &[],
        volume_backups: &[],
        namespaces: &namespaces,
        cluster: Some("cluster-a"),
        admin_namespace: "kairn-system",
    };
    let p = plan(&groups, &lone, have, long_ago());
    let names: Vec<String> = p.cluster_backups.iter().map(|c| c.name_any()).collect();
    assert_eq!(
        names,
        ["nightly-1", "nightly-2"],
        "not a Kubernetes name: left out"
    );
    let st = p.cluster_backups[1].status.as_ref().unwrap();
    assert_eq!(st.phase, Phase::PartiallyFailed);
    assert_eq!(st.volumes.total, 1);
    assert_eq!(
        st.manifests.as_ref().unwrap().snapshot_id.as_deref(),
        Some("m1")
    );
    assert!(
        !p.cluster_backups[0].spec.volumes,
        "the agents have nothing to do"
    );
    assert!(is_synced(&p.cluster_backups[0].metadata));
    assert_eq!(p.volume_backups.len(), 1, "only where the namespace exists");
    let vb = &p.volume_backups[0];
    assert_eq!(vb.name_any(), "db-aaaa1111");
    assert_eq!(vb.namespace().as_deref(), Some("shop"));
    assert_eq!(vb.annotations()[SOURCE_CLUSTER], "cluster-a");
    assert!(p.stale.is_empty());
}

#[test]
fn what_exists_is_not_made_twice_and_synced_objects_of_forgotten_snapshots_go() {
    let groups = [group("nightly-2", false)];
    let own = existing_cb("nightly-2", false);
    let forgotten = existing_cb("nightly-1", true);
    let not_synced = existing_cb("manual-1", false);
    let lone_volumes = [lone("aaaa1111bbbb", "shop")];
    let mut recorded = volume_backup(&lone_volumes[0], None);
    recorded.metadata.labels = None;
    let mut stale_vb = volume_backup(&lone("eeee3333ffff", "shop"), None);
    stale_vb.metadata.name = Some("db-eeee3333".into());
    let namespaces = BTreeSet::from(["shop".to_string()]);
    let cbs = [own, forgotten, not_synced].map(|c| Existing::cluster_backup(&c));
    let vbs = [recorded, stale_vb].map(|v| Existing::volume_backup(&v));
    let have = InCluster {
        cluster_backups: &cbs,
        volume_backups: &vbs,
        namespaces: &namespaces,
        cluster: Some("cluster-a"),
        admin_namespace: "kairn-system",
    };
    let p = plan(&groups, &lone_volumes, have, long_ago());
    assert!(p.cluster_backups.is_empty());
    assert!(
        p.volume_backups.is_empty(),
        "its snapshot is already some VolumeBackup's"
    );
    assert_eq!(
        p.stale,
        [
            (String::new(), "nightly-1".to_string()),
            ("shop".to_string(), "db-eeee3333".to_string())
        ]
    );
}

#[test]
fn old_snapshots_and_running_backups_are_not_shown() {
    let groups = [group("nightly-1", false)];
    let lone_volumes = [lone("aaaa1111bbbb", "shop")];
    let namespaces = BTreeSet::from(["shop".to_string()]);
    let mut running = VolumeBackup::new(
        "db-now",
        VolumeBackupSpec {
            pvc: "db".into(),
            tags: Vec::new(),
            hooks: None,
            cancel: false,
            cluster_backup: None,
            ttl: None,
        },
    );
    running.metadata.namespace = Some("shop".into());
    let vbs = [Existing::volume_backup(&running)];
    let have = InCluster {
        cluster_backups: &[],
        volume_backups: &vbs,
        namespaces: &namespaces,
        cluster: Some("cluster-a"),
        admin_namespace: "kairn-system",
    };
    let p = plan(&groups, &lone_volumes, have, long_ago());
    assert_eq!(p.cluster_backups.len(), 1);
    assert!(
        p.volume_backups.is_empty(),
        "db's backup may not have recorded its snapshot yet"
    );
    let since = "2026-11-15T00:00:00Z".parse().unwrap();
    let p = plan(&groups, &lone_volumes, have, since);
    assert!(
        p.cluster_backups.is_empty(),
        "older than the TTL: not shown"
    );
}

#[test]
fn another_clusters_volume_backups_are_shown_to_the_administrators_only() {
    let mut theirs = lone("aaaa1111bbbb", "shop");
    theirs.cluster = Some("cluster-b".into());
    let namespaces = BTreeSet::from(["shop".to_string(), "kairn-system".to_string()]);
    let have = InCluster {
        cluster_backups: &[],
        volume_backups: &[],
        namespaces: &namespaces,
        cluster: Some("cluster-a"),
        admin_namespace: "kairn-system",
    };
    let p = plan(&[], &[theirs], have, long_ago());
    let vb = &p.volume_backups[0];
    assert_eq!(
        vb.namespace().as_deref(),
        Some("kairn-system"),
        "never in shop: maybe not the same tenant"
    );
    assert_eq!(vb.name_any(), "shop-db-aaaa1111");
    assert_eq!(vb.annotations()[SOURCE_NAMESPACE], "shop");
    assert_eq!(vb.annotations()[SOURCE_CLUSTER], "cluster-b");
}
