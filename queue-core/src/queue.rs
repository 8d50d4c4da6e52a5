//! The job queue: draining jobs and reporting on them (accepting them is `enqueue.rs`).
//!
//! Each event has its own queue list, and jobs are taken off it and applied in one script
//! (`process.lua`), so a job is never in flight outside Redis. Workers learn which events have
//! work from ready tokens (see `keys::READY`); a token comes with the event's *lease*, a deadline
//! in the event hash saying that a worker is on it. Whoever takes an expired lease pushes a token.
//! If a worker dies, its lease lapses and the housekeeping pass takes it over (`reconcile`), so an
//! accepted job waits at most a lease length longer, and is never lost (G4).

use std::ops::Range;
use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::ListInterface;

use crate::error::{Error, Result};
use crate::event::decode;
use crate::ids::{EventId, JobId, SeatId};
use crate::job::{JobKind, JobState, JobView};
use crate::keys::{self, EventKeys};
use crate::scripts::{self, arg, run, Reply};
use crate::seat::{Millis, Refusal, Seat, SeatState, SeatStatus};
use crate::store::Store;

/// One job in a finished-jobs message: its sequence number, and where its record lies in the
/// message.
pub type FinishedRecord = (u64, Range<usize>);

/// What one `process` call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The jobs applied (or failed), in queue order.
    pub finished: Vec<JobView>,
    /// Jobs still waiting on the event's queue.
    pub remaining: u64,
    /// When the event next needs a sweep, if ever.
    pub next_due: Option<Millis>,
}

impl Store {
    /// Tells the workers that `event` has jobs and that the caller holds its lease.
    pub async fn push_ready(&self, event: EventId) -> Result<()> {
        self.client()?
            .rpush::<(), _, _>(keys::READY, event.to_string())
            .await?;
        Ok(())
    }

