//! `logs NAME`: the log lines of the agent that ran a backup or restore, found through the
//! node its status names and the agent pod on that node.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};

use crate::Ctx;
use crate::args::LogsArgs;
use crate::exit::{Coded, NOT_FOUND, OK};
use crate::lookup::{self, Found};

/// The label every agent pod carries (deploy/daemonset.yaml, the chart).
const AGENT_SELECTOR: &str = node_agent::node_lease::LEASE_SELECTOR;

/// The nodes whose agents worked on `found`, and the names its log lines carry.
pub fn nodes_and_names(found: &Found) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut nodes = BTreeSet::new();
    let mut names = BTreeSet::new();
    match found {
        Found::Cluster(cb, members) => {
            names.insert(cb.name_any());
            if let Some(st) = &cb.status {
                let parts = st.etcd.iter().chain(&st.manifests).chain(&st.images);
                for part in parts {
                    nodes.extend(part.node.clone());
                }
            }
            for vb in members {
                names.insert(vb.name_any());
                nodes.extend(vb.status.as_ref().and_then(|s| s.node.clone()));
            }
        }
        Found::Volume(vb) => {
            names.insert(vb.name_any());
            nodes.extend(vb.status.as_ref().and_then(|s| s.node.clone()));
        }
        Found::Restore(vr) => {
            names.insert(vr.name_any());
            nodes.extend(vr.status.as_ref().and_then(|s| s.node.clone()));
        }
        Found::Namespaces(nsr) => {
            names.insert(nsr.name_any());
            if let Some(st) = &nsr.status {
                names.extend(st.volumes.iter().filter_map(|v| v.volume_restore.clone()));
            }
        }
        Found::Schedule(s) => {
            names.insert(s.name_any());
        }
    }
    (nodes, names)
}

/// The lines of `log` that name one of `names`.
pub fn matching<'a>(log: &'a str, names: &BTreeSet<String>) -> Vec<&'a str> {
    log.lines()
        .filter(|line| names.iter().any(|n| line.contains(n.as_str())))
        .collect()
}

/// `logs NAME`.
pub async fn run(ctx: &Ctx, a: LogsArgs) -> Result<u8> {
    let found = lookup::find(ctx, &a.target.name).await?;
    let (mut nodes, names) = nodes_and_names(&found);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.global.kairn_namespace);
    let mut agents = Vec::new();
    if nodes.is_empty() {
        // A namespace restore or a schedule is the leading agent's work: any agent may hold
        // its lines, so every agent is read.
        let all = pods
            .list(&ListParams::default().labels(AGENT_SELECTOR))
            .await;
        let all = all.context("cannot list the agent pods")?;
        nodes.extend(
            all.items
                .iter()
                .filter_map(|p| p.spec.as_ref()?.node_name.clone()),
        );
    }
    for node in &nodes {
        let params = ListParams::default()
            .labels(AGENT_SELECTOR)
            .fields(&format!("spec.nodeName={node}"));
        let on_node = pods.list(&params).await;
        let on_node = on_node.with_context(|| format!("cannot list the agent pods of {node}"))?;
        agents.extend(
            on_node
                .items
                .into_iter()
                .map(|p| (node.clone(), p.name_any())),
        );
    }
    if agents.is_empty() {
        return Err(Coded::error(
            NOT_FOUND,
            format!(
                "no agent pod found in {} for {:?} (nodes: {}); has it started?",
                ctx.global.kairn_namespace,
                a.target.name,
                nodes.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let several = agents.len() > 1;
    for (node, pod) in agents {
        let log = pods
            .logs(&pod, &LogParams::default())
            .await
            .with_context(|| format!("cannot read the log of {pod} on {node}"))?;
        let lines = if a.all {
            log.lines().collect()
        } else {
            matching(&log, &names)
        };
        for line in lines {
            if several {
                println!("[{node}/{pod}] {line}");
            } else {
                println!("{line}");
            }
        }
    }
    Ok(OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lines_naming_the_work_are_kept() {
        let names: BTreeSet<String> = ["db-abc12".to_string()].into();
        let log = "{\"resource\":\"shop/db-abc12\",\"msg\":\"backed up\"}\n{\"msg\":\"other\"}\n";
        assert_eq!(matching(log, &names), vec![log.lines().next().unwrap()]);
    }
}
