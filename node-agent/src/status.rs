//! Writing a resource's status: the conditional claim, progress, and the final outcome. Every
//! write is a JSON merge patch of the `status` subresource ([`crate::patch`] has their types);
//! nothing secret ever goes in.

use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The current time as RFC 3339, as status timestamps are written.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The body of a status patch: the status, and the resource version it is conditional on.
#[derive(Debug, Serialize)]
struct Body<'a, S> {
    status: &'a S,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Conditional<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Conditional<'a> {
    resource_version: &'a str,
}

/// Patches `status` of `name`; with `resource_version`, only if the resource is unchanged since
/// it was read (the API server answers 409 Conflict otherwise). A patch that cannot be
/// serialized is an error, as a failed request is.
pub async fn patch<K, S>(
    api: &Api<K>,
    name: &str,
    resource_version: Option<&str>,
    status: &S,
) -> Result<(), kube::Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + std::fmt::Debug,
{
    let body = Body {
        status,
        metadata: resource_version.map(|rv| Conditional {
            resource_version: rv,
        }),
    };
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
pub async fn patch_final<K, S>(api: &Api<K>, name: &str, status: &S)
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + std::fmt::Debug,
{
    for attempt in 1..=5u32 {
        match patch(api, name, None, status).await {
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
    fn a_conditional_patch_carries_the_resource_version() {
        let status = serde_json::json!({"phase": "Canceled"});
        let body = Body {
            status: &status,
            metadata: Some(Conditional {
                resource_version: "7",
            }),
        };
        let old = serde_json::json!({"status": status, "metadata": {"resourceVersion": "7"}});
        assert_eq!(serde_json::to_value(&body).unwrap(), old);
        let body = Body {
            status: &status,
            metadata: None,
        };
        let old = serde_json::json!({ "status": status });
        assert_eq!(serde_json::to_value(&body).unwrap(), old);
    }

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
