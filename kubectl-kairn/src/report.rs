//! `report`: the restore-readiness page of `repo report`, from the repository the agents
//! write, with what only the cluster knows: each schedule's interval, and every PVC a schedule
//! selects, so a volume that was never backed up shows as such.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context as _, Result};
use chrono::{Offset, Utc};
use engine::index::Index;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use node_agent::crd::BackupSchedule;
use node_agent::schedule::longest_gap;
use node_agent::selection::LabelCache;
use report::{ExpectedVolume, ReportOptions};

use crate::Ctx;
use crate::args::{Output, ReportArgs};
use crate::exit::{OK, is_forbidden};
use crate::repository;

/// The schedules, or none (with a note) when the user may not list them.
async fn schedules(ctx: &Ctx) -> Result<Vec<BackupSchedule>> {
    let api: Api<BackupSchedule> = Api::all(ctx.client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(e) if is_forbidden(&e) => {
            eprintln!(
                "note: you may not list BackupSchedules: every volume gets --expect-interval"
            );
            Ok(Vec::new())
        }
        Err(e) => Err(e).context("cannot list BackupSchedules"),
    }
}

/// What the cluster says the report should expect.
async fn options(ctx: &Ctx, a: &ReportArgs, cluster: Option<String>) -> Result<ReportOptions> {
    let now = Utc::now();
    let schedules = schedules(ctx).await?;
    let gap = |cron: &str| {
        longest_gap(cron, now)
            .ok()
            .flatten()
            .and_then(|d| d.to_std().ok())
    };
    let intervals: BTreeMap<String, std::time::Duration> = schedules
        .iter()
        .filter_map(|s| Some((s.name_any(), gap(&s.spec.schedule)?)))
        .collect();
    let mut cache = LabelCache::default();
    let expected = match node_agent::selection::claims(&ctx.client, &mut cache).await {
        Ok(claims) => {
            let every = |cron: &str| gap(cron).map(|d| d.as_secs_f64());
            node_agent::volume_series::selected(&schedules, claims, every)
        }
        Err(e) if is_forbidden(&e) => {
            eprintln!(
                "note: you may not list PVCs across namespaces: volumes never backed up are not shown"
            );
            Vec::new()
        }
        Err(e) => return Err(e).context("cannot list the PVCs"),
    };
    let expected_volumes = expected
        .into_iter()
        .map(|(labels, every, _)| ExpectedVolume {
            cluster: cluster.clone(),
            namespace: labels.namespace,
            pvc: labels.pvc,
            interval: every.map(std::time::Duration::from_secs_f64),
        })
        .collect();
    Ok(ReportOptions {
        now,
        default_interval: Some(a.expect_interval),
        schedule_intervals: intervals,
        expected_volumes,
        ..Default::default()
    })
}

/// `report`.
pub async fn run(ctx: &Ctx, a: ReportArgs) -> Result<u8> {
    let (repo, access) = repository::open_with_access(ctx).await?;
    let mut opts = options(ctx, &a, access.cluster.clone()).await?;
    opts.location = node_agent::settings::redacted_location(&access.location);
    let report = tokio::task::spawn_blocking(move || -> Result<report::Report> {
        let index = Index::load(&repo)?;
        Ok(report::collect(&repo, &index, &opts)?)
    })
    .await
    .context("reading the repository stopped")??;
    for u in &report.unreadable {
        eprintln!(
            "warning: {} file {} cannot be read and is not believed: {}",
            u.kind, u.name, u.reason
        );
    }
    if let Some(path) = &a.html {
        let zone = chrono::Local::now().offset().fix();
        let page = report::render(&report, zone);
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let mut tmp = tempfile::NamedTempFile::new_in(dir.unwrap_or(std::path::Path::new(".")))
            .context("cannot create the page's temporary file")?;
        tmp.write_all(page.as_bytes())?;
        tmp.persist(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        if ctx.global.output == Output::Table {
            eprintln!("wrote {}", path.display());
        }
    }
    if ctx.global.output == Output::Json || a.html.is_none() {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(OK)
}
