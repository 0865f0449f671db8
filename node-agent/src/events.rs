//! Kubernetes Events (events.k8s.io/v1) on the PVC a backup or restore concerns, so that
//! `kubectl describe pvc` tells its backup history.

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, PostParams};

use crate::agent::Agent;

/// An Event's type.
#[derive(Debug, Clone, Copy)]
pub enum EventKind {
    /// Something worked.
    Normal,
    /// Something needs a look.
    Warning,
}

/// Creates an Event about `namespace/pvc`. A failure is logged, never fatal: events are a view.
pub async fn publish(
    agent: &Agent,
    namespace: &str,
    pvc: &str,
    kind: EventKind,
    reason: &str,
    action: &str,
    note: &str,
) {
    let now = chrono::Utc::now();
    let event = serde_json::json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{pvc}.{:x}", now.timestamp_nanos_opt().unwrap_or_default()),
            "namespace": namespace,
        },
        "eventTime": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "reportingController": "kairn.dev/node-agent",
        "reportingInstance": agent.config.instance,
        "action": action,
        "reason": reason,
        "note": note.chars().take(1000).collect::<String>(),
        "type": match kind { EventKind::Normal => "Normal", EventKind::Warning => "Warning" },
        "regarding": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": namespace,
            "name": pvc,
        },
    });
    let event: Event = match serde_json::from_value(event) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("cannot build an event: {e}");
            return;
        }
    };
    let api: Api<Event> = Api::namespaced(agent.client.clone(), namespace);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::warn!(namespace, pvc, reason, "cannot publish an event: {e}");
    }
}
