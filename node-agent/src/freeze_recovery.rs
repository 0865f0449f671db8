//! At start-up, before any reconciler runs: thaw every filesystem an earlier agent on this
//! node left frozen (killed while it held an fsfreeze), as its records in the state directory
//! say ([`crate::freeze_state`]), then tell the cluster with an Event.
//!
//! The state directory's content is treated as untrusted: only a mount point under the
//! kubelet's root directory is ever thawed, after links are resolved, and a path that is no
//! longer a mount point is not thawed at all (FITHAW on a plain directory would thaw the
//! filesystem it sits on). What to do with each file is decided by [`plan`], without I/O.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use kube::Client;

use crate::events::{EventAbout, EventKind, Happened, Regarding, publish_on};
use crate::freeze::{self, Thawed, is_mount_point};
use crate::freeze_record::{self, FileKind, FreezeRecord};
use crate::freeze_state::{Content, FoundFile, StateDir};

/// What to do with a file of the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Thaw the filesystem at `mount`, then remove the record.
    Thaw {
        /// The mount point the record names.
        mount: PathBuf,
        /// The record, when it could be read whole.
        record: Option<FreezeRecord>,
        /// What is wrong with the record, when it could not be.
        damage: Option<String>,
    },
    /// Remove the file, thawing nothing: a record never finished, whose freeze never began.
    Remove,
    /// Leave the file to the live agent that holds it (two agents on a node, as in a surge
    /// rollout): its freeze is still guarded.
    LeaveToHolder,
    /// Leave the file where it is, for the reason given.
    Keep(String),
}

/// What became of one file of the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    /// The file's name.
    pub file: String,
    /// The mount point it names, when it names one.
    pub mount: Option<PathBuf>,
    /// The record, when it could be read whole.
    pub record: Option<FreezeRecord>,
    /// What was done.
    pub outcome: Outcome,
}

/// What was done with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The filesystem was still frozen, and is thawed now; the record is removed.
    Thawed,
    /// The filesystem was not frozen (any more); the record is removed.
    WasNotFrozen,
    /// The path is gone or no longer a mount point; nothing was thawed, the record is removed.
    MountGone,
    /// An unfinished record (its freeze never began) is removed.
    UnfinishedRemoved,
    /// A live agent holds the record: its freeze is its own to thaw.
    HeldByLiveAgent,
    /// The thaw failed: the filesystem may still be frozen. The record is kept.
    ThawFailed(String),
    /// Nothing was done and the record is kept, for the reason given.
    Kept(String),
}

/// What to do with `found`: thaw only what lies strictly under `kubelet_root`.
pub fn plan(found: &FoundFile, kubelet_root: &Path) -> Step {
    let bytes = match &found.content {
        Content::Held => return Step::LeaveToHolder,
        Content::Unusable(why) => return Step::Keep(why.clone()),
        Content::Bytes(bytes) => bytes,
    };
    if found.kind != FileKind::Record {
        return Step::Remove;
    }
    let (mount, record, damage) = match freeze_record::decode(bytes) {
        Ok(record) => (record.mount.clone(), Some(record), None),
        Err(unreadable) => match unreadable.mount {
            Some(mount) => (mount, None, Some(unreadable.why)),
            None => return Step::Keep(format!("unreadable, naming no mount: {}", unreadable.why)),
        },
    };
    if let Err(why) = may_thaw(&mount, kubelet_root) {
        return Step::Keep(why);
    }
    Step::Thaw {
        mount,
        record,
        damage,
    }
}

/// Whether `mount` is a path the agent may thaw: absolute, without `.` or `..`, and strictly
/// under the kubelet's root (where every volume the agent freezes is mounted).
pub fn may_thaw(mount: &Path, kubelet_root: &Path) -> Result<(), String> {
    let plain = mount.is_absolute()
        && mount
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !plain || !kubelet_root.is_absolute() {
        return Err(format!("{} is not a plain absolute path", mount.display()));
    }
    if mount == kubelet_root || !mount.starts_with(kubelet_root) {
        return Err(format!(
            "{} is not under the kubelet root {}",
            mount.display(),
            kubelet_root.display()
        ));
    }
    Ok(())
}

