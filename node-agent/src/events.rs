//! Kubernetes Events (events.k8s.io/v1) on the PVC a backup or restore concerns, so that
//! `kubectl describe pvc` tells its backup history; on the BackupSchedule whose retention the
//! maintenance workload applied; and on the node for what concerns the node rather than one
//! claim.

use k8s_openapi::api::core::v1::{Node, ObjectReference, PersistentVolumeClaim};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};

/// An Event's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The text (cut to the 1 KiB the API server accepts).
    pub note: &'a str,
}

/// What happened, about any object.
#[derive(Debug, Clone, Copy)]
pub struct Happened<'a> {
    /// Normal or Warning.
    pub kind: EventKind,
    /// Why, in one CamelCase word (`RetentionApplied`).
    pub reason: &'a str,
    /// What was done (`Retention`).
    pub action: &'a str,
    /// The text (cut to the 1 KiB the API server accepts).
    pub note: &'a str,
}

/// Who reports an Event: the controller's name (`kairn.dev/node-agent`) and its instance.
#[derive(Debug, Clone, Copy)]
pub struct Reporter<'a> {
    /// The controller, a qualified name.
    pub controller: &'a str,
    /// This process.
    pub instance: &'a str,
}

/// The namespace of Events about cluster-scoped objects: the API server takes an Event with an
/// `eventTime` about such an object only in `default` or `kube-system`, and Kubernetes' own
/// event recorder uses `default`.
pub const CLUSTER_EVENTS_NAMESPACE: &str = "default";

/// What an Event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regarding<'a> {
    /// A PVC.
    Pvc {
        /// Its namespace.
        namespace: &'a str,
        /// Its name.
        name: &'a str,
    },
    /// A node (its Events go to the `default` namespace, as the kubelet's do).
    Node(&'a str),
}

impl Regarding<'_> {
    fn namespace(&self) -> &str {
        match self {
            Regarding::Pvc { namespace, .. } => namespace,
            Regarding::Node(_) => CLUSTER_EVENTS_NAMESPACE,
        }
    }

    fn name(&self) -> &str {
        match self {
            Regarding::Pvc { name, .. } | Regarding::Node(name) => name,
        }
    }

    fn reference(&self) -> ObjectReference {
        let (kind, namespace) = match self {
            Regarding::Pvc { namespace, .. } => ("PersistentVolumeClaim", Some(namespace)),
            Regarding::Node(_) => ("Node", None),
        };
        ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some(kind.to_string()),
            namespace: namespace.map(|n| n.to_string()),
            name: Some(self.name().to_string()),
            ..Default::default()
        }
    }
}

/// What happened to a PVC or a node.
#[derive(Debug, Clone, Copy)]
pub struct EventAbout<'a> {
    /// The object.
    pub regarding: Regarding<'a>,
    /// What happened.
    pub what: Happened<'a>,
}

/// Creates an Event about a PVC or a node, with the object's uid (see [`pvc_uid`]), reported by
/// agent `instance`. A failure is logged, never fatal: events are a view.
pub async fn publish_on(client: &Client, instance: &str, event: EventAbout<'_>) {
    let reporter = Reporter {
        controller: "kairn.dev/node-agent",
        instance,
    };
    let regarding = event.regarding;
    let mut reference = regarding.reference();
    reference.uid = match regarding {
        Regarding::Pvc { namespace, name } => pvc_uid(client, namespace, name).await,
        Regarding::Node(name) => Api::<Node>::all(client.clone())
            .get_metadata(name)
            .await
            .ok()
            .and_then(|m| m.metadata.uid),
    };
    publish_about(
        client,
        reporter,
        regarding.namespace(),
        reference,
        event.what,
    )
    .await;
}

/// Creates an Event about a PVC, reported by agent `instance` ([`publish_on`]).
pub async fn publish(client: &Client, instance: &str, event: PvcEvent<'_>) {
    let regarding = Regarding::Pvc {
        namespace: event.namespace,
        name: event.pvc,
    };
    let what = Happened {
        kind: event.kind,
        reason: event.reason,
        action: event.action,
        note: event.note,
    };
    publish_on(client, instance, EventAbout { regarding, what }).await;
}

/// The PVC's uid: `kubectl describe pvc` lists only the Events whose object carries it, so an
/// Event without it is published and never seen there. `None` (the Event still goes out) when
/// the PVC cannot be read.
async fn pvc_uid(client: &Client, namespace: &str, pvc: &str) -> Option<String> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    match api.get_metadata(pvc).await {
        Ok(meta) => meta.metadata.uid,
        Err(e) => {
            tracing::debug!(
                namespace,
                pvc,
                "cannot read the PVC's uid for an event: {e}"
            );
            None
        }
    }
}

