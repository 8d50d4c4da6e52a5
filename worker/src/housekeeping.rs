//! The periodic passes (one worker at a time) and the keyspace-notification listener.

use queue_core::metrics::LapsePath;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::interfaces::{EventInterface, PubsubInterface};
use fred::types::config::Server;
use queue_core::clock::wall_clock_ms;
use queue_core::housekeeping::Pass;
use queue_core::keys;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::shared::Worker;

/// How often stalled queues and events past their `endsAt` plus EVENT_RETENTION are looked for.
const RECONCILE_EVERY: Duration = Duration::from_secs(1);
/// How often every event is swept and dead workers' heartbeats dropped: the safety net.
const FULL_PASS_EVERY: Duration = Duration::from_secs(60);
/// A heartbeat this old is removed.
const FORGET_WORKER_AFTER_MS: i64 = 3_600_000;

pub(crate) async fn run(worker: Arc<Worker>, shutdown: CancellationToken) {
    let period = Duration::from_millis(worker.settings.housekeeping_ms);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reconcile = Instant::now() - RECONCILE_EVERY;
    let mut last_full_pass = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let store = &worker.store;
        // One worker holds the turn and renews it every period; should it die, another takes
        // over within two periods. An overlap is harmless (every step is idempotent).
        match store
            .take_housekeeping_turn(&worker.name, 2 * period.as_millis() as u64)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                let pause = worker.full.failed(
                    &e,
                    || tracing::warn!(error = %e, "housekeeping cannot reach Redis"),
                );
                tokio::time::sleep(pause).await;
                continue;
            }
        }
        let sweep = store.sweep_due(wall_clock_ms()).await;
        count_sweep(&worker, sweep.count);
        failed(&worker, sweep, "a sweep");
        if last_reconcile.elapsed() >= RECONCILE_EVERY {
            last_reconcile = Instant::now();
            failed(&worker, store.reconcile().await, "the reconcile pass");
            // Events whose `endsAt` plus EVENT_RETENTION has passed go, by the deletion an
            // admin's DELETE runs.
            failed(
                &worker,
                store.delete_ended(wall_clock_ms()).await,
                "deleting ended events",
            );
        }
        if last_full_pass.elapsed() >= FULL_PASS_EVERY {
            last_full_pass = Instant::now();
            let full = store.tidy_all().await;
            count_sweep(&worker, full.count);
            failed(&worker, full, "the full pass");
            if let Err(e) = store.forget_dead_workers(FORGET_WORKER_AFTER_MS).await {
                worker.full.failed(
                    &e,
                    || tracing::warn!(error = %e, "cannot drop old heartbeats"),
                );
            }
        }
    }
}

/// Logs the first error a pass met (it went on past it with the rest of its work).
fn failed(worker: &Worker, pass: Pass, what: &'static str) {
    if let Some(e) = pass.error {
        worker.full.failed(
            &e,
            || tracing::warn!(error = %e, "{what} could not do all its work"),
        );
    }
}

fn count_sweep(worker: &Worker, lapsed: u64) {
    if lapsed > 0 {
        tracing::debug!(lapsed, "sweep released lapsed holds");
        worker
            .counters
            .holds_lapsed_by_sweep
            .fetch_add(lapsed, Ordering::Relaxed);
        worker.counters.tally.holds_lapsed(LapsePath::Sweep, lapsed);
    }
}

/// How often a worker on a cluster looks for primaries it does not listen to yet (after a
/// failover, the promoted replica) and lets go of nodes that are no longer primaries.
const PRIMARIES_CHECK: Duration = Duration::from_secs(2);

/// Sweeps an event as soon as Redis announces that its tick key expired. Notifications are
/// fire-and-forget: a missed one only delays tidying until the scheduled sweep. Keyspace
/// notifications are per node, so on a cluster there is one listener per primary, following
/// the primaries as the routing table has them.
pub(crate) async fn listen(worker: Arc<Worker>, shutdown: CancellationToken) {
    if !worker.store.clustered() {
        return listen_on(worker, None, shutdown).await;
    }
    let mut listening: std::collections::BTreeMap<Server, CancellationToken> = Default::default();
    let mut tasks = Vec::new();
    // `Application::build` turned the notifications on where it could; only a primary that
    // comes later (a replica promoted in a failover) needs it again.
    let mut first = true;
    // Set when a new primary appears, until turning notifications on everywhere succeeds: a
    // primary just promoted may not be connected yet on the first try. A refusal that is not
    // Redis being unreachable (a managed service that forbids CONFIG) is said once and left.
    let mut to_enable = false;
    loop {
        match worker.store.primaries() {
            Ok(primaries) => {
                listening.retain(|node, stop| {
                    let keep = primaries.contains(node);
                    if !keep {
                        tracing::info!(%node, "no longer a primary: its listener stops");
                        stop.cancel();
                    }
                    keep
                });
                let new: Vec<Server> = primaries
                    .into_iter()
                    .filter(|node| !listening.contains_key(node))
                    .collect();
                to_enable |= !new.is_empty() && !first;
                if to_enable {
                    match worker.store.enable_expiry_notifications().await {
                        Ok(()) => to_enable = false,
                        Err(e @ queue_core::Error::Unavailable(_)) => {
                            tracing::debug!(error = %e, "cannot turn on keyspace notifications on every primary yet; trying again");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot turn on keyspace notifications on every primary");
                            to_enable = false;
                        }
                    }
                }
                for node in new {
                    tracing::debug!(%node, "listening to a primary's expiry notifications");
                    let stop = shutdown.child_token();
                    listening.insert(node.clone(), stop.clone());
                    tasks.push(tokio::spawn(listen_on(worker.clone(), Some(node), stop)));
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the cluster's primaries"),
        }
        first = false;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(PRIMARIES_CHECK) => {}
        }
        tasks.retain(|task: &tokio::task::JoinHandle<()>| !task.is_finished());
    }
    futures::future::join_all(tasks).await;
}

/// The listener of one node (`None`: the one Redis).
async fn listen_on(worker: Arc<Worker>, node: Option<Server>, shutdown: CancellationToken) {
    let subscriber = match &node {
        None => worker.store.subscriber().await,
        Some(node) => worker.store.node_subscriber(node).await,
    };
    let subscriber = match subscriber {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no keyspace-notification listener");
            return;
        }
    };
    let channel = keys::expired_channel(worker.store.database());
    let _resubscribe = subscriber.manage_subscriptions();
    if let Err(e) = subscriber.subscribe(channel.as_str()).await {
        tracing::warn!(error = %e, "cannot subscribe to expiry notifications");
    }
    // fred routes keyspace and keyevent messages to this receiver, not to `message_rx`.
    let mut messages = subscriber.keyspace_event_rx();
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            message = messages.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(RecvError::Lagged(missed)) => {
                // The sweep schedule covers what was missed.
                tracing::debug!(missed, "the notification listener fell behind");
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        let Some(event) = message.key.as_str().and_then(keys::event_of_tick) else {
            continue;
        };
        match worker.store.sweep(event).await {
            Ok(lapsed) => {
                worker
                    .counters
                    .holds_lapsed_by_notification
                    .fetch_add(lapsed, Ordering::Relaxed);
                worker
                    .counters
                    .tally
                    .holds_lapsed(LapsePath::Notification, lapsed);
            }
            Err(e) => tracing::warn!(%event, error = %e, "sweep after notification failed"),
        }
    }
    let _ = fred::interfaces::ClientLike::quit(&subscriber).await;
}