/// Thaws every filesystem the records in `state` say an earlier agent left frozen, and
/// reports each file handled. Never fails: what cannot be done is logged and reported.
pub fn thaw_left_frozen(state: &StateDir, kubelet_root: &Path) -> Vec<Handled> {
    let claimed = match state.claim_all() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                state_dir = %state.path().display(),
                "cannot read the freeze records: a filesystem a killed agent left frozen stays frozen: {e}"
            );
            return Vec::new();
        }
    };
    let mut handled = Vec::new();
    for claimed in claimed {
        let found = &claimed.found;
        let step = plan(found, kubelet_root);
        let one = carry_out(state, &found.name, step, kubelet_root);
        log(&one);
        handled.push(one);
    }
    handled
}

fn carry_out(state: &StateDir, name: &OsString, step: Step, kubelet_root: &Path) -> Handled {
    let file = name.to_string_lossy().into_owned();
    let (mount, record, outcome) = match step {
        Step::Keep(why) => (None, None, Outcome::Kept(why)),
        Step::Remove => (None, None, Outcome::UnfinishedRemoved),
        Step::LeaveToHolder => (None, None, Outcome::HeldByLiveAgent),
        Step::Thaw {
            mount,
            record,
            damage,
        } => {
            if let Some(damage) = &damage {
                tracing::error!(record = %file, mount = %mount.display(), "a damaged freeze record: thawing the mount it names: {damage}");
            }
            let outcome = thaw_mount(&mount, kubelet_root);
            (Some(mount), record, outcome)
        }
    };
    let removable = matches!(
        outcome,
        Outcome::Thawed | Outcome::WasNotFrozen | Outcome::MountGone | Outcome::UnfinishedRemoved
    );
    if removable && let Err(e) = state.remove(name) {
        tracing::error!(record = %file, "cannot remove a freeze record: {e}");
    }
    Handled {
        file,
        mount,
        record,
        outcome,
    }
}

/// Thaws the filesystem at `mount` if it still is a mount point under `kubelet_root` once
/// links are resolved.
fn thaw_mount(mount: &Path, kubelet_root: &Path) -> Outcome {
    let real = match std::fs::canonicalize(mount) {
        Ok(p) => p,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Outcome::MountGone;
        }
        Err(e) => return Outcome::ThawFailed(format!("cannot resolve {}: {e}", mount.display())),
    };
    let real_root = std::fs::canonicalize(kubelet_root).unwrap_or_else(|_| kubelet_root.into());
    if let Err(why) = may_thaw(&real, &real_root) {
        return Outcome::Kept(format!("{} leads elsewhere: {why}", mount.display()));
    }
    if !is_mount_point(&real) {
        return Outcome::MountGone;
    }
    match freeze::thaw(&real) {
        Ok(Thawed::Now) => Outcome::Thawed,
        Ok(Thawed::Already) => Outcome::WasNotFrozen,
        Err(e) => Outcome::ThawFailed(e.to_string()),
    }
}

/// One log line per file handled; the thaw of a frozen filesystem is a warning.
fn log(h: &Handled) {
    let mount = h.mount.as_ref().map(|m| m.display().to_string());
    let mount = mount.as_deref().unwrap_or("");
    let r = h.record.as_ref();
    let left_by = r.map(|r| r.owner.instance.as_str()).unwrap_or("");
    let frozen_at = r.map(|r| r.frozen_at.to_rfc3339()).unwrap_or_default();
    let namespace = r.and_then(|r| r.owner.namespace.as_deref()).unwrap_or("");
    let pvc = r.and_then(|r| r.owner.pvc.as_deref()).unwrap_or("");
    let backup = r.and_then(|r| r.owner.backup.as_deref()).unwrap_or("");
    let record = h.file.as_str();
    match &h.outcome {
        Outcome::Thawed => tracing::warn!(
            record,
            mount,
            left_by,
            frozen_at,
            namespace,
            pvc,
            backup,
            "thawed a filesystem an earlier agent left frozen"
        ),
        Outcome::WasNotFrozen | Outcome::MountGone => tracing::info!(
            record, mount, left_by, frozen_at, namespace, pvc, backup,
            outcome = ?h.outcome,
            "cleared the record of a freeze an earlier agent left: nothing was frozen"
        ),
        Outcome::UnfinishedRemoved => {
            tracing::info!(record, "removed an unfinished freeze record")
        }
        Outcome::HeldByLiveAgent => {
            tracing::info!(
                record,
                "a freeze record is held by a running agent: left to it"
            )
        }
        Outcome::ThawFailed(why) => tracing::error!(
            record,
            mount,
            left_by,
            frozen_at,
            namespace,
            pvc,
            backup,
            "cannot thaw a filesystem an earlier agent left frozen; the record is kept: {why}"
        ),
        Outcome::Kept(why) => {
            tracing::error!(record, mount, "a freeze record is left in place: {why}")
        }
    }
}

