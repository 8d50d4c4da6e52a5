//! The on-sale: E events of S seats; users each try to hold up to K seats at once (anywhere, or
//! on a few hot seats), wait for their jobs, and reserve part of what they got — flat out over
//! C concurrent users, or at a target rate of POSTs; for a duration, a number of POSTs, or until
//! every user had one go. Then the invariant check ([`crate::check`]) on what everyone was told
//! and on the state read back through the API.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::stream::{self, StreamExt};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::api::{now_ms, Api, JobAnswer, Posted};
use crate::check::{
    self, EventReading, Job, Kind, Outcome, Readback, SeatReading, Uncertain, Violation,
};
use crate::stats::{per_sec, Counts, Latency, LatencySummary};

/// How to wait for a job's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Waiting {
    /// `GET …/status?wait=5`, answered as soon as the job finishes.
    Wait,
    /// `GET …/status` every so often.
    Poll(Duration),
}

/// The on-sale's settings.
#[derive(Debug, Clone, Serialize)]
pub struct OnSale {
    /// The API's base URL.
    pub url: String,
    /// Events to create, and seats in each (10..=10000).
    pub events: u32,
    pub seats: u32,
    /// Use these existing events instead of creating new ones (the check then assumes nobody
    /// else touches them).
    pub existing_events: Vec<String>,
    /// Distinct users; each go picks one (in turn), an event at random, and 1..=K seats.
    pub users: u32,
    pub holds_per_user: u32,
    /// When set, users only try the first `hot` seats of each event (contention).
    pub hot_seats: Option<u32>,
    /// The part of the seats a user got that they go on to reserve (0..=1).
    pub reserve_ratio: f64,
    /// Target POSTs (holds and reserves) a second; flat out when `None`.
    pub rate: Option<f64>,
    /// Users going at once, each with an HTTP client of its own holding up to
    /// `holds_per_user` connections (opened before the clock starts).
    pub connections: usize,
    /// Stop starting new POSTs after this long…
    pub duration: Option<Duration>,
    /// …or after this many POSTs. With neither, every user has exactly one go.
    pub requests: Option<u64>,
    pub waiting: Waiting,
    /// MAX_HELD_SEATS of the service under test.
    pub cap: u32,
    /// How long to wait for an accepted job's result before calling it unfinished.
    pub finish_timeout: Duration,
    /// Clock difference forgiven around hold deadlines in the read-back.
    pub clock_margin: Duration,
    /// Read the seats back through the API at the end and check them.
    pub read_back: bool,
    pub progress: bool,
    /// Seed for the random choices (a random one when `None`).
    pub seed: Option<u64>,
    /// Write every POST's timings here as CSV (see [`TRACE_HEADER`]), after the run: what a
    /// percentile hides, such as when in the run the slow requests were and which leg was slow.
    pub trace: Option<PathBuf>,
}

impl Default for OnSale {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:3000".to_owned(),
            events: 4,
            seats: 1000,
            existing_events: Vec::new(),
            users: 10_000,
            holds_per_user: 8,
            hot_seats: None,
            reserve_ratio: 0.5,
            rate: None,
            connections: 64,
            duration: None,
            requests: None,
            waiting: Waiting::Wait,
            cap: 6,
            finish_timeout: Duration::from_secs(60),
            clock_margin: Duration::from_millis(1000),
            read_back: true,
            progress: true,
            seed: None,
            trace: None,
        }
    }
}

/// What the on-sale measured and found.
#[derive(Debug, Clone, Serialize)]
pub struct OnSaleReport {
    pub settings: OnSale,
    pub event_ids: Vec<String>,
    /// From the first POST to the last, and to the last result.
    pub send_secs: f64,
    pub total_secs: f64,
    pub posts: u64,
    pub accepted: u64,
    pub accepted_per_sec: f64,
    pub finished: u64,
    pub finished_per_sec: f64,
    /// Outcome counts: `hold.post.<status>` (the POST's answer), `hold.job.<code>` (the job's
    /// result), likewise `reserve.*`, and `job.failed` / `job.unfinished` / `job.lost`.
    pub counts: Counts,
    /// POST answered 202.
    pub latency_202: LatencySummary,
    /// From the 202 to the job's result, as the client saw it.
    pub accept_to_result: LatencySummary,
    /// `completedAt − createdAt` of each finished job (Redis's clock, ms resolution).
    pub accept_to_result_server: LatencySummary,
    /// POSTs that went out later than the target rate wanted (the generator fell behind).
    pub late_posts: u64,
    pub seats_read_back: usize,
    pub violations: Vec<Violation>,
}

