//! One user task: a user's holds at once, their jobs followed to the end, then reserves of part
//! of what they got; again and again until the run is over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::config::Waiting;
use super::state::{micros, Shared, Slot};
use super::trace::TraceRow;
use crate::api::{now_ms, Api, JobAnswer, Posted};
use crate::check::{Job, Kind, Outcome, Uncertain};
use crate::stats::Counts;

/// What one user-task saw (the latencies go straight to [`Shared::latencies`]).
#[derive(Default)]
pub(super) struct Local {
    pub(super) counts: Counts,
    pub(super) jobs: Vec<Job>,
    pub(super) uncertain: Vec<Uncertain>,
    pub(super) late: u64,
    pub(super) trace: Vec<TraceRow>,
}

/// One POST and its job, as far as it went.
struct Attempt {
    seat: u32,
    counts: Vec<String>,
    lat_202: Option<Duration>,
    lat_result: Option<Duration>,
    server_ms: Option<i64>,
    job: Option<Job>,
    /// A POST with no clear answer (a 503 or no answer at all): the service may have stored it.
    uncertain: Option<Uncertain>,
    late: bool,
    trace: Option<TraceRow>,
}

impl Attempt {
    fn new(seat: u32) -> Self {
        Self {
            seat,
            counts: Vec::new(),
            lat_202: None,
            lat_result: None,
            server_ms: None,
            job: None,
            uncertain: None,
            late: false,
            trace: None,
        }
    }

    fn succeeded(&self) -> bool {
        matches!(
            self.job,
            Some(Job {
                outcome: Outcome::Completed { code: 200, .. },
                ..
            })
        )
    }
}

pub(super) async fn user_task(shared: Arc<Shared>, api: Api, mut rng: StdRng) -> Local {
    let mut local = Local::default();
    let cfg = &shared.cfg;
    loop {
        let go = shared.next_go.fetch_add(1, Ordering::Relaxed);
        if cfg.duration.is_none() && cfg.requests.is_none() && go >= u64::from(cfg.users) {
            break;
        }
        let user = &shared.users[(go % u64::from(cfg.users)) as usize];
        let event = &shared.events[rng.gen_range(0..shared.events.len())];
        let pool = cfg.hot_seats.unwrap_or(cfg.seats).clamp(1, cfg.seats);
        let wanted = rng.gen_range(1..=cfg.holds_per_user).min(pool);
        let seats: Vec<u32> = rand::seq::index::sample(&mut rng, pool as usize, wanted as usize)
            .into_iter()
            .map(|i| i as u32 + 1)
            .collect();

        // The user's holds go out at once, as from several browser tabs.
        let holds = futures::future::join_all(
            seats
                .iter()
                .map(|&seat| attempt(&shared, &api, Kind::Hold, event, seat, user)),
        )
        .await;
        let stopped = holds.iter().any(|a| a.counts.is_empty());
        let mut got: Vec<u32> = holds
            .iter()
            .filter(|a| a.succeeded())
            .map(|a| a.seat)
            .collect();
        record(&shared, &mut local, holds);

        let keep = (got.len() as f64 * cfg.reserve_ratio).round() as usize;
        got.shuffle(&mut rng);
        got.truncate(keep);
        if !stopped && !got.is_empty() {
            let reserves = futures::future::join_all(
                got.iter()
                    .map(|&seat| attempt(&shared, &api, Kind::Reserve, event, seat, user)),
            )
            .await;
            record(&shared, &mut local, reserves);
        }
        if stopped {
            break;
        }
    }
    local
}

fn record(shared: &Shared, local: &mut Local, attempts: Vec<Attempt>) {
    // A task that panicked holding the lock left nothing half-recorded: a histogram update is
    // one counter.
    let mut lat = shared
        .latencies
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for a in attempts {
        for c in &a.counts {
            local.counts.bump(c);
        }
        if let Some(d) = a.lat_202 {
            lat.lat_202.record(d);
        }
        if let Some(d) = a.lat_result {
            lat.lat_result.record(d);
        }
        if let Some(ms) = a.server_ms {
            lat.lat_server.record_ms(ms);
        }
        if a.late {
            local.late += 1;
        }
        if let Some(job) = a.job {
            local.jobs.push(job);
        }
        if let Some(u) = a.uncertain {
            local.uncertain.push(u);
        }
        if let Some(t) = a.trace {
            local.trace.push(t);
        }
    }
}