/// Creates an Event in `namespace` about the object `regarding` names (for a cluster-scoped
/// one, `namespace` is [`CLUSTER_EVENTS_NAMESPACE`]). A failure is logged, never fatal.
pub async fn publish_about(
    client: &Client,
    reporter: Reporter<'_>,
    namespace: &str,
    regarding: ObjectReference,
    what: Happened<'_>,
) {
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
    let name = regarding.name.clone().unwrap_or_default();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(event_name(
                &name,
                now.timestamp_nanos_opt().unwrap_or_default(),
            )),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        event_time: Some(event_time),
        reporting_controller: Some(reporter.controller.to_string()),
        reporting_instance: Some(reporter.instance.to_string()),
        action: Some(what.action.to_string()),
        reason: Some(what.reason.to_string()),
        note: Some(cut_note(what.note).to_string()),
        type_: Some(
            match what.kind {
                EventKind::Normal => "Normal",
                EventKind::Warning => "Warning",
            }
            .to_string(),
        ),
        regarding: Some(regarding),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::warn!(namespace, regarding = %name, reason = what.reason, "cannot publish an event: {e}");
    }
}

/// The API server refuses an Event whose note is over 1 KiB: counted in bytes, so a cut by
/// characters let notes with multibyte text through to be refused and lost.
const MAX_NOTE_BYTES: usize = 1024;

/// Object names are DNS subdomains of at most 253 bytes.
const MAX_NAME_BYTES: usize = 253;

/// `note`, cut at a character boundary to what the API server accepts.
fn cut_note(note: &str) -> &str {
    if note.len() <= MAX_NOTE_BYTES {
        return note;
    }
    let mut end = MAX_NOTE_BYTES;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    &note[..end]
}

/// `<object>.<nanoseconds in hex>`, with the object's part shortened so the whole stays a
/// valid name (a PVC name may itself be 253 bytes long).
fn event_name(pvc: &str, nanos: i64) -> String {
    let suffix = format!(".{nanos:x}");
    let room = MAX_NAME_BYTES - suffix.len();
    // Object names are DNS subdomains (ASCII), so any byte index is a character boundary.
    let head = pvc.get(..room.min(pvc.len())).unwrap_or(pvc);
    format!("{}{suffix}", head.trim_end_matches(['-', '.']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_cut_to_what_the_server_takes_in_bytes_not_characters() {
        let short = "backup completed";
        assert_eq!(cut_note(short), short);
        // 600 two-byte characters: 1,200 bytes, under 1,000 characters.
        let multibyte = "é".repeat(600);
        let cut = cut_note(&multibyte);
        assert!(cut.len() <= MAX_NOTE_BYTES, "{}", cut.len());
        assert_eq!(cut.len(), 1024);
        assert!(multibyte.starts_with(cut));
        let odd = format!("a{}", "é".repeat(600));
        assert_eq!(cut_note(&odd).len(), 1023, "never splits a character");
    }

    #[test]
    fn an_event_name_stays_a_valid_name_for_the_longest_pvc_name() {
        let name = event_name(&"p".repeat(253), i64::MAX);
        assert!(name.len() <= MAX_NAME_BYTES, "{}", name.len());
        assert!(name.ends_with(&format!(".{:x}", i64::MAX)));
        assert_eq!(event_name("db", 255), "db.ff");
        let dotted = format!("{}.x", "a".repeat(235));
        let name = event_name(&dotted, i64::MAX);
        assert!(!name.contains(".."), "{name}");
    }

    #[test]
    fn a_node_event_goes_to_the_default_namespace_and_names_no_namespace_on_the_node() {
        let node = Regarding::Node("worker-1");
        assert_eq!(node.namespace(), "default");
        let r = node.reference();
        assert_eq!(r.kind.as_deref(), Some("Node"));
        assert_eq!(r.name.as_deref(), Some("worker-1"));
        assert_eq!(r.namespace, None);
        let pvc = Regarding::Pvc {
            namespace: "db",
            name: "data",
        };
        let r = pvc.reference();
        assert_eq!(pvc.namespace(), "db");
        assert_eq!(r.kind.as_deref(), Some("PersistentVolumeClaim"));
        assert_eq!(r.namespace.as_deref(), Some("db"));
    }

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
