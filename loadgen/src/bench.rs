//! The measurements behind `bench/run.sh`, each a piece the script strings together:
//!
//! - [`backlog`]: accept holds flat out (with the workers stopped, so every one stays queued):
//!   the 202 rate, and the backlog for [`drain`].
//! - [`drain`]: wait until every job of a backlog is applied: the pool's drain rate.
//! - [`cycle`]: hold → result → release, over and over, on one event: what a hold costs there.
//! - [`timings`]: create an event of S seats and list its seats, N times: the medians.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use crate::api::{job_seq, now_ms, Api, JobAnswer, Posted};
use crate::stats::{per_sec, Counts, Latency, LatencySummary};

/// One event of a backlog: its id and the ids of its first and last accepted jobs (by sequence
/// number), as the API gave them: a job id cannot be made from its event and number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BacklogEvent {
    pub id: String,
    pub first_job: Option<String>,
    pub last_job: Option<String>,
    pub jobs: u64,
}

/// The first and last job of an event, by sequence number, among those a sender was given.
#[derive(Debug, Clone, Default)]
struct Ends {
    first: Option<(u64, String)>,
    last: Option<(u64, String)>,
    jobs: u64,
}

impl Ends {
    fn add(&mut self, seq: u64, id: &str) {
        if self.first.as_ref().is_none_or(|(s, _)| seq < *s) {
            self.first = Some((seq, id.to_owned()));
        }
        if self.last.as_ref().is_none_or(|(s, _)| seq > *s) {
            self.last = Some((seq, id.to_owned()));
        }
        self.jobs += 1;
    }

    fn merge(&mut self, other: Ends) {
        let jobs = self.jobs + other.jobs;
        for (seq, id) in other.first.into_iter().chain(other.last) {
            self.add(seq, &id);
        }
        self.jobs = jobs;
    }
}

/// What [`backlog`] did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BacklogReport {
    pub seats: u32,
    pub connections: usize,
    pub events: Vec<BacklogEvent>,
    pub posts: u64,
    pub accepted: u64,
    pub secs: f64,
    pub accepted_per_sec: f64,
    /// POST answers by status.
    pub counts: Counts,
    pub latency_202: LatencySummary,
}

impl BacklogReport {
    pub fn text(&self) -> String {
        format!(
            "backlog: {} holds accepted of {} POSTs on {} events x {} seats in {:.2} s over {} connections: {:.0} 202s/s\n  latency of the 202: {}\n  answers: {:?}\n",
            self.accepted,
            self.posts,
            self.events.len(),
            self.seats,
            self.secs,
            self.connections,
            self.accepted_per_sec,
            self.latency_202.line(),
            self.counts.0
        )
    }
}

