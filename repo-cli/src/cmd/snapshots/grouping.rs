//! `--group-by` and `--latest N`: which snapshots belong together, and the newest of each.

use std::collections::BTreeMap;

use engine::format::snapshot::{Snapshot, SourceKind};

/// One thing snapshots can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupField {
    Host,
    Paths,
    Tags,
    /// The Kubernetes volume (`namespace/pvc`), or the kind of a snapshot that is no volume.
    Volume,
}

/// The fields of `--group-by`, sorted, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBy(pub Vec<GroupField>);

/// Parses `host,paths,tags,volume` (any subset, any order; empty means no grouping).
pub fn parse_group_by(s: &str) -> Result<GroupBy, String> {
    let mut fields = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let field = match part {
            "host" => GroupField::Host,
            "paths" | "path" => GroupField::Paths,
            "tags" | "tag" => GroupField::Tags,
            "volume" | "pvc" => GroupField::Volume,
            other => {
                return Err(format!(
                    "cannot group by {other:?}: use host, paths, tags, volume (comma-separated)"
                ));
            }
        };
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    fields.sort();
    Ok(GroupBy(fields))
}

/// What a snapshot holds, in the words of the `Source` column: `ns/pvc` for a volume, else
/// its kind (`etcd`, `manifests`, `images`, `filesystem`, ...).
pub fn source_label(s: &Snapshot) -> String {
    match (&s.source.namespace, &s.source.pvc) {
        (Some(ns), Some(pvc)) => format!("{ns}/{pvc}"),
        (None, Some(pvc)) => pvc.clone(),
        _ => kind_name(s.source.kind).to_string(),
    }
}

/// The stored name of a kind.
pub fn kind_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Filesystem => "filesystem",
        SourceKind::Stdin => "stdin",
        SourceKind::BlockDevice => "block-device",
        SourceKind::Etcd => "etcd",
        SourceKind::Manifests => "manifests",
        SourceKind::Images => "images",
    }
}

/// The key of a snapshot's group, as field name → value.
pub fn group_key(s: &Snapshot, by: &[GroupField]) -> BTreeMap<&'static str, serde_json::Value> {
    let mut key = BTreeMap::new();
    for field in by {
        let (name, value) = match field {
            GroupField::Host => ("host", serde_json::json!(s.host)),
            GroupField::Paths => {
                let mut paths = s.paths.clone();
                paths.sort();
                ("paths", serde_json::json!(paths))
            }
            GroupField::Tags => {
                let mut tags = s.tags.clone();
                tags.sort();
                ("tags", serde_json::json!(tags))
            }
            GroupField::Volume => ("volume", serde_json::json!(source_label(s))),
        };
        key.insert(name, value);
    }
    key
}

/// A group: its key and its members, oldest first.
pub type Grouped<'a, T> = Vec<(BTreeMap<&'static str, serde_json::Value>, Vec<&'a T>)>;

/// Splits `items` (oldest first) into groups in order of first appearance, keeping only the
/// newest `latest` of each when given.
pub fn group<'a, T>(
    items: &'a [T],
    snapshot: impl Fn(&T) -> &Snapshot,
    by: &[GroupField],
    latest: Option<usize>,
) -> Grouped<'a, T> {
    let mut groups: Grouped<'a, T> = Vec::new();
    for item in items {
        let key = group_key(snapshot(item), by);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(item),
            None => groups.push((key, vec![item])),
        }
    }
    if let Some(n) = latest {
        for (_, members) in &mut groups {
            let drop = members.len().saturating_sub(n);
            members.drain(..drop);
        }
    }
    groups
}

/// A group key for a heading: `host "a", paths [/data]`.
pub fn describe_key(key: &BTreeMap<&'static str, serde_json::Value>) -> String {
    key.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(host: &str, paths: &[&str], pvc: Option<(&str, &str)>) -> Snapshot {
        let mut s: Snapshot = serde_json::from_value(serde_json::json!({
            "time": "2026-01-01T00:00:00Z", "host": host, "username": "u",
            "paths": paths, "tree": "00".repeat(32),
        }))
        .unwrap();
        if let Some((ns, pvc)) = pvc {
            s.source.namespace = Some(ns.into());
            s.source.pvc = Some(pvc.into());
        }
        s
    }

    #[test]
    fn group_by_parses_any_order_and_refuses_unknown_fields() {
        assert_eq!(
            parse_group_by("tags,host").unwrap().0,
            vec![GroupField::Host, GroupField::Tags]
        );
        assert_eq!(parse_group_by("").unwrap().0, vec![]);
        assert!(
            parse_group_by("host,colour")
                .unwrap_err()
                .contains("colour")
        );
    }

    #[test]
    fn two_pvcs_of_one_name_in_two_namespaces_are_two_groups() {
        let items = vec![
            snap("n1", &["/data"], Some(("shop", "db"))),
            snap("n1", &["/data"], Some(("blog", "db"))),
            snap("n2", &["/data"], Some(("shop", "db"))),
        ];
        let groups = group(&items, |s| s, &[GroupField::Volume], None);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].1.len(), 2);
        assert_eq!(source_label(&items[1]), "blog/db");
    }

    #[test]
    fn latest_keeps_the_newest_of_each_group() {
        let items: Vec<Snapshot> = (0..5)
            .map(|i| snap(if i % 2 == 0 { "a" } else { "b" }, &["/x"], None))
            .collect();
        let groups = group(&items, |s| s, &[GroupField::Host], Some(1));
        assert_eq!(groups.len(), 2);
        assert!(std::ptr::eq(groups[0].1[0], &items[4]));
        assert!(std::ptr::eq(groups[1].1[0], &items[3]));
        let all = group(&items, |s| s, &[], Some(2));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1.len(), 2);
    }
}