    /// Waits up to `timeout` for a ready token, on a client of the caller's own (a blocking pop
    /// holds up every other command on its connection). `None` when none came.
    pub async fn next_ready(&self, client: &Client, timeout: Duration) -> Result<Option<EventId>> {
        match client
            .blpop::<Option<(String, String)>, _>(keys::READY, timeout.as_secs_f64())
            .await
        {
            Ok(Some((_, event))) => Ok(event.parse().ok()),
            Ok(None) => Ok(None),
            // fred reports a blocking pop that timed out as an error of kind Timeout.
            Err(e) if *e.kind() == fred::error::ErrorKind::Timeout => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies up to `max_jobs` jobs from the head of the event's queue, renewing the caller's
    /// lease while jobs remain and giving it up when none do.
    pub async fn process(&self, event: EventId, max_jobs: usize) -> Result<Batch> {
        let k = EventKeys::new(event);
        let rules = self.inner.common.rules;
        let mut reply = run(
            &scripts::PROCESS,
            &self.client()?,
            [
                &k.event,
                &k.seats,
                &k.deadlines,
                &k.holders,
                &k.queue,
                &k.results,
                &k.done,
                &k.tick,
                &k.changes,
                &k.retry,
            ],
            vec![
                arg(max_jobs),
                arg(rules.hold_ttl_secs * 1000),
                arg(rules.max_held_seats),
                arg(self.inner.common.queue.job_result_ttl_secs * 1000),
                arg(self.inner.common.workers.lease_ms),
                arg(keys::FINISHED_CHANNEL),
                arg(event),
                arg(self.inner.common.queue.retry_attempts),
                arg(self.inner.common.queue.retry_base_ms),
                arg(self.inner.common.queue.retry_max_ms),
                arg(jitter()),
            ],
        )
        .await?;
        let applied = unsigned(reply.int()?)?;
        let remaining = unsigned(reply.int()?)?;
        let next_due = Some(reply.int()?).filter(|d| *d >= 0);
        let mut finished = Vec::with_capacity(applied as usize);
        while let Some(record) = reply.next_bytes() {
            finished.push(self.parse_record(event, &record?)?);
        }
        Ok(Batch {
            finished,
            remaining,
            next_due,
        })
    }

    /// Where a job stands; `None` when the id is unknown or its record is past retention.
    pub async fn job(&self, id: JobId) -> Result<Option<JobView>> {
        let k = EventKeys::new(id.event());
        let mut reply = run(
            &scripts::JOB_STATUS,
            &self.client()?,
            [&k.event, &k.queue, &k.results],
            vec![arg(id.seq()), arg(self.inner.common.workers.lease_ms)],
        )
        .await?;
        match reply.int()? {
            0 => Ok(None),
            1 => {
                let position = unsigned(reply.int()?)?;
                let queued = reply.bytes()?;
                let leased = reply.int()? == 1;
                // A queued job is <kind><user: 16 bytes><seat>|<accepted ms>|<seq>.
                let kind = queued
                    .first()
                    .and_then(|k| JobKind::from_code(char::from(*k)));
                let created_at = queued
                    .get(17..)
                    .and_then(|rest| rest.split(|b| *b == b'|').nth(1))
                    .and_then(|t| std::str::from_utf8(t).ok()?.parse().ok())
                    .unwrap_or_default();
                let state = if position == 0 && leased {
                    JobState::Active
                } else {
                    JobState::Waiting { position }
                };
                Ok(Some(JobView {
                    id,
                    kind,
                    created_at,
                    state,
                }))
            }
            _ => self.parse_record(id.event(), &reply.bytes()?).map(Some),
        }
    }

    /// The records of one message on [`keys::FINISHED_CHANNEL`]: `"<event id>"`, then
    /// `" <length> <record>"` per job, each record as `process.lua` stores it. Returns the event
    /// and, per job, its sequence number and where its record lies in `message` (read it with
    /// [`Store::parse_record`]).
    pub fn finished_records(message: &[u8]) -> Result<(EventId, Vec<FinishedRecord>)> {
        let corrupt = || {
            Error::Corrupt(format!(
                "finished-jobs message {:?}",
                String::from_utf8_lossy(&message[..message.len().min(200)])
            ))
        };
        let mut at = 0;
        // The next space-delimited word from `at`, as text; `at` moves past it and its space.
        let word = |at: &mut usize| -> Option<&str> {
            let rest = message.get(*at..)?;
            let end = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
            let text = std::str::from_utf8(&rest[..end]).ok()?;
            *at += end + 1;
            Some(text)
        };
        let event: EventId = word(&mut at)
            .and_then(|e| e.parse().ok())
            .ok_or_else(corrupt)?;
        let mut records = Vec::new();
        while at < message.len() {
            let len: usize = word(&mut at)
                .and_then(|n| n.parse().ok())
                .ok_or_else(corrupt)?;
            let range = at..at + len;
            let record = message.get(range.clone()).ok_or_else(corrupt)?;
            let seq = record
                .split(|b| *b == b'|')
                .next()
                .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok())
                .ok_or_else(corrupt)?;
            records.push((seq, range));
            at += len + 1;
        }
        Ok((event, records))
    }

    /// Parses a finished job's record (format in `process.lua`): seven text fields, then the
    /// raw seat record or the reason of a failure. The same record, whether read from Redis or
    /// heard on [`keys::FINISHED_CHANNEL`], gives the same job.
    pub fn parse_record(&self, event: EventId, record: &[u8]) -> Result<JobView> {
        let corrupt =
            || Error::Corrupt(format!("job record {:?}", String::from_utf8_lossy(record)));
        let mut f = record.splitn(8, |b| *b == b'|');
        let mut text = || -> Result<&str> {
            f.next()
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(corrupt)
        };
        let seq: u64 = text()?.parse().map_err(|_| corrupt())?;
        let outcome = text()?;
        let kind = text()?.chars().next().and_then(JobKind::from_code);
        let seat = text()?.parse().ok().and_then(|n| SeatId::new(event, n));
        let code: i64 = text()?.parse().map_err(|_| corrupt())?;
        let created_at: Millis = text()?.parse().map_err(|_| corrupt())?;
        let completed_at: Millis = text()?.parse().map_err(|_| corrupt())?;
        let rest = f.next().ok_or_else(corrupt)?;
        let id = JobId::new(event, seq);
        let state = if outcome == "f" {
            JobState::Failed {
                completed_at,
                reason: String::from_utf8_lossy(rest).into_owned(),
            }
        } else if outcome == "r" {
            // A retry: `code` counts the attempts made, `completed_at` is when the next is due.
            JobState::Retrying {
                attempts: u32::try_from(code).map_err(|_| corrupt())?,
                retry_at: completed_at,
                reason: String::from_utf8_lossy(rest).into_owned(),
            }
        } else {
            // The record is the seat as the job left it; decoded as of its completion.
            let left = decode(rest, completed_at)?;
            let result = match code {
                200 => Ok(()),
                404 => Err(Refusal::NoSuchSeat),
                403 => Err(Refusal::HeldByAnother),
                429 => Err(Refusal::HoldLimit {
                    limit: self.inner.common.rules.max_held_seats,
                }),
                409 => Err(Refusal::Conflict {
                    current: left.status(),
                }),
                _ => return Err(corrupt()),
            };
            let seat = match (result, seat) {
                (Err(Refusal::NoSuchSeat), _) | (_, None) => None,
                (_, Some(id)) => Some(left.into_seat(id)),
            };
            JobState::Completed {
                completed_at,
                result,
                seat,
            }
        };
        Ok(JobView {
            id,
            kind,
            created_at,
            state,
        })
    }
}

/// Reads the refusal of an enqueue, refresh or release reply: `{code, raw seat state?}`.
pub(crate) fn refusal(code: i64, reply: &mut Reply, limit: u32) -> Result<Refusal> {
    Ok(match code {
        404 => Refusal::NoSuchSeat,
        403 => Refusal::HeldByAnother,
        429 => Refusal::HoldLimit { limit },
        409 => {
            // The script reports the status it found, as the letter of `SeatStatus::code`.
            let letter = reply.string()?;
            let current = letter
                .chars()
                .next()
                .and_then(SeatStatus::from_code)
                .ok_or_else(|| Error::Corrupt(format!("unknown seat status `{letter}`")))?;
            Refusal::Conflict { current }
        }
        other => return Err(Error::Corrupt(format!("unexpected script code {other}"))),
    })
}

pub(crate) fn unsigned(n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| Error::Corrupt(format!("a negative count {n}")))
}

/// Milliseconds since the epoch on this machine's clock (used only for hints and heartbeats,
/// whose margins are seconds; seat state always uses Redis's clock).
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl SeatState {
    pub(crate) fn into_seat(self, id: SeatId) -> Seat {
        Seat { id, state: self }
    }
}

/// A random number in [0, 1) for the jitter of retry delays (Lua's generator is seeded the same
/// on every script run, so the randomness comes from here).
fn jitter() -> f64 {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    (random >> 11) as f64 / (1u64 << 53) as f64
}
