//! Exports the cluster's resources through API discovery: every group and version the server
//! prefers, namespaced and cluster-scoped, custom resources included, as JSON objects ready
//! for [`engine::manifests::backup_manifests`].
//!
//! Lists are paged (`limit`/`continue`) so a large cluster never arrives as one response. A
//! resource that cannot be listed (RBAC, an aggregated API whose service is down) is reported
//! and skipped, as `kubectl get` would; the rest of the export goes on.

use std::collections::BTreeSet;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, ApiResource, Scope, verbs};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which resources to export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportFilter {
    /// Only these namespaces (with their Namespace objects and the definitions of the custom
    /// resources found in them); every namespace and every cluster-scoped resource when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Only these kinds: `Deployment`, a plural such as `deployments`, or `widget.example.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Only objects whose labels match this selector (`app=web,tier!=cache`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// Leave Secrets out.
    #[serde(default)]
    pub exclude_secrets: bool,
    /// Keep each object's status.
    #[serde(default)]
    pub include_status: bool,
}

/// What an export found.
#[derive(Debug, Default)]
pub struct Export {
    /// The objects, each with `apiVersion` and `kind`.
    pub objects: Vec<Value>,
    /// Resources that could not be listed, with why.
    pub warnings: Vec<String>,
}

/// Groups whose objects are not state: resource metrics change every few seconds.
const SKIPPED_GROUPS: &[&str] = &["metrics.k8s.io"];
/// Kinds never worth listing (engine::manifests would drop every object anyway).
const SKIPPED_KINDS: &[&str] = &["Event", "Node", "ComponentStatus", "Lease"];
const PAGE: u32 = 500;

fn wanted_kind(filter: &ExportFilter, ar: &ApiResource) -> bool {
    filter.kinds.is_empty()
        || filter.kinds.iter().any(|k| {
            let k = k.to_ascii_lowercase();
            k == ar.kind.to_ascii_lowercase()
                || k == ar.plural
                || (!ar.group.is_empty()
                    && (k == format!("{}.{}", ar.kind.to_ascii_lowercase(), ar.group)
                        || k == format!("{}.{}", ar.plural, ar.group)))
        })
}

/// The resources to list: each group's preferred version, the core group's `v1`. Groups are
/// discovered one by one, so one whose discovery document fails (an aggregated API whose
/// service is down: its group is listed, its resources are not) is a warning, not the end.
async fn resources(
    client: &Client,
    warnings: &mut Vec<String>,
) -> kube::Result<Vec<(ApiResource, ApiCapabilities)>> {
    let mut versions = vec![GroupVersion::gv("", "v1")];
    for g in client.list_api_groups().await?.groups {
        if SKIPPED_GROUPS.contains(&g.name.as_str()) {
            continue;
        }
        let version = g
            .preferred_version
            .map(|v| v.version)
            .or_else(|| g.versions.first().map(|v| v.version.clone()));
        if let Some(v) = version {
            versions.push(GroupVersion::gv(&g.name, &v));
        }
    }
    let mut out = Vec::new();
    for gv in versions {
        match kube::discovery::pinned_group(client, &gv).await {
            Ok(group) => out.extend(group.recommended_resources().into_iter().filter(
                |(ar, caps)| {
                    caps.supports_operation(verbs::LIST)
                        && !SKIPPED_KINDS.contains(&ar.kind.as_str())
                },
            )),
            Err(e) => warnings.push(format!("cannot discover {}: {e}", gv.api_version())),
        }
    }
    Ok(out)
}

/// A client for exports: kube's default retry policy retries a 503 fifteen times over more
/// than five minutes, which one aggregated API whose service is down would turn into a stalled
/// export; [`list_all`] retries briefly itself instead.
pub fn export_client(mut config: kube::Config) -> kube::Result<Client> {
    config.default_retry = false;
    Client::try_from(config)
}

/// Waits before the retries of a list the server said it could not serve now.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(500), Duration::from_secs(2)];

fn transient(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if matches!(s.code, 429 | 503 | 504))
}

