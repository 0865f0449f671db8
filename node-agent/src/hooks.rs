//! Pre and post hooks: commands run in the application's container through the Kubernetes
//! exec API, around a backup. They come from the VolumeBackup's `spec.hooks`, or else from the
//! pod's annotations, in the shape Velero users know, under `kairn.dev`:
//!
//! ```yaml
//! pre.hook.backup.kairn.dev/container: postgres
//! pre.hook.backup.kairn.dev/command: '["psql", "-c", "CHECKPOINT"]'
//! pre.hook.backup.kairn.dev/on-error: Fail        # or Continue
//! pre.hook.backup.kairn.dev/timeout: "30"         # seconds
//! post.hook.backup.kairn.dev/command: '["sh", "-c", "echo done"]'
//! ```
//!
//! Post hooks run whenever pre hooks ran, even if the backup failed, so that an application
//! quiesced by a pre hook is always resumed.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncReadExt;

use crate::crd::{ExecHook, Hooks, OnError};

/// Hooks declared by a pod's annotations (`pre.hook.backup.kairn.dev/...` and `post...`).
pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Result<Option<Hooks>, String> {
    let one = |phase: &str| -> Result<Option<ExecHook>, String> {
        let key = |k: &str| format!("{phase}.hook.backup.kairn.dev/{k}");
        let Some(command) = annotations.get(&key("command")) else {
            return Ok(None);
        };
        let command: Vec<String> =
            serde_json::from_str(command).or_else(|_| Ok::<_, String>(vec![command.clone()]))?;
        if command.is_empty() {
            return Err(format!("{} is empty", key("command")));
        }
        let on_error = match annotations.get(&key("on-error")).map(String::as_str) {
            None | Some("Fail") => OnError::Fail,
            Some("Continue") => OnError::Continue,
            Some(other) => {
                return Err(format!(
                    "{}: {other:?} is neither Fail nor Continue",
                    key("on-error")
                ));
            }
        };
        let timeout_seconds = match annotations.get(&key("timeout")) {
            None => 30,
            Some(t) => t
                .trim_end_matches('s')
                .parse()
                .map_err(|_| format!("{}: {t:?} is not a number of seconds", key("timeout")))?,
        };
        Ok(Some(ExecHook {
            container: annotations.get(&key("container")).cloned(),
            command,
            timeout_seconds,
            on_error,
        }))
    };
    let (pre, post) = (one("pre")?, one("post")?);
    if pre.is_none() && post.is_none() {
        return Ok(None);
    }
    Ok(Some(Hooks {
        pre: pre.into_iter().collect(),
        post: post.into_iter().collect(),
        fsfreeze: false,
    }))
}

/// Runs one hook in `namespace/pod` and waits for it, up to its timeout. `Err` carries what
/// the command printed on stderr (its tail) and its exit status.
pub async fn run(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    hook: &ExecHook,
) -> Result<(), String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut params = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(true);
    if let Some(c) = &hook.container {
        params = params.container(c.clone());
    }
    let limit = Duration::from_secs(u64::from(hook.timeout_seconds.max(1)));
    let exec = async {
        let mut attached = api
            .exec(pod, hook.command.clone(), &params)
            .await
            .map_err(|e| format!("exec failed: {e}"))?;
        let status = attached.take_status();
        let mut stderr = String::new();
        if let Some(mut err) = attached.stderr() {
            let _ = err.read_to_string(&mut stderr).await;
        }
        if let Some(mut out) = attached.stdout() {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink).await;
        }
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        let _ = attached.join().await;
        match status {
            Some(s) if s.status.as_deref() == Some("Success") => Ok(()),
            Some(s) => {
                let tail: String = stderr
                    .trim()
                    .chars()
                    .rev()
                    .take(200)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                Err(format!(
                    "{}{}",
                    s.message.unwrap_or_else(|| "the command failed".into()),
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(": {tail}")
                    }
                ))
            }
            None => Err("no exit status came back".into()),
        }
    };
    match tokio::time::timeout(limit, exec).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {}s", limit.as_secs())),
    }
}

/// Runs a list of hooks in order. Returns the failures a `Continue` hook had, or the first
/// failure of a `Fail` hook (after which the rest do not run).
pub async fn run_all(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    phase: &str,
    hooks: &[ExecHook],
) -> Result<Vec<String>, String> {
    let mut tolerated = Vec::new();
    for hook in hooks {
        let shown = hook.command.join(" ");
        match run(client, namespace, pod, hook).await {
            Ok(()) => tracing::info!(pod, phase, command = %shown, "hook ran"),
            Err(e) => {
                let message = format!("{phase} hook `{shown}` in pod {namespace}/{pod}: {e}");
                tracing::warn!("{message}");
                match hook.on_error {
                    OnError::Fail => return Err(message),
                    OnError::Continue => tolerated.push(message),
                }
            }
        }
    }
    Ok(tolerated)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn annotations_declare_hooks_the_velero_way() {
        let a: BTreeMap<String, String> = [
            ("pre.hook.backup.kairn.dev/container", "db"),
            (
                "pre.hook.backup.kairn.dev/command",
                r#"["psql", "-c", "CHECKPOINT"]"#,
            ),
            ("pre.hook.backup.kairn.dev/on-error", "Continue"),
            ("pre.hook.backup.kairn.dev/timeout", "45s"),
            ("post.hook.backup.kairn.dev/command", "/resume.sh"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let h = from_annotations(&a).unwrap().unwrap();
        assert_eq!(h.pre[0].command, ["psql", "-c", "CHECKPOINT"]);
        assert_eq!(h.pre[0].container.as_deref(), Some("db"));
        assert_eq!(h.pre[0].on_error, OnError::Continue);
        assert_eq!(h.pre[0].timeout_seconds, 45);
        assert_eq!(h.post[0].command, ["/resume.sh"]);
        assert_eq!(h.post[0].on_error, OnError::Fail);
        assert!(from_annotations(&BTreeMap::new()).unwrap().is_none());
        let bad: BTreeMap<String, String> = [
            (
                "pre.hook.backup.kairn.dev/command".to_string(),
                "x".to_string(),
            ),
            (
                "pre.hook.backup.kairn.dev/on-error".to_string(),
                "Maybe".to_string(),
            ),
        ]
        .into_iter()
        .collect();
        assert!(from_annotations(&bad).is_err());
    }
}
