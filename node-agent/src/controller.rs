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
    volume_backup, volume_restore,
};

/// Reconciles until `shutdown` is set.
pub async fn run(ctx: Arc<Context>, shutdown: Arc<AtomicBool>) {
    // Mount pods this agent's predecessor (or any agent) left behind, wherever they are.
    if let Err(e) = mount_pods::sweep_cluster(&ctx).await {
        tracing::warn!("cannot look for mount pods left behind: {e}");
    }
    let caches = Caches::start(&ctx.client, &ctx.config.node);
    while !shutdown.load(Ordering::Relaxed) {
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

/// One pass over this node's pods and every resource, as the caches hold them.
pub async fn reconcile(ctx: &Arc<Context>, caches: &Caches) {
    let pods = snapshot(&caches.pods);
    let all_backups = snapshot(&caches.volume_backups);
    let all_cluster_backups = snapshot(&caches.cluster_backups);
    repo_sync::sync_if_due(ctx, &all_cluster_backups, &all_backups).await;
    // Synced objects are views of the repository: nothing to carry out, no TTL.
    let backups = not_synced(&all_backups);
    let cluster_backups = not_synced(&all_cluster_backups);
    cluster_backup::reconcile_all(ctx, &backups, &cluster_backups).await;
    let restores = snapshot(&caches.volume_restores);
    let namespace_restores = snapshot(&caches.namespace_restores);
    let listed = expiry::Listed {
        backups: &backups,
        restores: &restores,
        cluster_backups: &cluster_backups,
        namespace_restores: &namespace_restores,
    };
    expiry::expire_all(ctx, listed).await;
    namespace_restore::reconcile_all(ctx, &namespace_restores, &all_cluster_backups, &restores)
        .await;

    let mut waiting = 0;
    for vb in &backups {
        waiting += i64::from(volume_backup::reconcile(ctx, vb, &pods).await);
    }
    for vr in &restores {
        waiting += i64::from(volume_restore::reconcile(ctx, vr, &pods).await);
    }
    let schedules = snapshot(&caches.schedules);
    if !schedules.is_empty() {
        let created = backup_schedule::Created {
            backups: &backups,
            cluster_backups: &cluster_backups,
        };
        backup_schedule::reconcile_all(ctx, &schedules, created).await;
    }
    mount_pods::sweep(ctx, &pods, &backups, &restores).await;
    ctx.metrics.queue_length.set(waiting);
    ctx.count_in_flight();
}

fn not_synced<K: kube::Resource + Clone>(objects: &[K]) -> Vec<K> {
    objects
        .iter()
        .filter(|o| !crate::repo_sync::is_synced(o.meta()))
        .cloned()
        .collect()
}
