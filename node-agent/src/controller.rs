//! The loop: every resync interval, read this node's pods and every resource from the watch
//! caches ([`crate::caches`]), and hand each to its reconciler ([`crate::reconcile`]), in a
//! fixed order: the repository sync, cluster backups (which create VolumeBackups), the expiry
//! of finished objects, namespace restores, volume backups, volume restores, then schedules.
//! Jobs run on blocking threads, at most `max_concurrent` backups and restores at once on this
//! node.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::caches::{Caches, snapshot};
use crate::context::Context;
use crate::reconcile::{
    backup_schedule, cluster_backup, expiry, mount_pods, namespace_restore, repo_sync,
    volume_backup, volume_restore, volume_series,
};

/// How long the watches may take to list every resource before they are started again.
const CACHE_START_LIMIT: Duration = Duration::from_secs(20);

/// Reconciles until `shutdown` is set.
pub async fn run(ctx: Arc<Context>, shutdown: Arc<AtomicBool>) {
    // Mount pods this agent's predecessor (or any agent) left behind, wherever they are.
    if let Err(e) = mount_pods::sweep_cluster(&ctx).await {
        tracing::warn!("cannot look for mount pods left behind: {e}");
    }
    let mut caches = Caches::start(&ctx.client, &ctx.config.node);
    let mut started = std::time::Instant::now();
    while !shutdown.load(Ordering::Relaxed) {
        // An initial list that never answers (a connection a proxy dropped without a word)
        // would leave the agent unready until the client's 295 s read timeout: start over.
        if !caches.ready() && started.elapsed() > CACHE_START_LIMIT {
            tracing::warn!("the watches have not all listed their resources: starting them again");
            caches = Caches::start(&ctx.client, &ctx.config.node);
            started = std::time::Instant::now();
        }
        let health = &ctx.health;
        health
            .last_tick
            .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
        // The Lease renewal is this pass's request to the API server: ready means it answers.
        let reached = crate::node_lease::renew_and_read(&ctx.client, &ctx.config, &ctx.leases)
            .await
            .inspect_err(|e| tracing::warn!("cannot renew this node's Lease: {e}"))
            .is_ok();
        // Nothing is decided on a partial view: a schedule would not see the run it made.
        if caches.ready() {
            reconcile(&ctx, &caches).await;
        }
        health
            .ready
            .store(reached && caches.ready(), Ordering::Relaxed);
        let mut slept = Duration::ZERO;
        while slept < ctx.config.resync && !shutdown.load(Ordering::Relaxed) {
            let step = Duration::from_millis(100);
            tokio::time::sleep(step).await;
            slept += step;
        }
    }
}

/// Asks every running job to stop, and waits up to `grace` for them. Their resources stay
/// `InProgress`, to be picked up by the next instance of the agent.
pub async fn stop_all(ctx: &Context, grace: Duration) {
    ctx.health.shutdown.store(true, Ordering::Relaxed);
    ctx.jobs.stop_all();
    let start = std::time::Instant::now();
    while ctx.jobs.count() > 0 && start.elapsed() < grace {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One pass over this node's pods and the unfinished work, as the caches hold them, and, by
/// the leading agent now and then, over the finished objects read from the API.
pub async fn reconcile(ctx: &Arc<Context>, caches: &Caches) {
    let pods = snapshot(&caches.pods);
    let backups = snapshot(&caches.volume_backups);
    let cluster_backups = snapshot(&caches.cluster_backups);
    let restores = snapshot(&caches.volume_restores);
    let namespace_restores = snapshot(&caches.namespace_restores);
    let schedules = snapshot(&caches.schedules);
    repo_sync::sync_if_due(ctx).await;
    volume_series::refresh_if_due(ctx, &schedules).await;
    let moved_on = backup_schedule::moved_on(ctx, &schedules, &backups, &cluster_backups);
    if ctx.leads() {
        if Context::due(&ctx.last_history, ctx.config.history) {
            expiry::sweep(ctx).await;
            let all: Vec<_> = schedules.iter().collect();
            backup_schedule::record_statuses(ctx, &all).await;
        } else {
            backup_schedule::record_statuses(ctx, &moved_on).await;
        }
    }
    cluster_backup::reconcile_all(ctx, &cluster_backups).await;
    namespace_restore::reconcile_all(ctx, &namespace_restores, &restores).await;

    let mut waiting = 0;
    for vb in &backups {
        waiting += i64::from(volume_backup::reconcile(ctx, vb, &pods).await);
    }
    for vr in &restores {
        waiting += i64::from(volume_restore::reconcile(ctx, vr, &pods).await);
    }
    backup_schedule::reconcile_all(ctx, &schedules, &backups).await;
    mount_pods::sweep(ctx, &pods, &backups, &restores).await;
    ctx.metrics.queue_length.set(waiting);
    ctx.count_in_flight();
}
