//! The node agent: a DaemonSet pod that finds the pod volumes mounted on its node, backs them up
//! into the repository and restores them (issue 7). Work in progress: the custom resources and
//! volume discovery so far.

pub mod crd;
pub mod volume_path;
