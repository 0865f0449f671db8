//! `--wait`: follow a backup or restore to its final phase, telling on stderr how far it is,
//! and turn that phase into the exit code.

use std::time::Duration;

use anyhow::{Context as _, Result};
use kube::api::Api;
use node_agent::crd::{ClusterBackup, NamespaceRestore, Phase, VolumeBackup, VolumeRestore};
use serde::de::DeserializeOwned;

use crate::exit::{Coded, ERROR, OK, PARTIAL, TIMEOUT};
use crate::format;

/// What `--wait` needs to know of a resource's status.
pub trait Followed {
    /// The phase, `New` before an agent wrote any status.
    fn phase(&self) -> Phase;
    /// How far it is, in a few words, if it says.
    fn progress(&self) -> String;
    /// What went wrong.
    fn errors(&self) -> Vec<String>;
}

impl Followed for VolumeBackup {
    fn phase(&self) -> Phase {
        self.status.as_ref().map(|s| s.phase).unwrap_or_default()
    }
    fn progress(&self) -> String {
        let Some(s) = &self.status else {
            return String::new();
        };
        let node = s.node.as_deref().unwrap_or("-");
        let waiting = s.waiting.as_deref().map(|w| format!(", {w}"));
        format!(
            "node {node}: {} read, {} files{}",
            format::bytes(s.progress.bytes_done),
            s.progress.files_done,
            waiting.unwrap_or_default()
        )
    }
    fn errors(&self) -> Vec<String> {
        self.status
            .as_ref()
            .map(|s| s.errors.clone())
            .unwrap_or_default()
    }
}

impl Followed for VolumeRestore {
    fn phase(&self) -> Phase {
        self.status.as_ref().map(|s| s.phase).unwrap_or_default()
    }
    fn progress(&self) -> String {
        let Some(s) = &self.status else {
            return String::new();
        };
        let node = s.node.as_deref().unwrap_or("-");
        let total = s.progress.bytes_total.map(format::bytes);
        format!(
            "node {node}: {} of {} written, {} files",
            format::bytes(s.progress.bytes_done),
            total.as_deref().unwrap_or("?"),
            s.progress.files_done
        )
    }
    fn errors(&self) -> Vec<String> {
        self.status
            .as_ref()
            .map(|s| s.errors.clone())
            .unwrap_or_default()
    }
}

impl Followed for NamespaceRestore {
    fn phase(&self) -> Phase {
        self.status.as_ref().map(|s| s.phase).unwrap_or_default()
    }
    fn progress(&self) -> String {
        let Some(s) = &self.status else {
            return String::new();
        };
        let done = s.volumes.iter().filter(|v| v.phase.is_final()).count();
        format!(
            "stage {:?}: {} objects applied, volumes {done}/{}",
            s.stage,
            s.objects.applied,
            s.volumes.len()
        )
    }
    fn errors(&self) -> Vec<String> {
        self.status
            .as_ref()
            .map(|s| s.failures.clone())
            .unwrap_or_default()
    }
}

impl Followed for ClusterBackup {
    fn phase(&self) -> Phase {
        self.status.as_ref().map(|s| s.phase).unwrap_or_default()
    }
    fn progress(&self) -> String {
        let Some(s) = &self.status else {
            return String::new();
        };
        format!(
            "volumes {}/{} done, {} failed",
            s.volumes.completed, s.volumes.total, s.volumes.failed
        )
    }
    fn errors(&self) -> Vec<String> {
        let parts = self.status.as_ref().into_iter().flat_map(|s| {
            let etcd = s.etcd.iter().map(|p| ("etcd", p));
            let manifests = s.manifests.iter().map(|p| ("manifests", p));
            etcd.chain(manifests)
                .chain(s.images.iter().map(|p| ("images", p)))
        });
        parts
            .flat_map(|(what, p)| p.messages.iter().map(move |m| format!("{what}: {m}")))
            .collect()
    }
}

/// The object at its end, and the exit code its phase gives.
pub struct Done<K> {
    /// The object as last read.
    pub object: K,
    /// [`OK`], [`PARTIAL`] or [`ERROR`].
    pub code: u8,
}

/// The exit code of a final phase.
pub fn code_of(phase: Phase) -> u8 {
    match phase {
        Phase::Completed => OK,
        Phase::PartiallyFailed => PARTIAL,
        _ => ERROR,
    }
}

/// Reads `name` every second until its phase is final or `timeout` passed, printing each
/// change of phase or progress on stderr.
pub async fn follow<K>(api: &Api<K>, name: &str, timeout: Duration) -> Result<Done<K>>
where
    K: Followed + Clone + DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let obj = api
            .get(name)
            .await
            .with_context(|| format!("cannot read {name}"))?;
        let phase = obj.phase();
        let line = format!("{name}: {phase:?} {}", obj.progress());
        if line != last {
            eprintln!("{}", line.trim_end());
            last = line;
        }
        if phase.is_final() {
            for e in obj.errors() {
                eprintln!("  error: {e}");
            }
            let code = code_of(phase);
            return Ok(Done { object: obj, code });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Coded::error(
                TIMEOUT,
                format!(
                    "{name} is still {phase:?} after {}; it goes on (kubectl kairn describe {name})",
                    format::span(timeout.as_secs() as i64)
                ),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_phases_map_to_exit_codes() {
        assert_eq!(code_of(Phase::Completed), OK);
        assert_eq!(code_of(Phase::PartiallyFailed), PARTIAL);
        assert_eq!(code_of(Phase::Failed), ERROR);
        assert_eq!(code_of(Phase::Canceled), ERROR);
    }
}
