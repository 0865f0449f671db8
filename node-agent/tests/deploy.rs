//! The manifests under deploy/ parse as the Kubernetes types they claim to be, and the
//! DaemonSet only sets settings the agent has.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::rbac::v1::ClusterRole;
use serde::Deserialize;

fn docs(file: &str) -> Vec<serde_yaml::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn daemonset() -> DaemonSet {
    serde_yaml::from_value(docs("daemonset.yaml").remove(0)).unwrap()
}

#[test]
fn the_daemonset_sets_only_settings_the_agent_reads() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let ds = daemonset();
    let pod = ds.spec.unwrap().template.spec.unwrap();
    let agent = &pod.containers[0];
    for env in agent.env.as_ref().unwrap() {
        if env.name.starts_with("KAIRN_") || env.name == "NODE_NAME" {
            assert!(
                help.contains(&format!("env: {}", env.name)),
                "{} is not a setting of the agent",
                env.name
            );
        }
    }
    let mounts = agent.volume_mounts.as_ref().unwrap();
    let pods = mounts.iter().find(|m| m.name == "kubelet-pods").unwrap();
    assert_eq!(pods.mount_propagation.as_deref(), Some("HostToContainer"));
    let secret = mounts.iter().find(|m| m.name == "secret").unwrap();
    let password = agent
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "KAIRN_PASSWORD_FILE")
        .unwrap();
    assert!(
        password
            .value
            .as_deref()
            .unwrap()
            .starts_with(&secret.mount_path)
    );
    // The state directory (freeze records) must outlive the pod: a hostPath, not an emptyDir.
    let state_dir = agent
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "KAIRN_STATE_DIR")
        .and_then(|e| e.value.clone())
        .unwrap();
    let state = mounts
        .iter()
        .find(|m| Path::new(&state_dir).starts_with(&m.mount_path))
        .unwrap();
    let volume = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == state.name)
        .unwrap();
    assert!(
        volume.host_path.is_some(),
        "{state_dir} is not on a hostPath"
    );
    let caps = agent
        .security_context
        .as_ref()
        .unwrap()
        .capabilities
        .as_ref()
        .unwrap();
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
}

#[test]
fn the_role_grants_no_writes_beyond_status_events_hooks_backups_and_restores() {
    let role: ClusterRole = docs("rbac.yaml")
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole")
        .map(|d| serde_yaml::from_value(d).unwrap())
        .unwrap();
    for rule in role.rules.unwrap() {
        for verb in &rule.verbs {
            if matches!(verb.as_str(), "get" | "list" | "watch") {
                continue;
            }
            let resources = rule.resources.clone().unwrap_or_default();
            let allowed = resources.iter().all(|r| {
                (verb == "patch" && r.ends_with("/status"))
                    // Schedules' and cluster backups' runs, a NamespaceRestore's volumes.
                    || (verb == "create"
                        && [
                            "events",
                            "pods/exec",
                            "volumebackups",
                            "clusterbackups",
                            "volumerestores",
                        ]
                        .contains(&r.as_str()))
                    // Mount pods, for volumes no running pod mounts: made and removed, never
                    // changed.
                    || (matches!(verb.as_str(), "create" | "delete") && r == "pods")
                    // Expiry (spec.ttl) of its own finished resources.
                    || (verb == "delete"
                        && [
                            "volumebackups",
                            "volumerestores",
                            "clusterbackups",
                            "namespacerestores",
                        ]
                        .contains(&r.as_str()))
            });
            assert!(allowed, "the agent may {verb} {resources:?}");
        }
    }
}

#[test]
fn every_example_parses_as_the_resource_it_claims_to_be() {
    use node_agent::crd::{
        BackupSchedule, ClusterBackup, NamespaceRestore, VolumeBackup, VolumeRestore,
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = format!("examples/{}", entry.unwrap().file_name().to_string_lossy());
        for doc in docs(&file) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            // Through JSON, as the API server stores it (serde_yaml reads enums from YAML tags).
            let doc = serde_json::to_value(&doc).unwrap();
            let parsed = match kind.as_str() {
                "VolumeBackup" => serde_json::from_value::<VolumeBackup>(doc).map(|_| ()),
                "VolumeRestore" => serde_json::from_value::<VolumeRestore>(doc).map(|_| ()),
                "BackupSchedule" => serde_json::from_value::<BackupSchedule>(doc).map(|_| ()),
                "ClusterBackup" => serde_json::from_value::<ClusterBackup>(doc).map(|_| ()),
                "NamespaceRestore" => serde_json::from_value::<NamespaceRestore>(doc).map(|_| ()),
                _ => continue,
            };
            assert!(parsed.is_ok(), "{file}: {kind}: {parsed:?}");
            seen += 1;
        }
    }
    assert!(seen >= 5, "only {seen} examples");
}

fn maintenance_doc(kind: &str) -> serde_yaml::Value {
    docs("maintenance.yaml")
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in maintenance.yaml"))
}

#[test]
fn the_maintenance_deployment_runs_one_kairn_maintenance_with_the_full_key() {
    use k8s_openapi::api::apps::v1::Deployment;
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_kairn-maintenance"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let deployment: Deployment = serde_yaml::from_value(maintenance_doc("Deployment")).unwrap();
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
    let pod = spec.template.spec.unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("kairn-maintenance")
    );
    let container = &pod.containers[0];
    assert_eq!(
        container.command.as_deref(),
        Some(&["/usr/local/bin/kairn-maintenance".to_string()][..])
    );
    for env in container.env.as_ref().unwrap() {
        if env.name.starts_with("KAIRN_") {
            assert!(
                help.contains(&format!("env: {}", env.name)),
                "{} is not a setting of kairn-maintenance",
                env.name
            );
        }
    }
    let secrets: Vec<String> = pod
        .volumes
        .unwrap()
        .into_iter()
        .filter_map(|v| v.secret.and_then(|s| s.secret_name))
        .collect();
    assert_eq!(secrets, ["kairn-repository-full"]);
    // The agents get the other Secret: the append-only key.
    let agent_secrets: Vec<String> = daemonset()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .volumes
        .unwrap()
        .into_iter()
        .filter_map(|v| v.secret.and_then(|s| s.secret_name))
        .collect();
    assert_eq!(agent_secrets, ["kairn-repository"]);
}

#[test]
fn the_maintenance_role_reads_schedules_lists_their_runs_and_creates_events_only() {
    let role: ClusterRole = serde_yaml::from_value(maintenance_doc("ClusterRole")).unwrap();
    let mut grants: Vec<String> = Vec::new();
    for rule in role.rules.unwrap() {
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    grants.push(format!("{verb} {group}/{resource}"));
                }
            }
        }
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
    }
    grants.sort();
    assert_eq!(
        grants,
        [
            "create events.k8s.io/events",
            "get kairn.dev/backupschedules",
            "list kairn.dev/backupschedules",
            "list kairn.dev/clusterbackups",
            "watch kairn.dev/backupschedules",
        ]
    );
}
