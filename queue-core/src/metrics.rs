//! Service-wide figures from the worker processes. Each worker tallies what it did (jobs finished
//! by kind and outcome, accept-to-applied latency, holds lapsed by path) and adds the tally to one
//! Redis hash every second ([`keys::METRICS`]), so that any API process can report the whole
//! pool on `/metrics` without anyone scraping the workers. A worker killed with SIGKILL loses at
//! most its last second of counts; the jobs themselves are never affected.

use std::collections::HashMap;
use std::sync::Mutex;

use fred::interfaces::HashesInterface;

use crate::error::Result;
use crate::job::{JobKind, JobState, JobView};
use crate::keys;
use crate::scripts::{self, arg};
use crate::seat::Refusal;
use crate::store::Store;

/// Upper bounds (ms) of the accept-to-applied latency buckets; one more bucket takes the rest.
pub const LATENCY_BOUNDS_MS: [u64; 14] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000,
];

/// How a finished job ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Held or reserved.
    Applied,
    /// A business refusal (a completed job with `success: false`).
    NotFound,
    Conflict,
    HeldByAnother,
    HoldLimit,
    /// Could not be applied at all.
    Failed,
}

impl Outcome {
    pub const ALL: [Self; 6] = [
        Self::Applied,
        Self::NotFound,
        Self::Conflict,
        Self::HeldByAnother,
        Self::HoldLimit,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::HeldByAnother => "held_by_another",
            Self::HoldLimit => "hold_limit",
            Self::Failed => "failed",
        }
    }

    fn of(state: &JobState) -> Option<Self> {
        Some(match state {
            JobState::Completed { result: Ok(()), .. } => Self::Applied,
            JobState::Completed {
                result: Err(refusal),
                ..
            } => match refusal {
                Refusal::NoSuchSeat => Self::NotFound,
                Refusal::Conflict { .. } => Self::Conflict,
                Refusal::HeldByAnother => Self::HeldByAnother,
                Refusal::HoldLimit { .. } => Self::HoldLimit,
            },
            JobState::Failed { .. } => Self::Failed,
            JobState::Waiting { .. } | JobState::Active | JobState::Retrying { .. } => return None,
        })
    }
}

/// How a lapsed hold was tidied away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LapsePath {
    /// Prompted by the keyspace notification of the event's tick key.
    Notification,
    /// Found by the sweep schedule or the full pass.
    Sweep,
}

impl LapsePath {
    pub const ALL: [Self; 2] = [Self::Notification, Self::Sweep];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notification => "notification",
            Self::Sweep => "sweep",
        }
    }
}

fn job_field(kind: Option<JobKind>, outcome: Outcome) -> String {
    let kind = kind.map_or("UNKNOWN", JobKind::as_str);
    format!("jobs|{kind}|{}", outcome.as_str())
}

const LATENCY_SUM_MS: &str = "latency|sum_ms";
const LATENCY_COUNT: &str = "latency|count";

fn latency_bucket(index: usize) -> String {
    format!("latency|{index}")
}

fn lapsed_field(path: LapsePath) -> String {
    format!("lapsed|{}", path.as_str())
}

/// What one worker process did since its last flush.
#[derive(Debug, Default)]
pub struct Tally {
    counts: Mutex<HashMap<String, i64>>,
}

impl Tally {
    fn add(&self, field: String, amount: i64) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(field).or_default() += amount;
        }
    }

    /// Counts the jobs of a batch, and the time from each one's 202 to its application.
    pub fn jobs_finished(&self, jobs: &[JobView]) {
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        for job in jobs {
            let Some(outcome) = Outcome::of(&job.state) else {
                continue;
            };
            *counts.entry(job_field(job.kind, outcome)).or_default() += 1;
            let completed_at = match job.state {
                JobState::Completed { completed_at, .. }
                | JobState::Failed { completed_at, .. } => completed_at,
                _ => continue,
            };
            let ms = u64::try_from(completed_at - job.created_at).unwrap_or_default();
            let bucket = LATENCY_BOUNDS_MS
                .iter()
                .position(|bound| ms <= *bound)
                .unwrap_or(LATENCY_BOUNDS_MS.len());
            *counts.entry(latency_bucket(bucket)).or_default() += 1;
            *counts.entry(LATENCY_SUM_MS.to_owned()).or_default() += ms as i64;
            *counts.entry(LATENCY_COUNT.to_owned()).or_default() += 1;
        }
    }

    pub fn holds_lapsed(&self, path: LapsePath, count: u64) {
        if count > 0 {
            self.add(lapsed_field(path), count as i64);
        }
    }

    /// Adds the tally to the service-wide figures and starts a new one. When Redis cannot take
    /// it, the counts stay for the next flush.
    pub async fn flush(&self, store: &Store) -> Result<()> {
        // Before the counts are taken: with Redis down they stay where they are.
        store.client_for(keys::METRICS)?;
        let counts = match self.counts.lock() {
            Ok(mut counts) => std::mem::take(&mut *counts),
            Err(_) => return Ok(()),
        };
        if counts.is_empty() {
            return Ok(());
        }
        let args = counts
            .iter()
            .flat_map(|(field, amount)| [arg(field), arg(amount)])
            .collect();
        if let Err(e) = store
            .script(&scripts::ADD_METRICS, [keys::METRICS], args)
            .await
        {
            for (field, amount) in counts {
                self.add(field, amount);
            }
            return Err(e);
        }
        Ok(())
    }
}

/// The service-wide figures as they stand.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceFigures {
    /// Finished jobs by kind (`None`: unreadable) and outcome.
    pub jobs: Vec<(Option<JobKind>, Outcome, u64)>,
    /// Jobs per latency bucket (not cumulative), [`LATENCY_BOUNDS_MS`] then the rest.
    pub latency_buckets: Vec<u64>,
    pub latency_sum_ms: u64,
    pub latency_count: u64,
    pub holds_lapsed: Vec<(LapsePath, u64)>,
}

impl Store {
    /// Reads the service-wide figures the workers have added up.
    pub async fn service_figures(&self) -> Result<ServiceFigures> {
        let raw: HashMap<String, i64> = self
            .client_for(keys::METRICS)?
            .hgetall(keys::METRICS)
            .await?;
        let get = |field: &str| raw.get(field).map_or(0, |n| u64::try_from(*n).unwrap_or(0));
        let kinds = [Some(JobKind::Hold), Some(JobKind::Reserve), None];
        let jobs = kinds
            .into_iter()
            .flat_map(|kind| Outcome::ALL.into_iter().map(move |o| (kind, o)))
            .map(|(kind, outcome)| (kind, outcome, get(&job_field(kind, outcome))))
            .filter(|(kind, _, n)| kind.is_some() || *n > 0)
            .collect();
        Ok(ServiceFigures {
            jobs,
            latency_buckets: (0..=LATENCY_BOUNDS_MS.len())
                .map(|i| get(&latency_bucket(i)))
                .collect(),
            latency_sum_ms: get(LATENCY_SUM_MS),
            latency_count: get(LATENCY_COUNT),
            holds_lapsed: LapsePath::ALL
                .into_iter()
                .map(|path| (path, get(&lapsed_field(path))))
                .collect(),
        })
    }
}
