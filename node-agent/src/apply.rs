//! Restored objects of any kind, put back by server-side apply under Kairn's field manager,
//! the way `kubectl apply --server-side` would, so later edits by their owners merge cleanly.

use std::collections::HashMap;

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope, pinned_kind};
use serde_json::Value;

use crate::crd::ExistingResourcePolicy;

/// The field manager of every restored object.
pub const FIELD_MANAGER: &str = "kairn-restore";
/// The label naming the NamespaceRestore that created or updated an object.
pub const RESTORED_BY: &str = "kairn.dev/restored-by";

/// What became of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Created or updated.
    Applied,
    /// Left alone, for this reason.
    Skipped(String),
    /// Refused, for this reason.
    Failed(String),
}

/// Applies objects for one restore, remembering the API resource of each kind it met.
pub struct Applier {
    client: Client,
    policy: ExistingResourcePolicy,
    restore: String,
    kinds: HashMap<GroupVersionKind, Result<(ApiResource, ApiCapabilities), String>>,
}

impl Applier {
    /// An applier for the NamespaceRestore `restore`.
    pub fn new(client: Client, policy: ExistingResourcePolicy, restore: &str) -> Self {
        Self {
            client,
            policy,
            restore: restore.to_string(),
            kinds: HashMap::new(),
        }
    }

    /// Applies `obj`, unless it exists and the policy is Skip. An object that this restore
    /// itself applied before (an agent taking over midway) is applied again, not skipped.
    pub async fn apply(&mut self, obj: &Value) -> Outcome {
        let api = match self.api_for(obj).await {
            Ok(api) => api,
            Err(why) => return Outcome::Failed(why),
        };
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        if self.policy == ExistingResourcePolicy::Skip {
            match api.get_opt(name).await {
                Ok(Some(existing)) if !self.restored_by_us(&existing) => {
                    return Outcome::Skipped("it exists (existingResourcePolicy: Skip)".into());
                }
                Ok(_) => {}
                Err(e) => return Outcome::Failed(format!("cannot read it: {e}")),
            }
        }
        let mut obj = obj.clone();
        if self.restore.len() <= 63 {
            obj["metadata"]["labels"][RESTORED_BY] = Value::String(self.restore.clone());
        }
        let object: DynamicObject = match serde_json::from_value(obj) {
            Ok(o) => o,
            Err(e) => return Outcome::Failed(format!("not a Kubernetes object: {e}")),
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api.patch(name, &params, &Patch::Apply(&object)).await {
            Ok(_) => Outcome::Applied,
            Err(kube::Error::Api(s)) if s.code == 403 => Outcome::Failed(format!(
                "{} (restoring objects takes the role in deploy/rbac-restore.yaml)",
                s.message
            )),
            Err(kube::Error::Api(s)) => Outcome::Failed(s.message),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    fn restored_by_us(&self, existing: &DynamicObject) -> bool {
        let labels = existing.metadata.labels.as_ref();
        labels.and_then(|l| l.get(RESTORED_BY)) == Some(&self.restore)
    }

    async fn api_for(&mut self, obj: &Value) -> Result<Api<DynamicObject>, String> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let kind = obj["kind"].as_str().unwrap_or_default();
        let gvk = GroupVersionKind::gvk(group, version, kind);
        if !self.kinds.contains_key(&gvk) {
            let found = pinned_kind(&self.client, &gvk)
                .await
                .map_err(|e| format!("the API server does not serve {api_version} {kind}: {e}"));
            self.kinds.insert(gvk.clone(), found);
        }
        let (resource, caps) = self.kinds[&gvk].clone()?;
        let client = self.client.clone();
        match (&caps.scope, obj["metadata"]["namespace"].as_str()) {
            (Scope::Namespaced, Some(ns)) => Ok(Api::namespaced_with(client, ns, &resource)),
            (Scope::Cluster, _) => Ok(Api::all_with(client, &resource)),
            (Scope::Namespaced, None) => Err(format!("{kind} is namespaced but has no namespace")),
        }
    }

    /// Forgets the kinds it found not served: after the CRDs were applied, they may be now.
    pub fn forget_unserved(&mut self) {
        self.kinds.retain(|_, found| found.is_ok());
    }
}
