//! Where a pod's volumes are on the node, read from the kubelet's own directory layout (see
//! `kubelet_getters.go` and `csi_block.go` upstream), with no Kubernetes API involved:
//!
//! - filesystem volumes: `<pods>/<pod uid>/volumes/<escaped plugin>/<volume dir>`, where the
//!   plugin name has `/` escaped as `~` (`kubernetes.io~csi`) and CSI volumes hold their data in
//!   a `mount` subdirectory beside `vol_data.json`;
//! - block volumes: `<pods>/<pod uid>/volumeDevices/<escaped plugin>/<volume dir>`, a device (or
//!   a symlink to one under the kubelet's `plugins` directory).
//!
//! The volume directory is the PV name for persistent volumes and the volume's name in the pod
//! spec otherwise; mapping a pod's spec to it needs the API and lives elsewhere.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The pod has no directory under the kubelet's pods directory (not on this node, or gone).
    #[error("pod {uid} has no volumes on this node ({path})")]
    PodNotFound {
        /// The pod's uid.
        uid: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// No volume directory of that name.
    #[error("pod {uid} has no volume directory {dir:?}")]
    VolumeNotFound {
        /// The pod's uid.
        uid: String,
        /// The volume directory looked for.
        dir: String,
    },
    /// More than one plugin holds a directory of that name; refusing to guess.
    #[error("pod {uid} has {count} volume directories named {dir:?}; expected exactly one")]
    Ambiguous {
        /// The pod's uid.
        uid: String,
        /// The volume directory looked for.
        dir: String,
        /// How many matched.
        count: usize,
    },
    /// A pod uid or volume directory that is not a single path component.
    #[error("{0:?} is not a valid pod uid or volume directory name")]
    BadName(String),
    /// The kubelet's tree could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
}

/// How a volume is presented to the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeMode {
    /// A mounted filesystem.
    Filesystem,
    /// A raw block device.
    Block,
}

/// What the CSI plugin records next to a volume's mount (`vol_data.json`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CsiVolumeData {
    /// The CSI driver, such as `ebs.csi.aws.com`.
    #[serde(rename = "driverName")]
    pub driver_name: String,
    /// The driver's id of the volume.
    #[serde(rename = "volumeHandle")]
    pub volume_handle: String,
    /// The PV name, when the kubelet recorded it.
    #[serde(rename = "specVolID", default)]
    pub spec_volume_id: Option<String>,
}

/// One volume of one pod, as laid out on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodVolume {
    /// The pod's uid.
    pub pod_uid: String,
    /// The volume plugin, unescaped (`kubernetes.io/csi`).
    pub plugin: String,
    /// The volume directory: the PV name, or the volume's name in the pod spec.
    pub dir: String,
    /// Filesystem or block.
    pub mode: VolumeMode,
    /// What to read: the filesystem root (CSI: its `mount` subdirectory), or the device.
    pub data_path: PathBuf,
    /// The CSI plugin's record, for CSI filesystem volumes that have one.
    pub csi: Option<CsiVolumeData>,
}

impl PodVolume {
    /// True for volume types that are never backed up by default: their content comes from
    /// the API (secrets, config maps, projected and downward-API volumes), not from the pod.
    pub fn is_api_content(&self) -> bool {
        matches!(
            self.plugin.as_str(),
            "kubernetes.io/secret"
                | "kubernetes.io/configmap"
                | "kubernetes.io/projected"
                | "kubernetes.io/downward-api"
        )
    }
}

/// The kubelet's directory of pods, such as `/var/lib/kubelet/pods` (or where the agent
/// mounts it).
#[derive(Debug, Clone)]
pub struct KubeletPods {
    root: PathBuf,
}

/// `kubernetes.io~csi` → `kubernetes.io/csi` (the kubelet's `EscapeQualifiedName`, reversed).
pub fn unescape_plugin(escaped: &str) -> String {
    escaped.replace('~', "/")
}

fn single_component(name: &str) -> Result<&str, DiscoveryError> {
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(_)), None) => Ok(name),
        _ => Err(DiscoveryError::BadName(name.to_string())),
    }
}

