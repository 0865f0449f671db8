//! The maintenance loop: every interval, one pass: list the BackupSchedules, apply each one's
//! retention to the snapshots it made, check the repository when [`super::plan::check_due`]
//! says so, then prune when [`super::plan::prune_due`] says so.
//! Repository work runs on blocking threads, with one repository handle per pass.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use engine::repo::Repository;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ListParams};

use super::plan::{
    PruneClock, Runs, ScheduleWork, Scope, check_due, cluster_runs, plan, prune_due,
};
use super::state::Maintenance;
use crate::crd::{BackupSchedule, ClusterBackup};
use crate::events::{CLUSTER_EVENTS_NAMESPACE, EventKind, Happened, Reporter};

/// When this process last pruned, and whether that prune left deletions waiting; when it last
/// checked.
#[derive(Debug, Default)]
struct Clock {
    last: Option<Instant>,
    pending: bool,
    last_check: Option<Instant>,
}

/// Runs passes until the shutdown switch is set.
pub async fn run(m: Arc<Maintenance>) {
    let mut clock = Clock::default();
    while !m.shutting_down() {
        m.tick();
        m.busy.store(true, Ordering::Relaxed);
        let ok = pass(&m, &mut clock).await;
        m.busy.store(false, Ordering::Relaxed);
        m.tick();
        if ok {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            m.metrics.last_success.set(now);
        }
        let mut slept = Duration::ZERO;
        while slept < m.config.interval && !m.shutting_down() {
            let step = Duration::from_millis(100);
            tokio::time::sleep(step).await;
            slept += step;
        }
    }
}

/// Runs `f` on a blocking thread; an engine error becomes its message.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> engine::Result<T> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the task failed: {e}")),
    }
}

/// One pass. True when every step succeeded.
async fn pass(m: &Arc<Maintenance>, clock: &mut Clock) -> bool {
    let api: Api<BackupSchedule> = Api::all(m.client.clone());
    let schedules = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            m.health.ready.store(false, Ordering::Relaxed);
            m.metrics.failed("list");
            tracing::warn!("cannot list the BackupSchedules: {e}");
            return false;
        }
    };
    m.health.ready.store(true, Ordering::Relaxed);
    let access = m.access.clone();
    let opened = blocking(move || {
        let repo = access.open()?;
        let found = engine::snapshots::scan(&repo)?;
        crate::job::log_skipped(&found.damaged);
        Ok((Arc::new(repo), found.snapshots))
    })
    .await;
    let (repo, snapshots) = match opened {
        Ok(v) => v,
        Err(e) => {
            m.metrics.failed("list");
            tracing::warn!("cannot list the snapshots: {e}");
            return false;
        }
    };
    let mut ok = true;
    let mut forgotten = 0;
    for work in plan(&schedules, &snapshots) {
        if m.shutting_down() {
            return false;
        }
        let (n, done) = schedule_retention(m, &repo, &work).await;
        forgotten += n;
        ok &= done;
    }
    if check_due(
        clock.last_check.map(|t| t.elapsed()),
        m.config.check_interval,
    ) && !m.shutting_down()
    {
        ok &= check(m, repo.clone(), clock).await;
    }
    let due = prune_due(
        PruneClock {
            since_last: clock.last.map(|t| t.elapsed()),
            pending: clock.pending,
        },
        forgotten,
        m.config.prune_interval,
    );
    if due && !m.shutting_down() {
        ok &= prune(m, repo, clock).await;
    }
    ok
}

/// Applies one schedule's retention, and tells of it in an Event on the schedule. Returns
/// how many snapshots were forgotten, and whether every part succeeded.
async fn schedule_retention(
    m: &Maintenance,
    repo: &Arc<Repository>,
    work: &ScheduleWork,
) -> (usize, bool) {
    let name = work.schedule.as_str();
    let targets: Vec<Option<String>> = match &work.scope {
        Scope::Volumes(pvcs) => pvcs.iter().cloned().map(Some).collect(),
        Scope::ClusterRuns => match cluster_runs_of(m, name).await {
            Ok(Runs::Settled) => vec![None],
            Ok(Runs::Waiting(run, phase)) => {
                tracing::info!(
                    schedule = name,
                    run,
                    ?phase,
                    "retention waits for a run that completes in full"
                );
                return (0, true);
            }
            Err(e) => {
                m.metrics.failed("list");
                tracing::warn!(
                    schedule = name,
                    "cannot list the schedule's ClusterBackups: {e}"
                );
                return (0, false);
            }
        },
    };
    let mut forgotten = 0;
    let mut errors = Vec::new();
    for pvc in targets {
        if m.shutting_down() {
            break;
        }
        let (repo, tag, policy) = (repo.clone(), work.tag.clone(), work.policy.clone());
        let expiry = m.access.session_expiry;
        let stored_as = pvc.clone();
        let result = blocking(move || {
            crate::job::retention_in(&repo, expiry, &tag, stored_as.as_deref(), policy)
        })
        .await;
        match result {
            Ok(n) => forgotten += n,
            Err(e) => errors.push(match pvc {
                Some(pvc) => format!("PVC {pvc}: {e}"),
                None => e,
            }),
        }
    }
    let labels = super::metrics::ScheduleLabels {
        schedule: name.to_string(),
    };
    m.metrics
        .forgotten
        .get_or_create(&labels)
        .inc_by(forgotten as u64);
    tracing::info!(schedule = name, forgotten, "retention applied");
    if forgotten > 0 {
        let note = format!(
            "forgot {forgotten} snapshot(s) its retention no longer keeps; the next prune frees \
             the data only they held"
        );
        event(m, work, EventKind::Normal, "RetentionApplied", &note).await;
    }
    if errors.is_empty() {
        return (forgotten, true);
    }
    m.metrics.failed("retention");
    let note = format!("cannot apply the retention: {}", errors.join("; "));
    tracing::warn!(schedule = name, "{note}");
    event(m, work, EventKind::Warning, "RetentionFailed", &note).await;
    (forgotten, false)
}