/// An Event to publish about a file handled at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The PVC's namespace and name, when the record names them; else the event is about the
    /// node.
    pub pvc: Option<(String, String)>,
    /// Normal or Warning.
    pub kind: EventKind,
    /// `FilesystemThawed`, `FilesystemThawFailed` or `FreezeRecordCleared`.
    pub reason: &'static str,
    /// Which mount, which agent left it frozen, and when it froze it.
    pub note: String,
}

/// The Event for `h`, if it deserves one: a filesystem thawed, one that could not be, or a
/// record of a freeze that had already ended.
pub fn announcement(h: &Handled) -> Option<Announcement> {
    let (kind, reason, what) = match &h.outcome {
        Outcome::Thawed => (
            EventKind::Warning,
            "FilesystemThawed",
            "thawed it".to_string(),
        ),
        Outcome::ThawFailed(why) => (
            EventKind::Warning,
            "FilesystemThawFailed",
            format!("cannot thaw it, it may still be frozen: {why}"),
        ),
        Outcome::WasNotFrozen => (
            EventKind::Normal,
            "FreezeRecordCleared",
            "found it no longer frozen and cleared the record".to_string(),
        ),
        Outcome::MountGone => (
            EventKind::Normal,
            "FreezeRecordCleared",
            "found it no longer mounted and cleared the record".to_string(),
        ),
        Outcome::UnfinishedRemoved | Outcome::HeldByLiveAgent | Outcome::Kept(_) => return None,
    };
    let mount = h.mount.as_ref()?.display();
    let r = h.record.as_ref();
    let by = match r {
        Some(r) => format!("agent {}", r.owner.instance),
        None => "an earlier agent (its record is damaged)".to_string(),
    };
    let at = r
        .map(|r| format!(" at {}", r.frozen_at.to_rfc3339()))
        .unwrap_or_default();
    let backup = r
        .and_then(|r| r.owner.backup.as_deref())
        .map(|b| format!(" for backup {b}"))
        .unwrap_or_default();
    let note = format!(
        "{mount} was frozen by {by}{backup}{at}, which ended without thawing it; at start-up this agent {what}"
    );
    let pvc = r.and_then(|r| Some((r.owner.namespace.clone()?, r.owner.pvc.clone()?)));
    Some(Announcement {
        pvc,
        kind,
        reason,
        note,
    })
}

