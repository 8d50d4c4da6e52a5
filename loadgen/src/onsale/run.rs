//! The run: events and users set up, connections opened, the user tasks started and gathered,
//! then the read-back and the invariant check.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::stream::{self, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::OnSale;
use super::readback::read_back;
use super::report::OnSaleReport;
use super::state::{Latencies, Shared};
use super::trace::write_trace;
use super::user::{user_task, Local};
use crate::api::Api;
use crate::check::{self, Outcome};
use crate::stats::per_sec;

/// Runs the on-sale and checks the invariants.
pub async fn run(cfg: &OnSale) -> Result<OnSaleReport> {
    anyhow::ensure!(cfg.connections >= 1, "at least one connection");
    anyhow::ensure!(cfg.users >= 1, "at least one user");
    anyhow::ensure!(cfg.holds_per_user >= 1, "at least one hold per user");
    anyhow::ensure!(
        (0.0..=1.0).contains(&cfg.reserve_ratio),
        "the reserve ratio is from 0 to 1"
    );
    let api = Api::new(&cfg.url, 32)?.with_auth(cfg.auth.clone());
    let events = if cfg.existing_events.is_empty() {
        let created = stream::iter(0..cfg.events)
            .map(|i| {
                let api = &api;
                async move {
                    api.create_event(&format!("On-sale {}", i + 1), cfg.seats)
                        .await
                }
            })
            .buffered(8)
            .collect::<Vec<_>>()
            .await;
        created
            .into_iter()
            .collect::<Result<Vec<_>>>()
            .context("creating the events")?
    } else {
        cfg.existing_events.clone()
    };
    let users: Vec<String> = (0..cfg.users)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    // Each user task has an HTTP client of its own, as a browser does, with up to K connections
    // for its K holds at once. They are opened before the clock starts, and a task's
    // connections stay in use as long as it goes: connection setup is not part of what is
    // measured. (One client shared by every task opened connections during the run whenever
    // more requests were in flight than it had idle, and those first requests formed the tail.)
    let warm_path = format!("/events/{}", events.first().context("no event")?);
    let clients = stream::iter(0..cfg.connections)
        .map(|_| {
            let warm_path = &warm_path;
            async move {
                let client =
                    Api::new(&cfg.url, cfg.holds_per_user as usize)?.with_auth(cfg.auth.clone());
                client
                    .open_connections(warm_path, cfg.holds_per_user as usize)
                    .await?;
                Ok::<_, anyhow::Error>(client)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()
        .context("opening the users' connections")?;

    let start = Instant::now();
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        events: events.clone(),
        users,
        start,
        stop_at: cfg.duration.map(|d| start + d),
        issued: AtomicU64::new(0),
        next_go: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        last_post_us: AtomicU64::new(0),
        last_result_us: AtomicU64::new(0),
        latencies: Mutex::new(Latencies::default()),
    });

    let bar = progress_bar(cfg);
    let ticker = bar.clone().map(|bar| {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let elapsed = shared.start.elapsed();
                let pos = if shared.cfg.duration.is_some() {
                    elapsed.as_millis() as u64
                } else if shared.cfg.requests.is_some() {
                    shared.issued.load(Ordering::Relaxed)
                } else {
                    shared.next_go.load(Ordering::Relaxed)
                };
                bar.set_position(pos);
                let secs = elapsed.as_secs_f64();
                bar.set_message(format!(
                    "{} accepted ({:.0}/s), {} finished ({:.0}/s)",
                    shared.accepted.load(Ordering::Relaxed),
                    per_sec(shared.accepted.load(Ordering::Relaxed), secs),
                    shared.finished.load(Ordering::Relaxed),
                    per_sec(shared.finished.load(Ordering::Relaxed), secs),
                ));
            }
        })
    });

    let mut seed_rng = match cfg.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_entropy(),
    };
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let shared = shared.clone();
            let rng = StdRng::seed_from_u64(seed_rng.gen());
            tokio::spawn(user_task(shared, client, rng))
        })
        .collect();
    let mut all = Local::default();
    for task in tasks {
        let local = task.await.context("a user task panicked")?;
        all.counts.merge(&local.counts);
        all.late += local.late;
        all.trace.extend(local.trace);
        all.jobs.extend(local.jobs);
        all.uncertain.extend(local.uncertain);
    }
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some(path) = &cfg.trace {
        write_trace(path, std::mem::take(&mut all.trace))?;
    }

    let latencies = std::mem::take(
        &mut *shared
            .latencies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    );
    let send_secs = shared.last_post_us.load(Ordering::Relaxed) as f64 / 1e6;
    let total_secs = (shared.last_result_us.load(Ordering::Relaxed) as f64 / 1e6).max(send_secs);
    let accepted = all.jobs.len() as u64;
    let finished = all
        .jobs
        .iter()
        .filter(|j| {
            matches!(
                j.outcome,
                Outcome::Completed { .. } | Outcome::Failed { .. }
            )
        })
        .count() as u64;
    let posts = all.counts.sum_prefix("hold.post.") + all.counts.sum_prefix("reserve.post.");

    let readback = if cfg.read_back {
        let mut readback = read_back(&api, &events, &all.jobs, &all.uncertain).await?;
        readback.uncertain = all.uncertain.clone();
        Some(readback)
    } else {
        None
    };
    let margin_ms = cfg.clock_margin.as_millis() as i64;
    let mut violations = check::check(&all.jobs, cfg.cap, readback.as_ref(), margin_ms);
    let mut model = check::replay(
        &all.jobs,
        &all.uncertain,
        &check::ModelRun {
            events: &events,
            seats: cfg.seats,
            cap: cfg.cap,
            hold_ms: cfg.hold_ttl.map(|ttl| ttl.as_millis() as i64),
        },
        readback.as_ref(),
        margin_ms,
    );
    violations.append(&mut model.violations);
    Ok(OnSaleReport {
        settings: cfg.clone(),
        event_ids: events,
        send_secs,
        total_secs,
        posts,
        accepted,
        accepted_per_sec: per_sec(accepted, send_secs),
        finished,
        finished_per_sec: per_sec(finished, total_secs),
        counts: all.counts,
        latency_202: latencies.lat_202.summary(),
        accept_to_result: latencies.lat_result.summary(),
        accept_to_result_server: latencies.lat_server.summary(),
        late_posts: all.late,
        seats_read_back: readback.as_ref().map_or(0, |r| r.seats.len()),
        model,
        violations,
    })
}

fn progress_bar(cfg: &OnSale) -> Option<indicatif::ProgressBar> {
    if !cfg.progress {
        return None;
    }
    let (len, unit) = match (cfg.duration, cfg.requests) {
        (Some(d), _) => (d.as_millis() as u64, "ms"),
        (None, Some(n)) => (n, "POSTs"),
        (None, None) => (u64::from(cfg.users), "users"),
    };
    let bar = indicatif::ProgressBar::new(len);
    let template = format!("{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{msg}}");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}
