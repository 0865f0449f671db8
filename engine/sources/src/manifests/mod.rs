//! Kubernetes resource manifests as a repository snapshot of kind `manifests`.
//!
//! Each object, normalised ([`normalize`]) so that an unchanged object gives the same bytes
//! every time, is stored as YAML at `<namespace or _cluster>/<group or core>/<Kind>/<name>.yaml`.
//! The snapshot is an ordinary tree: `repo ls`, `restore`, `diff` and `dump` work on it, and
//! [`order`] turns it back into `kubectl apply`-ready YAML. The export itself (API discovery,
//! listing) is the caller's: the engine takes JSON objects and never talks to a cluster.

pub mod normalize;
pub mod order;

use serde_json::Value;

use kairn_format::error::{Error, Result};
use kairn_format::id::BlobId;
use kairn_format::snapshot::{Snapshot, Source, SourceKind};
use kairn_format::tree::{NodeKind, validate_name};
use kairn_ops::backup::memory::{FileData, MemoryFile, backup_memory};
use kairn_ops::backup::{BackupOptions, BackupOutcome};
use kairn_ops::inspect::dump::dump_file;
use kairn_ops::progress::Progress;
use kairn_repository::index::Index;
use kairn_repository::read::load_tree;
use kairn_repository::repo::Repository;
use kairn_repository::session::Session;

/// The directory of cluster-scoped objects (no namespace can be called that: namespace names
/// are DNS labels, without `_`).
pub const CLUSTER_DIR: &str = "_cluster";
/// The directory of the core API group, whose name is empty.
pub const CORE_GROUP_DIR: &str = "core";

/// How to store the objects.
#[derive(Debug, Clone, Default)]
pub struct ManifestOptions {
    /// Keep each object's `status`.
    pub keep_status: bool,
}

/// An object that was not stored, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    /// `namespace/group/Kind/name`, as far as known.
    pub object: String,
    /// Why.
    pub reason: String,
}

/// What a manifests backup produced.
#[derive(Debug, Clone)]
pub struct ManifestBackup {
    /// The repository snapshot.
    pub outcome: BackupOutcome,
    /// Objects stored.
    pub stored: usize,
    /// Objects left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// Where an object is stored, below the snapshot's root.
pub fn object_path(obj: &Value) -> std::result::Result<Vec<String>, String> {
    let (group, kind) = normalize::group_kind(obj);
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = obj["metadata"]["namespace"].as_str().unwrap_or(CLUSTER_DIR);
    let group = if group.is_empty() {
        CORE_GROUP_DIR.to_string()
    } else {
        group
    };
    // A name may have 253 characters, and `.yaml` would take the file name past the 255
    // bytes a Linux file name may have: such names are cut and given a hash (the YAML inside
    // keeps the real name). Names are ASCII (DNS subdomains), so the cut is on a character.
    let file = if name.len() > 200 && name.is_char_boundary(180) {
        let hash = blake3::hash(name.as_bytes()).to_hex();
        format!("{}-{}.yaml", &name[..180], &hash[..16])
    } else {
        format!("{name}.yaml")
    };
    let path = vec![namespace.to_string(), group, kind, file];
    for part in &path[..3] {
        if validate_name(part.as_bytes()).is_err() {
            return Err(format!("{part:?} cannot be a directory name"));
        }
    }
    if name.is_empty() || validate_name(name.as_bytes()).is_err() {
        return Err(format!("{name:?} cannot be a file name"));
    }
    Ok(path)
}

/// The file an object becomes: normalised YAML, mode 0600 for Secrets (0644 otherwise), and
/// the object's creation time as its mtime (stable, so unchanged directories keep their tree
/// blobs); `Err` says why the object is left out.
pub fn object_file(
    mut obj: Value,
    opts: &ManifestOptions,
) -> std::result::Result<MemoryFile, String> {
    if obj["apiVersion"].as_str().is_none_or(str::is_empty)
        || obj["kind"].as_str().is_none_or(str::is_empty)
    {
        return Err("it has no apiVersion or kind".into());
    }
    if let Some(reason) = normalize::skip_reason(&obj) {
        return Err(reason.into());
    }
    let path = object_path(&obj)?;
    let mtime = obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| t.timestamp());
    let (group, kind) = normalize::group_kind(&obj);
    normalize::normalize(&mut obj, opts.keep_status);
    let content = serde_yaml::to_string(&obj)
        .map_err(|e| format!("it cannot be written as YAML: {e}"))?
        .into_bytes();
    let mode = if group.is_empty() && kind == "Secret" {
        0o600
    } else {
        0o644
    };
    Ok(MemoryFile {
        path,
        content: FileData::Bytes(content),
        mode,
        mtime,
    })
}