/// One POST (hold or reserve) and, when accepted, its job followed to the end. An attempt with
/// no counts means the run is over and nothing was sent.
async fn attempt(
    shared: &Shared,
    api: &Api,
    kind: Kind,
    event: &str,
    seat: u32,
    user: &str,
) -> Attempt {
    let mut a = Attempt::new(seat);
    match shared.slot().await {
        Slot::Stop => return a,
        Slot::Late => a.late = true,
        Slot::Go => {}
    }
    let name = kind.name();
    let seat_id = format!("{event}:{seat}");
    let sent = Instant::now();
    let sent_unix_ms = now_ms();
    let posted = match kind {
        Kind::Hold => api.hold(&seat_id, user).await,
        Kind::Reserve => api.reserve(&seat_id, user).await,
    };
    shared.mark(&shared.last_post_us);
    if shared.cfg.trace.is_some() {
        a.trace = Some(TraceRow {
            sent_us: micros(sent - shared.start),
            kind,
            event: event.to_owned(),
            seat,
            post_status: match &posted {
                Ok(posted) => posted.status(),
                Err(_) => 0,
            },
            answered_us: micros(shared.start.elapsed()),
            result: None,
            result_us: None,
            times: None,
            sent_unix_ms,
        });
    }
    let job_id = match posted {
        Ok(Posted::Success { body, .. }) => {
            a.lat_202 = Some(sent.elapsed());
            a.counts.push(format!("{name}.post.202"));
            shared.accepted.fetch_add(1, Ordering::Relaxed);
            body.job_id
        }
        Ok(Posted::Refused { status, .. }) => {
            a.counts.push(format!("{name}.post.{status}"));
            if status == 503 {
                // Redis may have stored the job and gone away before answering.
                a.uncertain = Some(Uncertain::new(kind, event, seat, user));
            }
            return a;
        }
        Err(e) => {
            a.counts.push(format!("{name}.post.error"));
            report_error(&e);
            a.uncertain = Some(Uncertain::new(kind, event, seat, user));
            return a;
        }
    };
    let accepted = Instant::now();
    let (outcome, times) = follow(shared, api, &job_id).await;
    match &outcome {
        Outcome::Completed { code, .. } => {
            a.counts.push(format!("{name}.job.{code}"));
            a.lat_result = Some(accepted.elapsed());
        }
        Outcome::Failed { .. } => {
            a.counts.push("job.failed".to_owned());
            a.lat_result = Some(accepted.elapsed());
        }
        Outcome::Unfinished => a.counts.push("job.unfinished".to_owned()),
        Outcome::Lost => a.counts.push("job.lost".to_owned()),
    }
    if a.lat_result.is_some() {
        shared.finished.fetch_add(1, Ordering::Relaxed);
        shared.mark(&shared.last_result_us);
    }
    a.server_ms = times.map(|(created, completed)| completed - created);
    if let Some(row) = &mut a.trace {
        row.result = Some(match &outcome {
            Outcome::Completed { code, .. } => code.to_string(),
            Outcome::Failed { .. } => "failed".to_owned(),
            Outcome::Unfinished => "unfinished".to_owned(),
            Outcome::Lost => "lost".to_owned(),
        });
        row.result_us = a.lat_result.map(|_| micros(shared.start.elapsed()));
        row.times = times;
    }
    a.job = Some(Job {
        id: job_id,
        kind,
        event: event.to_owned(),
        seat,
        user: user.to_owned(),
        outcome,
    });
    a
}

/// Follows a job until it finishes, or `finish_timeout` passes.
async fn follow(shared: &Shared, api: &Api, job: &str) -> (Outcome, Option<(i64, i64)>) {
    let deadline = Instant::now() + shared.cfg.finish_timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let answer = match shared.cfg.waiting {
            Waiting::Wait => {
                let wait = left.as_secs().clamp(1, 5);
                api.job(job, Some(wait)).await
            }
            Waiting::Poll(_) => api.job(job, None).await,
        };
        match answer {
            Ok(JobAnswer::Completed(c)) => {
                return (
                    Outcome::Completed {
                        code: c.code,
                        completed_at: c.completed_at,
                        expires_at: c.expires_at,
                    },
                    Some((c.created_at, c.completed_at)),
                )
            }
            Ok(JobAnswer::Failed { error, .. }) => {
                return (Outcome::Failed { reason: error }, None)
            }
            Ok(JobAnswer::NotFound) => return (Outcome::Lost, None),
            Ok(JobAnswer::Pending) => {}
            Err(e) => {
                report_error(&e);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if Instant::now() >= deadline {
            return (Outcome::Unfinished, None);
        }
        if let Waiting::Poll(every) = shared.cfg.waiting {
            tokio::time::sleep(every).await;
        }
    }
}

/// Transport errors are counted, not fatal; the first few are printed so a broken setup shows.
pub fn report_error(e: &anyhow::Error) {
    static PRINTED: AtomicU64 = AtomicU64::new(0);
    if PRINTED.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("loadgen: request error: {e:#}");
    }
}
