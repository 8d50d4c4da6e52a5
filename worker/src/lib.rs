//! The worker process: drains event queues with `process.lua`, keeps the housekeeping passes
//! going, and turns keyspace notifications into prompt sweeps.
//!
//! A process runs WORKER_CONCURRENCY drain tasks, each on its own Redis connection (a blocking
//! pop holds up every other command on its connection), with at most WORKER_CALLS_IN_FLIGHT
//! `process.lua` calls in flight per primary among them, a heartbeat, a housekeeping loop and a
//! notification listener. On shutdown it stops taking tokens, finishes the batch in hand, hands
//! any event it was draining back to the pool, and exits.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use queue_core::settings::WorkerSettings;
use queue_core::{Settings, Store};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod drain;
mod housekeeping;
mod shared;

pub use shared::Counters;
use shared::Worker;

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
            in_flight: shared::InFlight::new(self.settings.calls_in_flight),
            settings: self.settings,
            name: self.name,
            counters: self.counters,
            full: shared::FullStore::default(),
        });
        let sweeps = Arc::new(drain::Sweeps::default());
        tracing::info!(
            worker = %worker.name,
            concurrency = worker.settings.concurrency,
            calls_in_flight = worker.settings.calls_in_flight,
            "worker started"
        );
        let mut tasks: Vec<JoinHandle<()>> = Vec::new();
        let mut shared_tokens = None;
        if worker.store.clustered() {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            for shard in queue_core::keys::Shard::all() {
                tasks.push(tokio::spawn(drain::pop_shard(
                    worker.clone(),
                    shard,
                    tx.clone(),
                    shutdown.clone(),
                )));
            }
            // The poppers hold the senders: once they all stop, the drain tasks hear it.
            drop(tx);
            shared_tokens = Some(Arc::new(drain::Tokens::Handed(Arc::new(
                tokio::sync::Mutex::new(rx),
            ))));
        }
        for task in 0..worker.settings.concurrency {
            let tokens = match &shared_tokens {
                Some(tokens) => tokens.clone(),
                None => Arc::new(drain::Tokens::Direct(
                    worker.store.dedicated_client().await?,
                )),
            };
            tasks.push(tokio::spawn(drain::run(
                worker.clone(),
                sweeps.clone(),
                tokens,
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
        if let Some(tokens) = shared_tokens {
            tokens.give_back(&worker).await;
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
        // A heartbeat is a write: its success is what ends an episode of a full Redis.
        match beat.await {
            Ok(()) => worker.full.succeeded(),
            Err(e) => {
                worker
                    .full
                    .failed(&e, || tracing::warn!(error = %e, "heartbeat failed"));
            }
        }
        if let Err(e) = c.tally.flush(&worker.store).await {
            worker.full.failed(&e, || {
                tracing::warn!(error = %e, "cannot add to the service-wide figures; kept for the next beat")
            });
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
