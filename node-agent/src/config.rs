//! How the agent is set up: the settings every reconciler reads.

use std::path::PathBuf;
use std::time::Duration;

use crate::decide::Me;
use crate::freeze_state::StateDir;
use crate::mount_pod::MountPodSettings;

/// How the agent is set up.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This node's name (the downward API's `spec.nodeName`).
    pub node: String,
    /// This process's instance id: differs after every restart.
    pub instance: String,
    /// The kubelet's `pods` directory, as mounted into the agent.
    pub kubelet_pods: PathBuf,
    /// The cluster's name, recorded in snapshots.
    pub cluster: Option<String>,
    /// The most backups and restores running at once on this node.
    pub max_concurrent: usize,
    /// The most attempts a resource gets across agent restarts.
    pub max_attempts: u32,
    /// How often to reconcile.
    pub resync: Duration,
    /// How often the leading agent sweeps finished objects (expiry, schedule statuses).
    pub history: Duration,
    /// How often the leading agent syncs resources from the repository (`None`: never).
    pub repo_sync: Option<Duration>,
    /// How often a running job's progress is written to its status.
    pub progress_interval: Duration,
    /// The agent's own namespace: only VolumeRestores there may cross namespaces or target a
    /// path on a node.
    pub admin_namespace: String,
    /// The longest a volume's filesystem stays frozen (`hooks.fsfreeze`) before the watchdog
    /// thaws it.
    pub freeze_limit: Duration,
    /// Where freezes are recorded while they last, for the next agent if this one dies.
    pub state_dir: StateDir,
    /// How long this agent's Lease lasts unrenewed, in seconds: past it, other agents take
    /// this node's work over or fail it as "node lost".
    pub lease_seconds: i32,
    /// Apply a schedule's retention after its backups. Off with an append-only key: then
    /// retention and prune are the maintenance workload's (`kairn-maintenance`).
    pub retention: bool,
    /// How mount pods are made, for volumes no running pod mounts.
    pub mount_pod: MountPodSettings,
}

impl AgentConfig {
    /// Who decides, for [`crate::decide::decide`].
    pub fn me(&self) -> Me<'_> {
        Me {
            node: &self.node,
            instance: &self.instance,
            max_attempts: self.max_attempts,
        }
    }

    /// Three resyncs: the time every agent has had to see a resource.
    pub fn grace(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.resync * 3).unwrap_or_default()
    }
}
