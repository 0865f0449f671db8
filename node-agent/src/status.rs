//! Writing a resource's status: the conditional claim, progress, and the final outcome. Every
//! write is a JSON merge patch of the `status` subresource; nothing secret ever goes in.

use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The current time as RFC 3339, as status timestamps are written.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Patches `status` of `name`; with `resource_version`, only if the resource is unchanged since
/// it was read (the API server answers 409 Conflict otherwise).
pub async fn patch<K>(
    api: &Api<K>,
    name: &str,
    resource_version: Option<&str>,
    status: Value,
) -> Result<(), kube::Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut body = json!({ "status": status });
    if let Some(rv) = resource_version {
        body["metadata"] = json!({ "resourceVersion": rv });
    }
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map(|_| ())
}

/// True when the API refused a conditional write because someone else wrote first.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Patches with a few retries: a final status must not be lost to one failed request. If it
/// is lost anyway, the resource stays `InProgress` under this instance and the next reconcile
/// starts it again (a repeated backup or restore is cheap and safe).
pub async fn patch_final<K>(api: &Api<K>, name: &str, status: Value)
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    for attempt in 1..=5u32 {
        match patch(api, name, None, status.clone()).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(resource = name, attempt, "cannot record the outcome: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
        }
    }
}

/// Error texts for a status: at most `max`, each at most 300 characters, and a count of the rest.
pub fn error_list(messages: &[String], max: usize) -> Vec<String> {
    let mut out: Vec<String> = messages
        .iter()
        .take(max)
        .map(|m| {
            if m.len() > 300 {
                let mut cut = 300;
                while !m.is_char_boundary(cut) {
                    cut -= 1;
                }
                format!("{}…", &m[..cut])
            } else {
                m.clone()
            }
        })
        .collect();
    if messages.len() > max {
        out.push(format!("… and {} more", messages.len() - max));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_error_lists_are_cut_and_counted() {
        let many: Vec<String> = (0..15).map(|i| format!("e{i}")).collect();
        let out = error_list(&many, 10);
        assert_eq!(out.len(), 11);
        assert_eq!(out[10], "… and 5 more");
        let long = vec!["é".repeat(400)];
        assert!(error_list(&long, 10)[0].chars().count() <= 301);
    }
}
