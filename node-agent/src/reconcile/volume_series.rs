//! The leading agent, at its first pass and then every history interval (at least every
//! [`MIN_EVERY`]), reads the cluster's PVCs and the repository's snapshots and pack sizes, and
//! exports the cluster-wide series of [`crate::volume_series`]; an agent that stops leading
//! drops them. Only reads: the repository is opened as for a restore.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use engine::format::FileKind;
use engine::format::snapshot::Snapshot;

use crate::context::Context;
use crate::crd::BackupSchedule;
use crate::metrics::LeaderSeries;
use crate::selection::{LabelCache, claims};
use crate::volume_series::{last_successes, selected};

/// The repository is read at most this often, however short the history interval.
pub const MIN_EVERY: Duration = Duration::from_secs(10);

/// Refreshes the series when this agent leads and they are due.
pub async fn refresh_if_due(ctx: &Arc<Context>, schedules: &[BackupSchedule]) {
    let state = &ctx.series;
    let leads = ctx.leads();
    ctx.metrics.leading.set(i64::from(leads));
    if !leads {
        if state.exported.swap(false, Ordering::Relaxed) {
            ctx.metrics.drop_leader_series();
            tracing::info!("no longer leading: the cluster-wide series are the leader's");
        }
        // Leading again later, it reads at once.
        *state.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
        return;
    }
    if !Context::due(&state.last, ctx.config.history.max(MIN_EVERY)) {
        return;
    }
    let mut cache = LabelCache::default();
    let now = chrono::Utc::now();
    let selected = match claims(&ctx.client, &mut cache).await {
        Ok(c) => selected(schedules, c, |cron| state.interval(cron, now)),
        Err(e) => {
            tracing::warn!("cannot list the PVCs for the selected-volume series: {e}");
            return;
        }
    };
    let mut series = LeaderSeries {
        selected,
        ..Default::default()
    };
    match read(ctx).await {
        Ok((snapshots, bytes)) => {
            series.last_success = last_successes(&snapshots, ctx.config.cluster.as_deref());
            series.repository = Some((bytes, snapshots.len() as u64));
        }
        Err(e) => tracing::warn!("cannot read the repository for the volume series: {e}"),
    }
    let read_at = now.timestamp_millis() as f64 / 1000.0;
    ctx.metrics.publish_leader(&series, read_at);
    state.exported.store(true, Ordering::Relaxed);
}

/// Every readable snapshot, and the bytes of every pack, read on a blocking thread.
async fn read(ctx: &Context) -> Result<(Vec<Snapshot>, u64), String> {
    let access = ctx.access.clone();
    let work = move || -> engine::Result<(Vec<Snapshot>, u64)> {
        let repo = access.open()?;
        let found = engine::snapshots::scan(&repo)?;
        crate::job::log_skipped(&found.damaged);
        let bytes = repo
            .backend()
            .list(FileKind::Pack)?
            .iter()
            .map(|(_, size)| size)
            .sum();
        Ok((found.snapshots.into_iter().map(|(_, s)| s).collect(), bytes))
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the repository read stopped: {e}")),
    }
}
