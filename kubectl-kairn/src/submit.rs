//! `backup`, `restore` and `restore-namespace`: each creates one resource for the agents, and
//! with `--wait` follows it to its end.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};
use node_agent::crd::{
    ExistingResourcePolicy, NamespaceRestore, NamespaceRestoreSpec, RestoreTarget, VolumeBackup,
    VolumeBackupSpec, VolumeRestore, VolumeRestoreSpec,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Ctx;
use crate::args::{BackupArgs, Output, RestoreArgs, RestoreNamespaceArgs, WaitArgs};
use crate::exit::{Coded, OK, USAGE};
use crate::wait::{self, Followed};

/// Marks what this plugin created, for `kubectl get -l`.
const CREATED_BY: (&str, &str) = ("app.kubernetes.io/created-by", "kubectl-kairn");

/// `NAMESPACE/NAME`, or `NAME` in `default_ns`.
pub fn split_ref(text: &str, default_ns: &str) -> Result<(String, String)> {
    let (ns, name) = match text.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (default_ns, text),
    };
    if ns.is_empty() || name.is_empty() || name.contains('/') {
        return Err(Coded::error(
            USAGE,
            format!("{text:?}: give NAMESPACE/PVC or PVC"),
        ));
    }
    Ok((ns.to_string(), name.to_string()))
}

/// A generated name's prefix: the base, cut so the name stays a valid object name.
fn prefix(base: &str) -> String {
    let mut p: String = base.chars().take(200).collect();
    p = p.trim_end_matches(['-', '.']).to_string();
    p.push('-');
    p
}

fn labels() -> Option<BTreeMap<String, String>> {
    Some([(CREATED_BY.0.to_string(), CREATED_BY.1.to_string())].into())
}

/// The VolumeBackup `backup NS/PVC` creates.
pub fn volume_backup(ns: &str, pvc: &str, a: &BackupArgs) -> VolumeBackup {
    let spec = VolumeBackupSpec {
        pvc: pvc.to_string(),
        tags: a.tags.clone(),
        hooks: None,
        cancel: false,
        cluster_backup: None,
        ttl: a.ttl.clone(),
    };
    let mut vb = VolumeBackup::new("", spec);
    vb.metadata.name = None;
    vb.metadata.generate_name = Some(prefix(pvc));
    vb.metadata.namespace = Some(ns.to_string());
    vb.metadata.labels = labels();
    vb
}

/// The VolumeRestore `restore SNAPSHOT --to NS/PVC [--from NS/PVC]` creates. A restore within
/// one namespace lives there, so a tenant may create it; one across namespaces lives in the
/// agents' namespace, as the agents require (only administrators create those).
pub fn volume_restore(
    snapshot: &str,
    to: (&str, &str),
    from: (&str, &str),
    admin_namespace: &str,
) -> VolumeRestore {
    let latest = snapshot == "latest";
    let same = to.0 == from.0;
    let spec = VolumeRestoreSpec {
        snapshot: snapshot.to_string(),
        source_namespace: (!same).then(|| from.0.to_string()),
        source_pvc: latest.then(|| from.1.to_string()),
        target: RestoreTarget::Pvc(to.1.to_string()),
        node: None,
        target_namespace: (!same).then(|| to.0.to_string()),
        cancel: false,
        ttl: None,
    };
    let mut vr = VolumeRestore::new("", spec);
    vr.metadata.name = None;
    vr.metadata.generate_name = Some(prefix(&format!("{}-restore", to.1)));
    vr.metadata.namespace = Some(if same { to.0 } else { admin_namespace }.to_string());
    vr.metadata.labels = labels();
    vr
}

/// The NamespaceRestore `restore-namespace` creates.
pub fn namespace_restore(a: &RestoreNamespaceArgs) -> Result<NamespaceRestore> {
    let mut mapping = BTreeMap::new();
    for m in &a.mappings {
        let Some((old, new)) = m.split_once('=') else {
            return Err(Coded::error(USAGE, format!("--map {m:?}: give OLD=NEW")));
        };
        mapping.insert(old.to_string(), new.to_string());
    }
    let policy: ExistingResourcePolicy = serde_json::from_value(serde_json::Value::String(
        a.existing_resource_policy.clone(),
    ))
    .map_err(|_| {
        Coded::error(
            USAGE,
            format!(
                "--existing-resource-policy {:?}: Skip or Update",
                a.existing_resource_policy
            ),
        )
    })?;
    let spec = NamespaceRestoreSpec {
        cluster_backup: a.backup.clone(),
        series: a.series.clone(),
        namespaces: a.namespaces.clone(),
        namespace_mapping: mapping,
        include_kinds: Vec::new(),
        exclude_kinds: Vec::new(),
        exclude_secrets: a.exclude_secrets,
        existing_resource_policy: policy,
        volumes: !a.no_volumes,
        etcd: false,
        images: a
            .push_images_to
            .clone()
            .map(|push_to| node_agent::crd::RestoreImages {
                push_to,
                credentials_secret: a.registry_secret.clone(),
                insecure_registries: Vec::new(),
            }),
        ttl: None,
    };
    let base = a
        .backup
        .as_deref()
        .or(a.series.as_deref())
        .unwrap_or("restore");
    let mut nsr = NamespaceRestore::new("", spec);
    nsr.metadata.name = None;
    nsr.metadata.generate_name = Some(prefix(&format!("restore-{base}")));
    nsr.metadata.labels = labels();
    Ok(nsr)
}