/// Creates `events` events of `seats` seats (or uses `existing`) and sends `holds` holds flat out
/// over `connections` connections, each by a new user, spread evenly over the events and their
/// seats. Meant for a service whose workers are stopped: every hold is then accepted and stays
/// queued.
pub async fn backlog(
    url: &str,
    events: u32,
    seats: u32,
    existing: &[String],
    holds: Option<u64>,
    connections: usize,
    progress: bool,
) -> Result<BacklogReport> {
    ensure!(connections >= 1, "at least one connection");
    let api = Api::new(url, connections)?;
    let ids: Vec<String> = if existing.is_empty() {
        let mut ids = Vec::new();
        for i in 0..events {
            ids.push(
                api.create_event(&format!("Backlog {}", i + 1), seats)
                    .await?,
            );
        }
        ids
    } else {
        existing.to_vec()
    };
    let total = holds.unwrap_or(u64::from(seats) * ids.len() as u64);
    let bar = progress.then(|| counted_bar(total, "holds"));
    let next = Arc::new(AtomicU64::new(0));
    let ids = Arc::new(ids);
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (api, next, ids, bar) = (api.clone(), next.clone(), ids.clone(), bar.clone());
            tokio::spawn(async move {
                let mut lat = Latency::new();
                let mut counts = Counts::default();
                let mut ends: Vec<Ends> = vec![Ends::default(); ids.len()];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let e = (i % ids.len() as u64) as usize;
                    let seat = (i / ids.len() as u64) % u64::from(seats) + 1;
                    let user = uuid::Uuid::new_v4().to_string();
                    let sent = Instant::now();
                    match api.hold(&format!("{}:{seat}", ids[e]), &user).await {
                        Ok(Posted::Success { body, .. }) => {
                            lat.record(sent.elapsed());
                            counts.bump("202");
                            ends[e].add(job_seq(&body.job_id)?, &body.job_id);
                        }
                        Ok(Posted::Refused { status, .. }) => counts.bump(&status.to_string()),
                        Err(err) => {
                            counts.bump("error");
                            crate::onsale::report_error(&err);
                        }
                    }
                    if let Some(bar) = &bar {
                        bar.inc(1);
                    }
                }
                Ok::<_, anyhow::Error>((lat, counts, ends, Instant::now()))
            })
        })
        .collect();
    let mut lat = Latency::new();
    let mut counts = Counts::default();
    let mut ends: Vec<Ends> = vec![Ends::default(); ids.len()];
    let mut end = start;
    for t in tasks {
        let (l, c, e, done) = t.await.context("a sender panicked")??;
        lat.add(&l);
        counts.merge(&c);
        for (all, one) in ends.iter_mut().zip(e) {
            all.merge(one);
        }
        end = end.max(done);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = (end - start).as_secs_f64();
    let accepted = counts.get("202");
    Ok(BacklogReport {
        seats,
        connections,
        events: ids
            .iter()
            .zip(ends)
            .map(|(id, ends)| BacklogEvent {
                id: id.clone(),
                first_job: ends.first.map(|(_, job)| job),
                last_job: ends.last.map(|(_, job)| job),
                jobs: ends.jobs,
            })
            .collect(),
        posts: total,
        accepted,
        secs,
        accepted_per_sec: per_sec(accepted, secs),
        counts,
        latency_202: lat.summary(),
    })
}

/// What [`drain`] measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrainReport {
    pub jobs: u64,
    /// When the workers were started (ms since the epoch), if the caller said.
    pub since_ms: Option<i64>,
    /// `completedAt` of the first and of the last job applied (Redis's clock).
    pub first_completed_ms: i64,
    pub last_completed_ms: i64,
    /// Jobs over the time from the workers' start (or, without it, from the first job applied)
    /// to the last job applied.
    pub secs: f64,
    pub jobs_per_sec: f64,
    /// Jobs over the time from the first job applied to the last (no start-up in it).
    pub first_to_last_secs: f64,
    pub first_to_last_per_sec: f64,
    /// Job results by outcome (`200`, `409`, `failed`) of the first and last job of each event.
    pub ends: Counts,
    /// Seats on hold or reserved afterwards, summed over the events (one hold per seat: equal to
    /// the jobs when every hold was applied).
    pub seats_taken: u64,
}

impl DrainReport {
    pub fn text(&self) -> String {
        format!(
            "drain: {} jobs applied in {:.3} s from the workers' start: {:.0} jobs/s ({:.0} jobs/s from the first job applied to the last); {} seats taken\n",
            self.jobs,
            self.secs,
            self.jobs_per_sec,
            self.first_to_last_per_sec,
            self.seats_taken
        )
    }
}

