//! The worker process: drains event queues with `process.lua`, keeps the housekeeping passes
//! going, and turns keyspace notifications into prompt sweeps.
//!
//! A process runs WORKER_CONCURRENCY drain tasks, each on its own Redis connection (a blocking pop
//! holds up every other command on its connection), a heartbeat, a housekeeping loop and a
//! notification listener. On shutdown it stops taking tokens, finishes the batch in hand, hands
//! any event it was draining back to the pool, and exits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use queue_core::queue::wall_clock_ms;
use queue_core::settings::WorkerSettings;
use queue_core::{EventId, Millis, Settings, Store};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod drain;
mod housekeeping;

/// How long a drain task blocks on the ready list before looking at the shutdown signal again.
const POP_TIMEOUT: Duration = Duration::from_secs(1);
/// Batches one task applies to one event before it hands the event back to the pool, so that a
/// busy event does not starve the others and several workers take turns on it.
const ROUNDS_PER_TURN: usize = 16;
/// A pause after a Redis error, so a dead Redis is not hammered.
const ERROR_PAUSE: Duration = Duration::from_millis(200);
/// How long a task that holds a token keeps trying to apply its event's jobs while Redis is
/// unavailable to the process's pool: the token came on the task's own connection, so Redis is
/// back and the pool follows within one reconnect step (capped at 1 s). Giving up sooner would
/// leave the event to its lease lapsing (2 s) and the next housekeeping pass.
const UNAVAILABLE_PATIENCE: Duration = Duration::from_millis(1500);
/// How often it tries meanwhile.
const UNAVAILABLE_POLL: Duration = Duration::from_millis(25);

/// Counters of one worker process, reported in its heartbeat.
#[derive(Debug, Default)]
pub struct Counters {
    pub applied: AtomicU64,
    pub busy_us: AtomicU64,
    pub holds_lapsed_by_notification: AtomicU64,
    pub holds_lapsed_by_sweep: AtomicU64,
    /// What this process did since it last added to the service-wide figures (every heartbeat).
    pub tally: queue_core::metrics::Tally,
}

/// A worker process, built and ready to run.
#[derive(Debug)]
pub struct Application {
    store: Store,
    settings: WorkerSettings,
    name: String,
    counters: Arc<Counters>,
}

