//! Kubernetes Events (events.k8s.io/v1) on the PVC a backup or restore concerns, so that
//! `kubectl describe pvc` tells its backup history.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
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
    // Microseconds, as the API keeps an event's time.
    let micros = now.timestamp_subsec_micros() as i32 * 1000;
    let event_time = match k8s_openapi::jiff::Timestamp::new(now.timestamp(), micros) {
        Ok(t) => MicroTime(t),
        Err(e) => {
            tracing::warn!("cannot build an event: {e}");
            return;
        }
    };
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{pvc}.{:x}",
                now.timestamp_nanos_opt().unwrap_or_default()
            )),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        event_time: Some(event_time),
        reporting_controller: Some("kairn.dev/node-agent".to_string()),
        reporting_instance: Some(instance.to_string()),
        action: Some(action.to_string()),
        reason: Some(reason.to_string()),
        note: Some(note.chars().take(1000).collect()),
        type_: Some(
            match kind {
                EventKind::Normal => "Normal",
                EventKind::Warning => "Warning",
            }
            .to_string(),
        ),
        regarding: Some(ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("PersistentVolumeClaim".to_string()),
            namespace: Some(namespace.to_string()),
            name: Some(pvc.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::warn!(namespace, pvc, reason, "cannot publish an event: {e}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_event_time_keeps_microseconds() {
        let now = chrono::Utc::now();
        let micros = now.timestamp_subsec_micros() as i32 * 1000;
        let t = k8s_openapi::jiff::Timestamp::new(now.timestamp(), micros).unwrap();
        let json = serde_json::to_value(super::MicroTime(t)).unwrap();
        let old = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        assert_eq!(json, serde_json::Value::String(old));
    }
}
