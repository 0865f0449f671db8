//! Each agent renews a Lease (coordination.k8s.io) of its own node in the agents' namespace
//! every resync; every agent reads them all. Work claimed by a node whose Lease has expired is
//! taken over or failed ([`crate::decide`]): a node that never comes back no longer leaves
//! backups `InProgress` forever. A node with no Lease at all is never judged lost.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

use crate::config::AgentConfig;

/// The label on every agent's Lease.
pub const LEASE_SELECTOR: &str = "app.kubernetes.io/name=kairn-node-agent";
/// The annotation naming the Lease's node (a node name may not fit in a label value).
pub const NODE_ANNOTATION: &str = "kairn.dev/node";

/// The Lease of `node`: `kairn-agent-<node>`, shortened with a hash when too long for a name.
pub fn lease_name(node: &str) -> String {
    let name = format!("kairn-agent-{node}");
    if name.len() <= 253 {
        return name;
    }
    let hash = blake3::hash(node.as_bytes()).to_hex();
    format!("{}-{}", &name[..200], &hash[..16])
}

fn micro_time(t: DateTime<Utc>) -> Option<MicroTime> {
    k8s_openapi::jiff::Timestamp::new(t.timestamp(), 0)
        .ok()
        .map(MicroTime)
}

/// When `lease` expires, and whose node it is; `None` when it says neither.
pub fn expiry(lease: &Lease) -> Option<(String, DateTime<Utc>)> {
    let node = lease
        .metadata
        .annotations
        .as_ref()?
        .get(NODE_ANNOTATION)?
        .clone();
    let spec = lease.spec.as_ref()?;
    let renewed = spec.renew_time.as_ref()?.0.as_second();
    let seconds = i64::from(spec.lease_duration_seconds?);
    Some((node, DateTime::from_timestamp(renewed + seconds, 0)?))
}

/// The expiry times of every node's Lease, as last read.
#[derive(Debug, Default)]
pub struct NodeLeases(Mutex<BTreeMap<String, DateTime<Utc>>>);

impl NodeLeases {
    /// Replaces what is known.
    pub fn set(&self, leases: &[Lease]) {
        let known = leases.iter().filter_map(expiry).collect();
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = known;
    }

    /// The node that leads the work one agent does for all (creating what schedules and
    /// cluster backups select): the first by name whose Lease is live; `None` when no Lease
    /// has been read.
    pub fn leader(&self, now: DateTime<Utc>) -> Option<String> {
        let known = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        known
            .iter()
            .find(|(_, expires)| **expires >= now)
            .map(|(node, _)| node.clone())
    }

    /// True when `node`'s Lease is known and expired at `now`.
    pub fn lost(&self, node: &str, now: DateTime<Utc>) -> bool {
        let known = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        known.get(node).is_some_and(|expires| *expires < now)
    }
}

/// Renews this node's Lease (creating it the first time), then reads every agent's into
/// `leases`.
pub async fn renew_and_read(
    client: &kube::Client,
    config: &AgentConfig,
    leases: &NodeLeases,
) -> kube::Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.admin_namespace);
    let name = lease_name(&config.node);
    let now = Utc::now();
    let spec = LeaseSpec {
        holder_identity: Some(config.instance.clone()),
        lease_duration_seconds: Some(config.lease_seconds),
        renew_time: micro_time(now),
        ..Default::default()
    };
    let patch = serde_json::json!({ "spec": spec });
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let mut lease = Lease {
                spec: Some(LeaseSpec {
                    acquire_time: micro_time(now),
                    ..spec
                }),
                ..Default::default()
            };
            lease.metadata.name = Some(name);
            lease.metadata.labels = Some(
                [(
                    "app.kubernetes.io/name".to_string(),
                    "kairn-node-agent".to_string(),
                )]
                .into(),
            );
            lease.metadata.annotations =
                Some([(NODE_ANNOTATION.to_string(), config.node.clone())].into());
            api.create(&PostParams::default(), &lease).await?;
        }
        Err(e) => return Err(e),
    }
    let all = api
        .list(&ListParams::default().labels(LEASE_SELECTOR))
        .await?;
    leases.set(&all.items);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lease(node: &str, renewed: i64, seconds: i32) -> Lease {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": lease_name(node), "annotations": {NODE_ANNOTATION: node}},
            "spec": {"leaseDurationSeconds": seconds,
                     "renewTime": DateTime::from_timestamp(renewed, 0).unwrap()
                        .format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}}))
        .unwrap()
    }

    #[test]
    fn a_node_is_lost_once_its_lease_expired_and_never_without_one() {
        let leases = NodeLeases::default();
        leases.set(&[lease("a", 1_000, 60), lease("b", 1_000, 10)]);
        let now = DateTime::from_timestamp(1_030, 0).unwrap();
        assert!(!leases.lost("a", now));
        assert!(leases.lost("b", now));
        assert!(!leases.lost("unknown", now));
        // "a" is live and first by name; were it lost, the next live one would lead.
        assert_eq!(leases.leader(now), Some("a".to_string()));
        let later = DateTime::from_timestamp(1_070, 0).unwrap();
        assert_eq!(leases.leader(later), None);
        assert!(lease_name(&"n".repeat(300)).len() <= 253);
        assert_eq!(lease_name("node-1"), "kairn-agent-node-1");
    }
}