/// `backup NS/PVC`.
pub async fn backup(ctx: &Ctx, a: BackupArgs) -> Result<u8> {
    let (ns, pvc) = split_ref(&a.pvc, &ctx.namespace)?;
    let vb = volume_backup(&ns, &pvc, &a);
    let api = Api::namespaced(ctx.client.clone(), &ns);
    submit(ctx, api, vb, &a.wait).await
}

/// `restore SNAPSHOT --to NS/PVC`.
pub async fn restore(ctx: &Ctx, a: RestoreArgs) -> Result<u8> {
    let to = split_ref(&a.to, &ctx.namespace)?;
    let from = match &a.from {
        Some(f) => split_ref(f, &ctx.namespace)?,
        None => to.clone(),
    };
    let admin = &ctx.global.kairn_namespace;
    let vr = volume_restore(&a.snapshot, (&to.0, &to.1), (&from.0, &from.1), admin);
    let ns = vr.metadata.namespace.clone().unwrap_or_default();
    let api = Api::namespaced(ctx.client.clone(), &ns);
    submit(ctx, api, vr, &a.wait).await
}

/// `restore-namespace`.
pub async fn restore_namespace(ctx: &Ctx, a: RestoreNamespaceArgs) -> Result<u8> {
    let nsr = namespace_restore(&a)?;
    submit(ctx, Api::all(ctx.client.clone()), nsr, &a.wait).await
}

/// Creates `obj`, says so as kubectl does, and follows it when asked.
async fn submit<K>(ctx: &Ctx, api: Api<K>, obj: K, wait: &WaitArgs) -> Result<u8>
where
    K: Resource<DynamicType = ()> + Followed + Clone + Serialize + DeserializeOwned,
    K: std::fmt::Debug,
{
    let kind = K::kind(&()).to_lowercase();
    let created = api
        .create(&PostParams::default(), &obj)
        .await
        .with_context(|| format!("cannot create the {kind}"))?;
    let name = created.name_any();
    match ctx.global.output {
        Output::Json if !wait.wait => println!("{}", serde_json::to_string_pretty(&created)?),
        Output::Json => {}
        Output::Table => println!("{kind}.{}/{name} created", K::group(&())),
    }
    if !wait.wait {
        return Ok(OK);
    }
    let done = wait::follow(&api, &name, wait.timeout).await?;
    if ctx.global.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&done.object)?);
    }
    Ok(done.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_on_the_slash_or_take_the_current_namespace() {
        assert_eq!(
            split_ref("shop/db", "x").unwrap(),
            ("shop".into(), "db".into())
        );
        assert_eq!(split_ref("db", "x").unwrap(), ("x".into(), "db".into()));
        assert!(split_ref("/db", "x").is_err());
        assert!(split_ref("a/b/c", "x").is_err());
    }

    #[test]
    fn a_restore_across_namespaces_goes_to_the_agents_namespace() {
        let within = volume_restore("latest", ("shop", "db"), ("shop", "db"), "kairn-system");
        assert_eq!(within.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(within.spec.source_namespace, None);
        assert_eq!(within.spec.source_pvc.as_deref(), Some("db"));
        assert_eq!(within.refusal("kairn-system"), None);

        let across = volume_restore("1a2b3c4d", ("shop2", "db"), ("shop", "db"), "kairn-system");
        assert_eq!(across.metadata.namespace.as_deref(), Some("kairn-system"));
        assert_eq!(across.spec.source_namespace.as_deref(), Some("shop"));
        assert_eq!(across.spec.target_namespace.as_deref(), Some("shop2"));
        assert_eq!(across.spec.source_pvc, None, "an id needs no source PVC");
        assert_eq!(across.refusal("kairn-system"), None);
    }

    #[test]
    fn namespace_mappings_and_policies_are_checked() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            let mut all = vec!["kubectl-kairn", "restore-namespace"];
            all.extend_from_slice(args);
            match crate::args::Cli::try_parse_from(all).unwrap().command {
                crate::args::Command::RestoreNamespace(a) => a,
                _ => unreachable!(),
            }
        };
        let a = parse(&["shop", "--backup", "nightly-1", "--map", "shop=shop2"]);
        let nsr = namespace_restore(&a).unwrap();
        assert_eq!(nsr.spec.namespace_mapping["shop"], "shop2");
        assert_eq!(nsr.spec.cluster_backup.as_deref(), Some("nightly-1"));
        assert!(nsr.spec.volumes);
        assert!(namespace_restore(&parse(&["--series", "s", "--map", "bad"])).is_err());
        let bad_policy = parse(&["--series", "s", "--existing-resource-policy", "Smash"]);
        assert!(namespace_restore(&bad_policy).is_err());
    }
}