/// Publishes the Events for the files handled at start-up, as agent `instance` on `node`.
pub async fn announce(client: &Client, instance: &str, node: &str, handled: &[Handled]) {
    for a in handled.iter().filter_map(announcement) {
        let regarding = match &a.pvc {
            Some((namespace, name)) => Regarding::Pvc { namespace, name },
            None => Regarding::Node(node),
        };
        let what = Happened {
            kind: a.kind,
            reason: a.reason,
            action: "Thaw",
            note: &a.note,
        };
        let event = EventAbout { regarding, what };
        publish_on(client, instance, event).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::freeze_record::FreezeOwner;

    const ROOT: &str = "/var/lib/kubelet";
    const MOUNT: &str = "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/pv-1/mount";

    fn record(mount: &str) -> FreezeRecord {
        FreezeRecord {
            mount: mount.into(),
            owner: FreezeOwner {
                instance: "agent-1".into(),
                namespace: Some("db".into()),
                pvc: Some("data".into()),
                backup: Some("nightly-1".into()),
            },
            frozen_at: chrono::DateTime::from_timestamp(1_777_000_000, 0).unwrap(),
        }
    }

    fn found(kind: FileKind, content: Content) -> FoundFile {
        FoundFile {
            name: "freeze-1.record".into(),
            kind,
            content,
        }
    }

    fn record_file(bytes: Vec<u8>) -> FoundFile {
        found(FileKind::Record, Content::Bytes(bytes))
    }

    #[test]
    fn a_record_under_the_kubelet_root_is_thawed() {
        let r = record(MOUNT);
        let step = plan(&record_file(freeze_record::encode(&r)), Path::new(ROOT));
        let expected = Step::Thaw {
            mount: MOUNT.into(),
            record: Some(r),
            damage: None,
        };
        assert_eq!(step, expected);
    }

    #[test]
    fn a_damaged_record_is_thawed_by_the_mount_it_still_names() {
        let bytes = format!("garbage\nmount {MOUNT}\n").into_bytes();
        let Step::Thaw {
            mount,
            record,
            damage,
        } = plan(&record_file(bytes), Path::new(ROOT))
        else {
            panic!("not thawed")
        };
        assert_eq!(mount, Path::new(MOUNT));
        assert_eq!(record, None);
        assert!(damage.unwrap().contains("first line"));
    }

    #[test]
    fn a_record_naming_no_mount_is_kept() {
        let step = plan(&record_file(b"\xff\x00 junk".to_vec()), Path::new(ROOT));
        assert!(matches!(step, Step::Keep(why) if why.contains("naming no mount")));
    }

    #[test]
    fn a_path_outside_the_kubelet_root_is_never_thawed() {
        let hostile = [
            "/",
            "/var/lib/kubelet",
            "/var/lib/kubelet2/pods/x",
            "/var/lib/kubelet/pods/../../../../",
            "/var/lib/kubelet/pods/./x/../..",
            "/etc",
        ];
        for mount in hostile {
            let bytes = freeze_record::encode(&record(mount));
            let step = plan(&record_file(bytes), Path::new(ROOT));
            assert!(matches!(step, Step::Keep(_)), "{mount}: {step:?}");
        }
        let relative_root = plan(
            &record_file(freeze_record::encode(&record(MOUNT))),
            Path::new("var/lib/kubelet"),
        );
        assert!(matches!(relative_root, Step::Keep(_)));
    }

    #[test]
    fn a_held_or_unusable_file_is_left_alone_and_an_unfinished_one_removed() {
        let root = Path::new(ROOT);
        for kind in [FileKind::Record, FileKind::Unfinished] {
            let held = plan(&found(kind, Content::Held), root);
            assert_eq!(held, Step::LeaveToHolder);
            let fifo = Content::Unusable("not a regular file".into());
            assert!(matches!(plan(&found(kind, fifo), root), Step::Keep(_)));
        }
        let half = freeze_record::encode(&record("/"));
        let unfinished = found(FileKind::Unfinished, Content::Bytes(half));
        assert_eq!(plan(&unfinished, root), Step::Remove);
    }

    fn handled(outcome: Outcome, record: Option<FreezeRecord>) -> Handled {
        Handled {
            file: "freeze-1.record".into(),
            mount: Some(MOUNT.into()),
            record,
            outcome,
        }
    }

    #[test]
    fn a_thaw_is_announced_on_the_pvc_with_who_left_it_and_when() {
        let a = announcement(&handled(Outcome::Thawed, Some(record(MOUNT)))).unwrap();
        assert_eq!(a.kind, EventKind::Warning);
        assert_eq!(a.reason, "FilesystemThawed");
        assert_eq!(a.pvc, Some(("db".into(), "data".into())));
        for part in [
            MOUNT,
            "agent agent-1",
            "nightly-1",
            "2026-04-24T03:06:40+00:00",
        ] {
            assert!(a.note.contains(part), "{part} missing from {}", a.note);
        }
    }

    #[test]
    fn without_a_claim_the_announcement_is_about_the_node() {
        let a = announcement(&handled(Outcome::Thawed, None)).unwrap();
        assert_eq!(a.pvc, None);
        assert!(a.note.contains("damaged"), "{}", a.note);
        let mut r = record(MOUNT);
        r.owner.pvc = None;
        let a = announcement(&handled(Outcome::ThawFailed("EPERM".into()), Some(r))).unwrap();
        assert_eq!((a.pvc, a.reason), (None, "FilesystemThawFailed"));
        assert!(a.note.contains("EPERM"));
    }

    #[test]
    fn only_what_touched_a_filesystem_is_announced() {
        let r = Some(record(MOUNT));
        let cleared = announcement(&handled(Outcome::WasNotFrozen, r.clone())).unwrap();
        assert_eq!(
            (cleared.kind, cleared.reason),
            (EventKind::Normal, "FreezeRecordCleared")
        );
        assert!(announcement(&handled(Outcome::MountGone, r.clone())).is_some());
        assert!(announcement(&handled(Outcome::Kept("x".into()), r.clone())).is_none());
        assert!(announcement(&handled(Outcome::UnfinishedRemoved, None)).is_none());
    }
}