/// Waits until the last job of every event of `backlog` is finished (jobs of one event are
/// applied in order, so then all are), and reads the first and last completion times.
pub async fn drain(
    url: &str,
    backlog: &BacklogReport,
    since_ms: Option<i64>,
    timeout: Duration,
) -> Result<DrainReport> {
    let api = Api::new(url, backlog.events.len() * 2)?;
    let deadline = Instant::now() + timeout;
    let with_jobs = backlog.events.iter().filter_map(|e| {
        let (first, last) = (e.first_job.as_deref()?, e.last_job.as_deref()?);
        Some((e, first, last))
    });
    let ends = futures::future::join_all(with_jobs.map(|(e, first_job, last_job)| {
        let api = &api;
        async move {
            let last = finished(api, last_job, deadline).await?;
            let first = finished(api, first_job, deadline).await?;
            let counts = api.event(&e.id).await?;
            Ok::<_, anyhow::Error>((first, last, u64::from(counts.on_hold + counts.reserved)))
        }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let mut first_ms = i64::MAX;
    let mut last_ms = 0;
    let mut counts = Counts::default();
    let mut taken = 0;
    for ((f_ms, f_code), (l_ms, l_code), t) in ends {
        first_ms = first_ms.min(f_ms);
        last_ms = last_ms.max(l_ms);
        counts.bump(&f_code);
        counts.bump(&l_code);
        taken += t;
    }
    ensure!(last_ms > 0, "the backlog has no jobs");
    let jobs: u64 = backlog.events.iter().map(|e| e.jobs).sum();
    let from = since_ms.unwrap_or(first_ms);
    let secs = (last_ms - from).max(1) as f64 / 1000.0;
    let f2l = (last_ms - first_ms).max(1) as f64 / 1000.0;
    Ok(DrainReport {
        jobs,
        since_ms,
        first_completed_ms: first_ms,
        last_completed_ms: last_ms,
        secs,
        jobs_per_sec: per_sec(jobs, secs),
        first_to_last_secs: f2l,
        first_to_last_per_sec: per_sec(jobs, f2l),
        ends: counts,
        seats_taken: taken,
    })
}

/// Waits for a job to finish: its `completedAt` and outcome (`200`, `409`…, `failed`).
async fn finished(api: &Api, job: &str, deadline: Instant) -> Result<(i64, String)> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).as_secs();
        if left == 0 {
            bail!("job {job} did not finish in time");
        }
        match api.job(job, Some(left.min(30))).await? {
            JobAnswer::Completed(c) => return Ok((c.completed_at, c.code.to_string())),
            JobAnswer::Failed { completed_at, .. } => return Ok((completed_at, "failed".into())),
            JobAnswer::NotFound => bail!("job {job} is unknown"),
            JobAnswer::Pending => {}
        }
    }
}

/// What [`cycle`] measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CycleReport {
    pub seats: u32,
    pub connections: usize,
    pub cycles: u64,
    pub secs: f64,
    pub cycles_per_sec: f64,
    pub latency_202: LatencySummary,
    pub accept_to_result: LatencySummary,
    pub release: LatencySummary,
    /// One whole hold → result → release.
    pub cycle: LatencySummary,
    /// Anything that was not a 202, a 200 hold and a 200 release.
    pub other: Counts,
}

impl CycleReport {
    pub fn text(&self) -> String {
        format!(
            "cycle on a {}-seat event, {} users at once: {} hold/result/release cycles in {:.2} s: {:.0} cycles/s\n  202:              {}\n  accept to result: {}\n  release:          {}\n  whole cycle:      {}\n  other answers:    {:?}\n",
            self.seats,
            self.connections,
            self.cycles,
            self.secs,
            self.cycles_per_sec,
            self.latency_202.line(),
            self.accept_to_result.line(),
            self.release.line(),
            self.cycle.line(),
            self.other.0
        )
    }
}

