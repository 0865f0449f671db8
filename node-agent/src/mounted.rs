//! Is a volume really mounted? The kubelet creates a CSI volume's `mount` directory before the
//! driver mounts anything there, and a pod's containers start only once all its volumes are
//! mounted. Reading the bare directory would back up nothing (and make that empty snapshot the
//! PVC's latest); writing to it would fill the node's own filesystem. So the agent touches a
//! volume only when its pod has a running container and the directory is a mount point.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

/// Why a pod's volumes may not be mounted yet, or `None` when they are: the pod runs, or one of
/// its (init) containers does, which the kubelet starts only after mounting every volume.
pub fn pod_not_started(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if phase == "Running" {
        return None;
    }
    let running = status.into_iter().any(|s| {
        let all = s
            .init_container_statuses
            .iter()
            .chain(&s.container_statuses);
        all.flatten()
            .any(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()))
    });
    if running {
        return None;
    }
    Some(format!(
        "pod {name} is {phase} and none of its containers has started, so its volumes may not \
         be mounted yet"
    ))
}

/// Undoes the octal escapes (`\040` for a space) of a path in `/proc/self/mountinfo`.
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                let value = d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The mount points listed in a `/proc/<pid>/mountinfo` text (its fifth field).
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape)
        .collect()
}

/// True when `path` is the root of a mount: its device differs from its parent's, or this
/// process's mount table lists it (a bind mount of the same filesystem, as some CSI drivers
/// make, keeps the device).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    if let (Ok(here), Ok(parent)) = (std::fs::metadata(&path), std::fs::metadata(path.join("..")))
        && here.dev() != parent.dev()
    {
        return true;
    }
    std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|table| mount_points(&table).contains(&path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mountinfo_lines_give_their_mount_points_unescaped() {
        let table = "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n\
             90 22 253:1 /var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/pv\\040a/mount \
             /var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/pv\\040a/mount rw shared:1 - ext4 \
             /dev/vda1 rw\n";
        assert_eq!(
            mount_points(table),
            vec![
                PathBuf::from("/"),
                PathBuf::from("/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/pv a/mount"),
            ]
        );
        assert_eq!(unescape("a\\134b\\"), PathBuf::from("a\\b\\"));
        assert_eq!(unescape("x\\9"), PathBuf::from("x\\9"));
    }

    #[test]
    fn a_plain_directory_is_no_mount_point_and_the_root_is() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mount")).unwrap();
        assert!(!is_mount_point(&dir.path().join("mount")));
        assert!(!is_mount_point(&dir.path().join("missing")));
        assert!(is_mount_point(Path::new("/")));
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "db-0"}, "status": status}))
            .unwrap()
    }

    #[test]
    fn a_pod_counts_as_started_once_a_container_runs() {
        assert!(pod_not_started(&pod(serde_json::json!({"phase": "Running"}))).is_none());
        let waiting = pod_not_started(&pod(serde_json::json!({"phase": "Pending"}))).unwrap();
        assert!(waiting.contains("db-0 is Pending"), "{waiting}");
        let init = serde_json::json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "wait", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"running": {}}}]});
        assert!(pod_not_started(&pod(init)).is_none());
        let created = serde_json::json!({"phase": "Pending", "containerStatuses": [
            {"name": "app", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ContainerCreating"}}}]});
        assert!(pod_not_started(&pod(created)).is_some());
    }
}