fn read_dir_names(path: &Path) -> Result<Vec<String>, DiscoveryError> {
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(DiscoveryError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DiscoveryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // Names the kubelet wrote are UTF-8; anything else is not one of its volumes.
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

impl KubeletPods {
    /// The pods directory itself.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Every volume of a pod, filesystem and block, sorted by plugin and directory.
    pub fn volumes(&self, pod_uid: &str) -> Result<Vec<PodVolume>, DiscoveryError> {
        let pod = self.root.join(single_component(pod_uid)?);
        if !pod.is_dir() {
            return Err(DiscoveryError::PodNotFound {
                uid: pod_uid.to_string(),
                path: pod,
            });
        }
        let mut found = Vec::new();
        for (sub, mode) in [
            ("volumes", VolumeMode::Filesystem),
            ("volumeDevices", VolumeMode::Block),
        ] {
            let base = pod.join(sub);
            for escaped in read_dir_names(&base)? {
                for dir in read_dir_names(&base.join(&escaped))? {
                    found.push(self.volume_at(pod_uid, &base.join(&escaped), &escaped, dir, mode));
                }
            }
        }
        Ok(found)
    }

    /// The one volume of a pod whose directory is `dir`, under whatever plugin.
    pub fn volume(&self, pod_uid: &str, dir: &str) -> Result<PodVolume, DiscoveryError> {
        single_component(dir)?;
        let mut matches: Vec<PodVolume> = self
            .volumes(pod_uid)?
            .into_iter()
            .filter(|v| v.dir == dir)
            .collect();
        match matches.len() {
            1 => Ok(matches.remove(0)),
            0 => Err(DiscoveryError::VolumeNotFound {
                uid: pod_uid.to_string(),
                dir: dir.to_string(),
            }),
            count => Err(DiscoveryError::Ambiguous {
                uid: pod_uid.to_string(),
                dir: dir.to_string(),
                count,
            }),
        }
    }

    fn volume_at(
        &self,
        pod_uid: &str,
        plugin_dir: &Path,
        escaped: &str,
        dir: String,
        mode: VolumeMode,
    ) -> PodVolume {
        let plugin = unescape_plugin(escaped);
        let path = plugin_dir.join(&dir);
        let is_csi = plugin == "kubernetes.io/csi";
        let (data_path, csi) = match mode {
            VolumeMode::Filesystem if is_csi => {
                let csi = std::fs::read(path.join("vol_data.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                (path.join("mount"), csi)
            }
            _ => (path, None),
        };
        PodVolume {
            pod_uid: pod_uid.to_string(),
            plugin,
            dir,
            mode,
            data_path,
            csi,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const UID: &str = "8d1c2b7e-0000-4000-8000-000000000001";

    /// A kubelet-shaped tree: a CSI PV with its record, an emptyDir, a secret, and a block PV
    /// whose device entry is a symlink into the plugins directory.
    fn kubelet() -> (tempfile::TempDir, KubeletPods) {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().join("pods");
        let vols = pods.join(UID).join("volumes");
        let csi = vols.join("kubernetes.io~csi/pvc-1234");
        fs::create_dir_all(csi.join("mount")).unwrap();
        fs::write(csi.join("mount/data.db"), b"rows").unwrap();
        fs::write(
            csi.join("vol_data.json"),
            br#"{"driverName":"ebs.csi.aws.com","volumeHandle":"vol-0abc","specVolID":"pvc-1234","attachmentID":"x"}"#,
        )
        .unwrap();
        fs::create_dir_all(vols.join("kubernetes.io~empty-dir/scratch")).unwrap();
        fs::create_dir_all(vols.join("kubernetes.io~secret/token")).unwrap();
        let device = dir
            .path()
            .join("plugins/kubernetes.io/csi/volumeDevices/pvc-blk/dev/x");
        fs::create_dir_all(device.parent().unwrap()).unwrap();
        fs::write(&device, vec![0u8; 4096]).unwrap();
        let devs = pods.join(UID).join("volumeDevices/kubernetes.io~csi");
        fs::create_dir_all(&devs).unwrap();
        std::os::unix::fs::symlink(&device, devs.join("pvc-blk")).unwrap();
        (dir, KubeletPods::new(pods))
    }

    #[test]
    fn finds_every_volume_the_way_the_kubelet_lays_them_out() {
        let (_dir, pods) = kubelet();
        let found = pods.volumes(UID).unwrap();
        let summary: Vec<(&str, &str, VolumeMode)> = found
            .iter()
            .map(|v| (v.plugin.as_str(), v.dir.as_str(), v.mode))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("kubernetes.io/csi", "pvc-1234", VolumeMode::Filesystem),
                ("kubernetes.io/empty-dir", "scratch", VolumeMode::Filesystem),
                ("kubernetes.io/secret", "token", VolumeMode::Filesystem),
                ("kubernetes.io/csi", "pvc-blk", VolumeMode::Block),
            ]
        );
        let csi = &found[0];
        assert!(csi.data_path.ends_with("pvc-1234/mount"));
        assert_eq!(fs::read(csi.data_path.join("data.db")).unwrap(), b"rows");
        let record = csi.csi.as_ref().unwrap();
        assert_eq!(record.driver_name, "ebs.csi.aws.com");
        assert_eq!(record.volume_handle, "vol-0abc");
        assert_eq!(record.spec_volume_id.as_deref(), Some("pvc-1234"));
        assert!(found[2].is_api_content());
        assert!(!found[0].is_api_content() && !found[1].is_api_content());
        // The block device is reached through the kubelet's symlink.
        assert_eq!(fs::read(&found[3].data_path).unwrap().len(), 4096);
    }

    #[test]
    fn one_volume_by_its_directory_exactly_once() {
        let (dir, pods) = kubelet();
        assert_eq!(
            pods.volume(UID, "scratch").unwrap().plugin,
            "kubernetes.io/empty-dir"
        );
        assert!(matches!(
            pods.volume(UID, "nope"),
            Err(DiscoveryError::VolumeNotFound { .. })
        ));
        fs::create_dir_all(
            dir.path()
                .join("pods")
                .join(UID)
                .join("volumes/kubernetes.io~nfs/scratch"),
        )
        .unwrap();
        assert!(matches!(
            pods.volume(UID, "scratch"),
            Err(DiscoveryError::Ambiguous { count: 2, .. })
        ));
    }

    #[test]
    fn unknown_pods_and_unsafe_names_are_refused() {
        let (_dir, pods) = kubelet();
        assert!(matches!(
            pods.volumes("no-such-pod"),
            Err(DiscoveryError::PodNotFound { .. })
        ));
        for bad in ["..", "../x", "/etc", "", "a/b"] {
            assert!(
                matches!(pods.volumes(bad), Err(DiscoveryError::BadName(_))),
                "{bad}"
            );
            assert!(
                matches!(pods.volume(UID, bad), Err(DiscoveryError::BadName(_))),
                "{bad}"
            );
        }
    }
}