impl Application {
    /// Connects to Redis and turns on expiry notifications where the server allows it.
    pub async fn build(settings: &Settings, name: String) -> anyhow::Result<Self> {
        let store = Store::connect(settings).await?;
        if let Err(e) = store.enable_expiry_notifications().await {
            tracing::warn!(error = %e, "cannot turn on keyspace notifications; lapsed holds are tidied by the sweep schedule alone");
        }
        Ok(Self {
            store,
            settings: settings.workers.clone(),
            name,
            counters: Arc::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Runs until `shutdown` is cancelled, then finishes the work in hand and returns.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let worker = Arc::new(Worker {
            store: self.store.clone(),
            settings: self.settings,
            name: self.name,
            counters: self.counters,
            sweeps: Sweeps::default(),
        });
        tracing::info!(worker = %worker.name, concurrency = worker.settings.concurrency, "worker started");
        let mut tasks: Vec<JoinHandle<()>> = Vec::new();
        for task in 0..worker.settings.concurrency {
            let client = worker.store.dedicated_client().await?;
            tasks.push(tokio::spawn(drain::run(
                worker.clone(),
                client,
                task,
                shutdown.clone(),
            )));
        }
        tasks.push(tokio::spawn(heartbeat(worker.clone(), shutdown.clone())));
        tasks.push(tokio::spawn(housekeeping::run(
            worker.clone(),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(housekeeping::listen(
            worker.clone(),
            shutdown.clone(),
        )));
        for result in join_all(tasks).await {
            if let Err(e) = result {
                tracing::error!(error = %e, "a worker task panicked");
            }
        }
        if let Err(e) = worker.counters.tally.flush(&worker.store).await {
            tracing::warn!(error = %e, "the last counts could not be added to the service-wide figures");
        }
        if let Err(e) = worker.store.retire(&worker.name).await {
            tracing::warn!(error = %e, "could not remove the heartbeat on exit");
        }
        tracing::info!(worker = %worker.name, "worker stopped");
        Ok(())
    }
}

/// What the tasks of one worker process share.
#[derive(Debug)]
struct Worker {
    store: Store,
    settings: WorkerSettings,
    name: String,
    counters: Arc<Counters>,
    sweeps: Sweeps,
}

/// The sweep times this process put on the schedule, per event, so that a batch whose next
/// sweep is no earlier than one already there skips the ZADD (most batches, at an on-sale).
#[derive(Debug, Default)]
struct Sweeps {
    at: Mutex<HashMap<EventId, Millis>>,
}

/// A time scheduled this little ahead (or less) may be swept, and taken off the schedule, any
/// moment: it is not relied upon. Also covers a skew between this clock and Redis's.
const SWEEP_MARGIN_MS: Millis = 1000;

impl Sweeps {
    /// Whether `at` must go on the schedule. Not when this process scheduled the event for no
    /// later than `at`, comfortably in the future: that entry is still there (ZADD LT only moves
    /// it earlier), or a sweep took it and scheduled the event again from its data.
    fn needed(&self, event: EventId, at: Millis) -> bool {
        let Ok(scheduled) = self.at.lock() else {
            return true;
        };
        !scheduled
            .get(&event)
            .is_some_and(|s| *s <= at && *s > wall_clock_ms() + SWEEP_MARGIN_MS)
    }

    fn scheduled(&self, event: EventId, at: Millis) {
        if let Ok(mut scheduled) = self.at.lock() {
            if scheduled.len() > 10_000 {
                let now = wall_clock_ms();
                scheduled.retain(|_, s| *s > now);
            }
            scheduled.insert(event, at);
        }
    }
}

impl Worker {
    fn note_batch(&self, applied: usize, started: Instant) {
        self.counters
            .applied
            .fetch_add(applied as u64, Ordering::Relaxed);
        self.counters
            .busy_us
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
}

async fn heartbeat(worker: Arc<Worker>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(worker.settings.heartbeat_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let c = &worker.counters;
        let beat = worker.store.heartbeat(
            &worker.name,
            c.applied.load(Ordering::Relaxed),
            c.busy_us.load(Ordering::Relaxed),
        );
        if let Err(e) = beat.await {
            tracing::warn!(error = %e, "heartbeat failed");
        }
        if let Err(e) = c.tally.flush(&worker.store).await {
            tracing::warn!(error = %e, "cannot add to the service-wide figures; kept for the next beat");
        }
    }
}

/// The default name of a worker process: host and pid, unique across machines and restarts.
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!("worker-{host}-{}", std::process::id())
}

/// The whole `worker` binary: settings from CONFIG_DIR (default `config`) and the environment,
/// logs, then work until SIGTERM or SIGINT. The process is named by WORKER_NAME.
pub async fn run_from_env() -> anyhow::Result<()> {
    let dir =
        std::path::PathBuf::from(std::env::var("CONFIG_DIR").unwrap_or_else(|_| "config".into()));
    let settings = Settings::load(&dir)?;
    let name = std::env::var("WORKER_NAME").unwrap_or_else(|_| default_name());
    let _log = bootstrap::init_tracing(&name, settings.log.dir.as_ref(), &settings.log.level)?;
    let app = Application::build(&settings, name).await?;
    app.run_until_stopped(bootstrap::shutdown_signal()).await
}

/// The `worker` binary, as shipped and as the e2e tests run it: [`run_from_env`] on a
/// current_thread runtime. One thread: a worker's tasks spend their time waiting on Redis, and on
/// one thread a reply wakes its task without a hop to another thread (WORKERS scales the pool by
/// processes).
pub fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run_from_env())
}