fn describe(obj: &Value) -> String {
    let (group, kind) = normalize::group_kind(obj);
    format!(
        "{}/{}/{kind}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or(CLUSTER_DIR),
        if group.is_empty() {
            CORE_GROUP_DIR
        } else {
            &group
        },
        obj["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Stores `objects` (as the API server returns them, each with `apiVersion` and `kind`) as one
/// snapshot of kind `manifests`.
pub fn backup_manifests(
    repo: &Repository,
    session: &Session,
    index: &Index,
    objects: Vec<Value>,
    manifest_opts: &ManifestOptions,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<ManifestBackup> {
    let mut files = Vec::with_capacity(objects.len());
    let mut skipped = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for obj in objects {
        let what = describe(&obj);
        match object_file(obj, manifest_opts) {
            // The same object can be served by two API groups during a migration (Events
            // under core and events.k8s.io; old Ingress groups): the first one listed wins.
            Ok(file) if !seen.insert(file.path.clone()) => skipped.push(Skipped {
                object: what,
                reason: "another version of it is already stored".into(),
            }),
            Ok(file) => files.push(file),
            Err(reason) => skipped.push(Skipped {
                object: what,
                reason,
            }),
        }
    }
    let opts = BackupOptions {
        paths: Vec::new(),
        source: Source {
            kind: SourceKind::Manifests,
            ..opts.source.clone()
        },
        ..opts.clone()
    };
    let stored = files.len();
    let outcome = backup_memory(repo, session, index, &files, &opts, progress)?;
    Ok(ManifestBackup {
        outcome,
        stored,
        skipped,
    })
}

/// Every object stored in a manifests snapshot, parsed.
pub fn read_manifests(repo: &Repository, index: &Index, snapshot: &Snapshot) -> Result<Vec<Value>> {
    if snapshot.source.kind != SourceKind::Manifests {
        return Err(Error::invalid(format!(
            "the snapshot holds {:?}, not Kubernetes manifests",
            snapshot.source.kind
        )));
    }
    let mut out = Vec::new();
    read_dir(repo, index, &snapshot.tree, &mut String::new(), &mut out)?;
    Ok(out)
}

fn read_dir(
    repo: &Repository,
    index: &Index,
    tree: &BlobId,
    path: &mut String,
    out: &mut Vec<Value>,
) -> Result<()> {
    for node in load_tree(repo, index, tree)?.nodes {
        let len = path.len();
        path.push('/');
        path.push_str(&String::from_utf8_lossy(&node.name));
        match &node.kind {
            NodeKind::Dir { subtree } => read_dir(repo, index, subtree, path, out)?,
            NodeKind::File { .. } if path.ends_with(".yaml") => {
                let mut bytes = Vec::new();
                dump_file(repo, index, &node, &mut bytes)?;
                let obj: Value = serde_yaml::from_slice(&bytes)
                    .map_err(|e| Error::corrupt(format!("{path} is not a YAML manifest: {e}")))?;
                out.push(obj);
            }
            _ => {}
        }
        path.truncate(len);
    }
    Ok(())
}

/// Objects from what `kubectl get -o json` or `-o yaml` prints: a `List` (or any object with
/// `items`), one object, or a YAML stream of either.
pub fn parse_objects(bytes: &[u8]) -> Result<Vec<Value>> {
    let docs: Vec<Value> = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => vec![v],
        Err(_) => {
            let mut docs = Vec::new();
            for doc in serde_yaml::Deserializer::from_slice(bytes) {
                let v = <Value as serde::Deserialize>::deserialize(doc)
                    .map_err(|e| Error::invalid(format!("not JSON or YAML manifests: {e}")))?;
                if !v.is_null() {
                    docs.push(v);
                }
            }
            docs
        }
    };
    let mut out = Vec::new();
    for doc in docs {
        match doc.get("items").and_then(Value::as_array) {
            Some(items) if doc["kind"].as_str().is_none_or(|k| k.ends_with("List")) => {
                out.extend(items.iter().cloned());
            }
            _ => out.push(doc),
        }
    }
    Ok(out)
}

/// Objects as one YAML stream (`---` between documents), ready for `kubectl apply -f -`.
pub fn to_yaml_stream(objects: &[Value]) -> Result<String> {
    let mut out = String::new();
    for obj in objects {
        out.push_str("---\n");
        out.push_str(
            &serde_yaml::to_string(obj)
                .map_err(|e| Error::internal(format!("cannot write YAML: {e}")))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectl_output_parses_as_json_list_or_yaml_stream() {
        let list = br#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}},
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}]}"#;
        assert_eq!(parse_objects(list).unwrap().len(), 2);
        let yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMapList\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: b\n";
        let objs = parse_objects(yaml).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1]["metadata"]["name"], "b");
        assert!(parse_objects(b"{ not: [valid").is_err());
    }

    #[test]
    fn objects_are_laid_out_by_namespace_group_kind_and_name() {
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"}});
        assert_eq!(
            object_path(&deploy).unwrap(),
            ["shop", "apps", "Deployment", "web.yaml"]
        );
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
        assert_eq!(
            object_path(&ns).unwrap(),
            ["_cluster", "core", "Namespace", "shop.yaml"]
        );
        let long = "a".repeat(253);
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": long}});
        let file = &object_path(&cm).unwrap()[3];
        assert!(
            file.len() <= 255 && file.starts_with(&long[..180]),
            "{file}"
        );
        let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ".."}});
        assert!(object_path(&bad).is_err());
    }

    #[test]
    fn the_same_object_gives_the_same_bytes_whatever_the_server_changed() {
        let a = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "db", "namespace": "shop", "resourceVersion": "1",
                         "creationTimestamp": "2026-01-02T03:04:05Z"},
            "data": {"password": "c2VjcmV0"}});
        let mut b = a.clone();
        b["metadata"]["resourceVersion"] = json!("999");
        let opts = ManifestOptions::default();
        let (fa, fb) = (
            object_file(a, &opts).unwrap(),
            object_file(b, &opts).unwrap(),
        );
        let (FileData::Bytes(a), FileData::Bytes(b)) = (&fa.content, &fb.content) else {
            panic!("manifests are held in memory");
        };
        assert_eq!(a, b);
        assert_eq!(fa.mode, 0o600);
        assert_eq!(fa.mtime, 1_767_323_045);
        let text = String::from_utf8(a.clone()).unwrap();
        assert!(
            !text.contains("resourceVersion") && text.contains("c2VjcmV0"),
            "{text}"
        );
    }
}