/// On a new event of `seats` seats, `connections` users each hold a seat of their own, wait for
/// the result (`?wait`), release it, and go again with their next seat, for `duration`.
pub async fn cycle(
    url: &str,
    seats: u32,
    connections: usize,
    duration: Duration,
    progress: bool,
) -> Result<CycleReport> {
    ensure!(
        connections >= 1 && connections <= seats as usize,
        "between 1 and {seats} users, one seat each at least"
    );
    let api = Api::new(url, connections * 2)?;
    let event = api.create_event("Cycle", seats).await?;
    let bar = progress.then(|| counted_bar(duration.as_millis() as u64, "ms"));
    let start = Instant::now();
    let stop_at = start + duration;
    let all = Arc::new(Mutex::new((
        Latency::new(),
        Latency::new(),
        Latency::new(),
        Latency::new(),
        Counts::default(),
        0u64,
    )));
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let (api, event, all, bar) = (api.clone(), event.clone(), all.clone(), bar.clone());
            tokio::spawn(async move {
                let user = uuid::Uuid::new_v4().to_string();
                let mine: Vec<u32> = (1..=seats)
                    .filter(|n| (*n as usize - 1) % connections == i)
                    .collect();
                let (mut l202, mut lres, mut lrel, mut lcyc) = (
                    Latency::new(),
                    Latency::new(),
                    Latency::new(),
                    Latency::new(),
                );
                let mut other = Counts::default();
                let mut cycles = 0u64;
                for seat in mine.iter().cycle() {
                    if Instant::now() >= stop_at {
                        break;
                    }
                    let id = format!("{event}:{seat}");
                    let t0 = Instant::now();
                    let job = match api.hold(&id, &user).await? {
                        Posted::Success { body, .. } => body.job_id,
                        Posted::Refused { status, .. } => {
                            other.bump(&format!("hold.post.{status}"));
                            continue;
                        }
                    };
                    l202.record(t0.elapsed());
                    let t1 = Instant::now();
                    let code = loop {
                        match api.job(&job, Some(5)).await? {
                            JobAnswer::Completed(c) => break c.code.to_string(),
                            JobAnswer::Failed { .. } => break "failed".to_owned(),
                            JobAnswer::NotFound => break "lost".to_owned(),
                            JobAnswer::Pending => {}
                        }
                    };
                    lres.record(t1.elapsed());
                    if code != "200" {
                        other.bump(&format!("hold.job.{code}"));
                        continue;
                    }
                    let t2 = Instant::now();
                    let released = api.release(&id, &user).await?.status();
                    lrel.record(t2.elapsed());
                    if released != 200 {
                        other.bump(&format!("release.{released}"));
                        continue;
                    }
                    lcyc.record(t0.elapsed());
                    cycles += 1;
                    if let Some(bar) = &bar {
                        bar.set_position(start.elapsed().as_millis() as u64);
                    }
                }
                let mut all = all.lock().map_err(|_| anyhow::anyhow!("a poisoned lock"))?;
                all.0.add(&l202);
                all.1.add(&lres);
                all.2.add(&lrel);
                all.3.add(&lcyc);
                all.4.merge(&other);
                all.5 += cycles;
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.context("a user task panicked")??;
    }
    let secs = start.elapsed().as_secs_f64();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let all = all.lock().map_err(|_| anyhow::anyhow!("a poisoned lock"))?;
    Ok(CycleReport {
        seats,
        connections,
        cycles: all.5,
        secs,
        cycles_per_sec: per_sec(all.5, secs),
        latency_202: all.0.summary(),
        accept_to_result: all.1.summary(),
        release: all.2.summary(),
        cycle: all.3.summary(),
        other: all.4.clone(),
    })
}

/// What [`timings`] measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimingsReport {
    pub seats: u32,
    pub repeat: u32,
    /// `POST /events/create`.
    pub create: LatencySummary,
    /// `GET /seats/list/{id}` of a fresh event (all seats listed), body read whole.
    pub list: LatencySummary,
    /// `GET /events/{id}` (with counts).
    pub event: LatencySummary,
    pub list_bytes: usize,
}

impl TimingsReport {
    pub fn text(&self) -> String {
        format!(
            "timings on {}-seat events, {} times each (one request at a time):\n  create: {}\n  list:   {}  ({} bytes)\n  event:  {}\n",
            self.seats,
            self.repeat,
            self.create.line(),
            self.list.line(),
            self.list_bytes,
            self.event.line()
        )
    }
}

/// Creates `repeat` events of `seats` seats and lists each, one request at a time.
pub async fn timings(url: &str, seats: u32, repeat: u32) -> Result<TimingsReport> {
    ensure!(repeat >= 1, "at least once");
    let api = Api::new(url, 1)?;
    // One request first, so that the connection is open before anything is timed.
    let warm = api.create_event("Warm-up", seats).await?;
    let _ = api.list_len(&warm).await?;
    let (mut create, mut list, mut event) = (Latency::new(), Latency::new(), Latency::new());
    let mut bytes = 0;
    for i in 0..repeat {
        let t = Instant::now();
        let id = api
            .create_event(&format!("Timing {}", i + 1), seats)
            .await?;
        create.record(t.elapsed());
        let t = Instant::now();
        bytes = api.list_len(&id).await?;
        list.record(t.elapsed());
        let t = Instant::now();
        let counts = api.event(&id).await?;
        event.record(t.elapsed());
        ensure!(
            counts.available == seats,
            "a fresh event has every seat Available"
        );
    }
    Ok(TimingsReport {
        seats,
        repeat,
        create: create.summary(),
        list: list.summary(),
        event: event.summary(),
        list_bytes: bytes,
    })
}

fn counted_bar(len: u64, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    let template = format!("{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}}");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Now, for `drain --since-ms`.
pub fn now() -> i64 {
    now_ms()
}