async fn list_all(
    api: &Api<DynamicObject>,
    labels: Option<&str>,
) -> kube::Result<Vec<DynamicObject>> {
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    if let Some(l) = labels {
        params = params.labels(l);
    }
    let mut delays = RETRY_DELAYS.iter();
    loop {
        let page = match api.list(&params).await {
            Ok(page) => page,
            Err(e) if transient(&e) => match delays.next() {
                Some(d) => {
                    tokio::time::sleep(*d).await;
                    continue;
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

/// The objects as JSON, each with its `apiVersion` and `kind`; one that cannot be serialized
/// is left out with a warning, as a resource that cannot be listed is.
fn to_values(
    ar: &ApiResource,
    items: Vec<DynamicObject>,
    warnings: &mut Vec<String>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(items.len());
    for obj in items {
        let name = obj.metadata.name.clone().unwrap_or_default();
        match serde_json::to_value(obj) {
            Ok(mut v) => {
                // List items of built-in types carry no apiVersion or kind: discovery says
                // what they are.
                v["apiVersion"] = Value::String(ar.api_version.clone());
                v["kind"] = Value::String(ar.kind.clone());
                out.push(v);
            }
            Err(e) => warnings.push(format!(
                "cannot serialize {}.{} {name}: {e}",
                ar.plural, ar.group
            )),
        }
    }
    out
}

/// Lists what `filter` asks for.
pub async fn export(client: &Client, filter: &ExportFilter) -> kube::Result<Export> {
    let mut result = Export::default();
    let all = resources(client, &mut result.warnings).await?;
    let labels = filter.label_selector.as_deref();
    for (ar, caps) in &all {
        let is_secret = ar.group.is_empty() && ar.kind == "Secret";
        if !wanted_kind(filter, ar) || (is_secret && filter.exclude_secrets) {
            continue;
        }
        let apis: Vec<Api<DynamicObject>> = match (&caps.scope, filter.namespaces.is_empty()) {
            (Scope::Namespaced, true) | (Scope::Cluster, true) => {
                vec![Api::all_with(client.clone(), ar)]
            }
            (Scope::Namespaced, false) => filter
                .namespaces
                .iter()
                .map(|ns| Api::namespaced_with(client.clone(), ns, ar))
                .collect(),
            // Cluster-scoped objects come with a namespace filter only as what the chosen
            // namespaces need: their Namespace objects and CRDs, added below.
            (Scope::Cluster, false) => continue,
        };
        for api in apis {
            match list_all(&api, labels).await {
                Ok(items) => {
                    let values = to_values(ar, items, &mut result.warnings);
                    result.objects.extend(values);
                }
                Err(e) => result
                    .warnings
                    .push(format!("cannot list {}.{}: {e}", ar.plural, ar.group)),
            }
        }
    }
    let filtered = !filter.namespaces.is_empty() || !filter.kinds.is_empty() || labels.is_some();
    if filtered {
        add_needed(client, &all, filter, &mut result).await;
    }
    Ok(result)
}

/// With a filter: what the chosen objects need to apply, even where the filter leaves it
/// out: the Namespace objects of their namespaces (and of the namespaces asked for), and the
/// CustomResourceDefinitions of their kinds, whatever the group (`*.k8s.io` ones included).
async fn add_needed(
    client: &Client,
    all: &[(ApiResource, ApiCapabilities)],
    filter: &ExportFilter,
    result: &mut Export,
) {
    let kinds: BTreeSet<(String, String)> = result
        .objects
        .iter()
        .map(engine::manifests::normalize::group_kind)
        .collect();
    let mut namespaces: BTreeSet<String> = filter.namespaces.iter().cloned().collect();
    namespaces.extend(
        result
            .objects
            .iter()
            .filter_map(|o| o["metadata"]["namespace"].as_str().map(String::from)),
    );
    let have: BTreeSet<(String, String)> = result
        .objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_string(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    for (ar, _) in all {
        let keep: Box<dyn Fn(&Value) -> bool + Send + Sync> =
            match (ar.group.as_str(), ar.kind.as_str()) {
                ("", "Namespace") => Box::new(|o: &Value| {
                    o["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| namespaces.contains(n))
                }),
                ("apiextensions.k8s.io", "CustomResourceDefinition") => Box::new(|o: &Value| {
                    let g = o["spec"]["group"].as_str().unwrap_or_default().to_string();
                    let k = o["spec"]["names"]["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    kinds.contains(&(g, k))
                }),
                _ => continue,
            };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
        match list_all(&api, None).await {
            Ok(items) => {
                let new: Vec<Value> = to_values(ar, items, &mut result.warnings)
                    .into_iter()
                    .filter(|o| keep(o))
                    .filter(|o| {
                        let key = (
                            ar.kind.clone(),
                            o["metadata"]["name"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                        );
                        !have.contains(&key)
                    })
                    .collect();
                result.objects.extend(new);
            }
            Err(e) => result
                .warnings
                .push(format!("cannot list {}.{}: {e}", ar.plural, ar.group)),
        }
    }
}