/// The ClusterBackups a schedule created (they carry its label).
async fn cluster_runs_of(m: &Maintenance, schedule: &str) -> Result<Runs, kube::Error> {
    let api: Api<ClusterBackup> = Api::all(m.client.clone());
    let selector = format!("{}={schedule}", crate::schedule::SCHEDULE_LABEL);
    let runs = api.list(&ListParams::default().labels(&selector)).await?;
    Ok(cluster_runs(&runs.items))
}

/// An Event on the schedule (cluster-scoped, so in [`CLUSTER_EVENTS_NAMESPACE`]).
async fn event(m: &Maintenance, work: &ScheduleWork, kind: EventKind, reason: &str, note: &str) {
    let regarding = ObjectReference {
        api_version: Some("kairn.dev/v1alpha1".to_string()),
        kind: Some("BackupSchedule".to_string()),
        name: Some(work.schedule.clone()),
        uid: work.uid.clone(),
        ..Default::default()
    };
    let reporter = Reporter {
        controller: "kairn.dev/maintenance",
        instance: &m.config.instance,
    };
    let what = Happened {
        kind,
        reason,
        action: "Retention",
        note,
    };
    crate::events::publish_about(
        &m.client,
        reporter,
        CLUSTER_EVENTS_NAMESPACE,
        regarding,
        what,
    )
    .await;
}

/// Checks the repository's structure (and the subset of packs configured), as `repo check`
/// does. True when it found nothing wrong. One that could not run is tried again at the next
/// pass; one that found problems waits for the next interval, the problems in the log and
/// the metrics meanwhile.
async fn check(m: &Maintenance, repo: Arc<Repository>, clock: &mut Clock) -> bool {
    let opts = engine::check::CheckOptions {
        read_data: false,
        subset: m.config.check_subset,
    };
    let started = chrono::Utc::now();
    let result = blocking(move || {
        let checked = engine::check::check(&repo, &opts, &engine::progress::NoProgress);
        super::record::store(&repo, super::record::check(started, &opts, &checked));
        checked
    })
    .await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            m.metrics.failed("check");
            m.metrics.last_check_success.set(0.0);
            tracing::warn!("the check could not run: {e}");
            return false;
        }
    };
    clock.last_check = Some(Instant::now());
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    m.metrics.last_check.set(now);
    m.metrics.check_problems.set(report.problems.len() as f64);
    let sound = report.problems.is_empty();
    m.metrics
        .last_check_success
        .set(if sound { 1.0 } else { 0.0 });
    if !sound {
        m.metrics.failed("check");
        for p in report.problems.iter().take(20) {
            tracing::error!(snapshots = ?p.snapshots, "check: {}", p.message);
        }
    }
    tracing::info!(
        snapshots = report.snapshots,
        trees = report.trees,
        packs_read = report.packs_read,
        problems = report.problems.len(),
        "check done"
    );
    sound
}

/// Prunes in a session of its own, without waiting for running backups: packs they might
/// still need are marked now and deleted by a later prune, after those sessions ended
/// (repo-format.md §14.1). True when it ran to its end.
async fn prune(m: &Maintenance, repo: Arc<Repository>, clock: &mut Clock) -> bool {
    let opts = engine::prune::PruneOptions {
        max_unused_percent: m.config.max_unused_percent,
        expiry: m.access.session_expiry,
        wait: false,
        ..Default::default()
    };
    let expiry = m.access.session_expiry;
    let started = chrono::Utc::now();
    let result = blocking(move || {
        let session = repo.begin_session("prune", expiry)?;
        let result = engine::prune::prune(&repo, &session, &opts, &engine::progress::NoProgress);
        let ended = session.end();
        let result = result.and_then(|r| ended.map(|()| r));
        super::record::store(&repo, super::record::prune(started, &result));
        result
    })
    .await;
    clock.last = Some(Instant::now());
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            // Tried again at the next pass, not after a whole prune interval.
            clock.pending = true;
            m.metrics.failed("prune");
            m.metrics.last_prune_success.set(0.0);
            tracing::warn!("prune failed: {e}");
            return false;
        }
    };
    clock.pending = !r.pending.is_empty() || r.held_back_until.is_some();
    m.metrics.bytes_freed.inc_by(r.deleted_bytes);
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    m.metrics.last_prune.set(now);
    m.metrics.last_prune_success.set(1.0);
    if r.held_back_until.is_some() {
        tracing::warn!(
            unreadable_sessions = r.unreadable_sessions.len(),
            "prune deleted nothing: an unreadable session file may be a running writer's"
        );
    }
    tracing::info!(
        deleted_packs = r.deleted_packs,
        deleted_bytes = r.deleted_bytes,
        repacked_packs = r.repacked_packs,
        unused_packs = r.unused_packs,
        waiting_for_writers = r.pending.iter().map(|p| p.packs).sum::<usize>(),
        "prune done"
    );
    true
}