impl OnSaleReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn text(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let rate = s
            .rate
            .map_or("flat out".to_owned(), |r| format!("{r:.0} POSTs/s"));
        out.push_str(&format!(
            "on-sale: {} events x {} seats, {} users, up to {} holds each{}, reserve {:.0}%, {} users at once, {rate}, {}\n",
            self.event_ids.len(),
            s.seats,
            s.users,
            s.holds_per_user,
            s.hot_seats.map_or(String::new(), |h| format!(" on {h} hot seats")),
            s.reserve_ratio * 100.0,
            s.connections,
            match s.waiting {
                Waiting::Wait => "?wait".to_owned(),
                Waiting::Poll(iv) => format!("polling every {iv:?}"),
            }
        ));
        out.push_str(&format!(
            "  sent {} POSTs in {:.2} s; all results in after {:.2} s\n",
            self.posts, self.send_secs, self.total_secs
        ));
        out.push_str(&format!(
            "  accepted (202): {:>9}  {:>10.0} /s\n",
            self.accepted, self.accepted_per_sec
        ));
        out.push_str(&format!(
            "  finished jobs:  {:>9}  {:>10.0} /s\n",
            self.finished, self.finished_per_sec
        ));
        out.push_str("  outcomes:\n");
        for (kind, n) in &self.counts.0 {
            out.push_str(&format!("    {kind:<22} {n:>9}\n"));
        }
        out.push_str(&format!(
            "  latency of the 202:        {}\n",
            self.latency_202.line()
        ));
        out.push_str(&format!(
            "  accept to result (client): {}\n",
            self.accept_to_result.line()
        ));
        out.push_str(&format!(
            "  accept to result (server): {}\n",
            self.accept_to_result_server.line()
        ));
        if self.late_posts > 0 {
            out.push_str(&format!(
                "  {} POSTs went out late: the generator could not keep the target rate\n",
                self.late_posts
            ));
        }
        if self.violations.is_empty() {
            out.push_str(&format!(
                "  invariants: OK (no seat held or reserved by two users, nobody over the cap of {}, every accepted job finished; {} seats read back)\n",
                s.cap, self.seats_read_back
            ));
        } else {
            out.push_str(&format!(
                "  invariants: {} VIOLATION(S)\n",
                self.violations.len()
            ));
            for v in self.violations.iter().take(20) {
                out.push_str(&format!("    [{}] {}\n", v.rule, v.detail));
            }
            if self.violations.len() > 20 {
                out.push_str(&format!("    … and {} more\n", self.violations.len() - 20));
            }
        }
        out
    }
}

/// What one user-task saw (the latencies go straight to [`Shared::latencies`]).
#[derive(Default)]
struct Local {
    counts: Counts,
    jobs: Vec<Job>,
    uncertain: Vec<Uncertain>,
    late: u64,
    trace: Vec<TraceRow>,
}

/// The columns of `--trace`, one row per POST in the order they went out. Times in µs are from
/// the run's start (the generator's clock); `created_ms`/`completed_ms` are the job's
/// `createdAt`/`completedAt` and `sent_unix_ms` the generator's wall clock at the POST, so that
/// the two clocks (the same one on a single machine) can be lined up. A field that does not
/// apply is empty.
pub const TRACE_HEADER: &str =
    "sent_us,kind,event,seat,post_status,answered_us,result,result_us,created_ms,completed_ms,sent_unix_ms";

/// One row of `--trace`.
struct TraceRow {
    sent_us: u64,
    kind: Kind,
    event: String,
    seat: u32,
    /// 0 when no HTTP answer came.
    post_status: u16,
    answered_us: u64,
    /// The job's result code, or how it ended otherwise ("failed", "unfinished", "lost").
    result: Option<String>,
    result_us: Option<u64>,
    times: Option<(i64, i64)>,
    sent_unix_ms: i64,
}

impl TraceRow {
    fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            self.sent_us,
            self.kind.name(),
            self.event,
            self.seat,
            self.post_status,
            self.answered_us,
            self.result.as_deref().unwrap_or(""),
            opt(self.result_us.and_then(|v| i64::try_from(v).ok())),
            opt(self.times.map(|t| t.0)),
            opt(self.times.map(|t| t.1)),
            self.sent_unix_ms,
        )
    }
}

