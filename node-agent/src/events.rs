//! Kubernetes Events (events.k8s.io/v1) on the PVC a backup or restore concerns, so that
//! `kubectl describe pvc` tells its backup history.

use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, PostParams};

/// An Event's type.
#[derive(Debug, Clone, Copy)]
pub enum EventKind {
    /// Something worked.
    Normal,
    /// Something needs a look.
    Warning,
}

/// What happened to a PVC.
#[derive(Debug, Clone, Copy)]
pub struct PvcEvent<'a> {
    /// The PVC's namespace.
    pub namespace: &'a str,
    /// The PVC.
    pub pvc: &'a str,
    /// Normal or Warning.
    pub kind: EventKind,
    /// Why, in one CamelCase word (`BackupCompleted`).
    pub reason: &'a str,
    /// What was done (`Backup`, `Restore`).
    pub action: &'a str,
    /// The text (cut to 1000 characters).
    pub note: &'a str,
}

/// Creates an Event about a PVC, reported by agent `instance`. A failure is logged, never
/// fatal: events are a view.
pub async fn publish(client: &Client, instance: &str, event: PvcEvent<'_>) {
    let PvcEvent {
        namespace,
        pvc,
        kind,
        reason,
        action,
        note,
    } = event;
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
        "reportingInstance": instance,
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
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::warn!(namespace, pvc, reason, "cannot publish an event: {e}");
    }
}