fn write_trace(path: &Path, mut rows: Vec<TraceRow>) -> Result<()> {
    rows.sort_by_key(|r| r.sent_us);
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    writeln!(out, "{TRACE_HEADER}")?;
    for row in &rows {
        row.write(&mut out)?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// The run's latency histograms, one set shared by every user task.
///
/// Not a set per task: a histogram of this range takes ~170 KB, so the sets of a 256-user run
/// were ~130 MB, first touched (page faults, zeroing) by every task in its first requests. That
/// stalled the generator for the first ~100 ms of each run, and the requests it delayed made up
/// most of the measured p99.
#[derive(Default)]
struct Latencies {
    lat_202: Latency,
    lat_result: Latency,
    lat_server: Latency,
}

struct Shared {
    cfg: OnSale,
    events: Vec<String>,
    users: Vec<String>,
    start: Instant,
    stop_at: Option<Instant>,
    /// POSTs handed out so far (for the request budget and the pacer).
    issued: AtomicU64,
    next_go: AtomicU64,
    accepted: AtomicU64,
    finished: AtomicU64,
    last_post_us: AtomicU64,
    last_result_us: AtomicU64,
    /// Locked once per group of attempts, never across an await.
    latencies: Mutex<Latencies>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The answer to asking for a POST slot.
enum Slot {
    Go,
    Late,
    Stop,
}

impl Shared {
    async fn slot(&self) -> Slot {
        if self.stop_at.is_some_and(|t| Instant::now() >= t) {
            return Slot::Stop;
        }
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        if self.cfg.requests.is_some_and(|max| n >= max) {
            return Slot::Stop;
        }
        let Some(rate) = self.cfg.rate else {
            return Slot::Go;
        };
        let due = self.start + Duration::from_secs_f64(n as f64 / rate);
        let now = Instant::now();
        if due > now {
            tokio::time::sleep_until(due.into()).await;
            if self.stop_at.is_some_and(|t| Instant::now() >= t) {
                return Slot::Stop;
            }
            Slot::Go
        } else if now - due > Duration::from_millis(10) {
            Slot::Late
        } else {
            Slot::Go
        }
    }

    fn mark(&self, at: &AtomicU64) {
        let us = micros(self.start.elapsed());
        at.fetch_max(us, Ordering::Relaxed);
    }
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

/// Runs the on-sale and checks the invariants.
pub async fn run(cfg: &OnSale) -> Result<OnSaleReport> {
    anyhow::ensure!(cfg.connections >= 1, "at least one connection");
    anyhow::ensure!(cfg.users >= 1, "at least one user");
    anyhow::ensure!(cfg.holds_per_user >= 1, "at least one hold per user");
    anyhow::ensure!(
        (0.0..=1.0).contains(&cfg.reserve_ratio),
        "the reserve ratio is from 0 to 1"
    );
    let api = Api::new(&cfg.url, 32)?;
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
                let client = Api::new(&cfg.url, cfg.holds_per_user as usize)?;
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
        let mut readback = read_back(&api, &events, &all.jobs).await?;
        readback.uncertain = all.uncertain.clone();
        Some(readback)
    } else {
        None
    };
    let violations = check::check(
        &all.jobs,
        cfg.cap,
        readback.as_ref(),
        cfg.clock_margin.as_millis() as i64,
    );
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

async fn user_task(shared: Arc<Shared>, api: Api, mut rng: StdRng) -> Local {
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
                Ok(Posted::Accepted { .. }) => 202,
                Ok(Posted::Refused { status, .. }) => *status,
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
        Ok(Posted::Accepted { job }) => {
            a.lat_202 = Some(sent.elapsed());
            a.counts.push(format!("{name}.post.202"));
            shared.accepted.fetch_add(1, Ordering::Relaxed);
            job
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

/// Reads back every seat the run touched, and each event's counts and listing.
pub async fn read_back(api: &Api, events: &[String], jobs: &[Job]) -> Result<Readback> {
    let mut touched: Vec<(&str, u32)> = jobs.iter().map(|j| (j.event.as_str(), j.seat)).collect();
    touched.sort_unstable();
    touched.dedup();
    let at_ms = now_ms();
    let seats = stream::iter(touched)
        .map(|(event, seat)| async move {
            let view = api
                .seat(&format!("{event}:{seat}"))
                .await
                .with_context(|| format!("reading back seat {event}:{seat}"))?;
            Ok::<_, anyhow::Error>(SeatReading {
                event: event.to_owned(),
                seat,
                status: view.status,
                user: view.user,
            })
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let mut readings = Vec::new();
    for event in events {
        let counts = api.event(event).await?;
        let listed = api.available(event).await?;
        readings.push(EventReading {
            event: event.clone(),
            reserved: counts.reserved,
            listed,
        });
    }
    Ok(Readback {
        at_ms,
        done_ms: now_ms(),
        uncertain: Vec::new(),
        seats,
        events: readings,
    })
}
