//! The layouts that Rust and Lua both read, each decoded in this one Rust place (and encoded in
//! one Lua place, named with each).

use std::ops::Range;

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::ids::{EventId, JobId, SeatId, UserId};
use crate::job::{JobKind, JobState, JobView};
use crate::reply::seat_state;
use crate::seat::Refusal;

/// A job on its event's queue, as `encode_job` in `lua/common.lua` writes it:
/// `<kind: 1 byte><user: 16 raw bytes><seat>|<accepted ms>|<seq>[|<attempts>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    pub kind: JobKind,
    pub user: UserId,
    pub seat: u32,
    /// When it was accepted (ms, Redis's clock).
    pub accepted_at: Millis,
    pub seq: u64,
    /// Attempts made so far: 0 but for a job back from the retry set.
    pub attempts: u32,
}

impl QueuedJob {
    /// `None` when `raw` is not a job of this layout.
    pub fn decode(raw: &[u8]) -> Option<Self> {
        let kind = JobKind::from_code(char::from(*raw.first()?))?;
        let user = UserId::from_bytes(raw.get(1..17)?.try_into().ok()?);
        let text = std::str::from_utf8(raw.get(17..)?).ok()?;
        let mut fields = text.split('|');
        let seat = fields.next()?.parse().ok()?;
        let accepted_at = fields.next()?.parse().ok()?;
        let seq = fields.next()?.parse().ok()?;
        let attempts = match fields.next() {
            Some(n) => n.parse().ok()?,
            None => 0,
        };
        fields.next().is_none().then_some(Self {
            kind,
            user,
            seat,
            accepted_at,
            seq,
            attempts,
        })
    }

    /// The same layout from Rust, for the tests that tie it to `encode_job` and `decode_job` in
    /// Lua (`e2e/tests/it/wire.rs`).
    pub fn encode(&self) -> Vec<u8> {
        let mut raw = self.kind.code().as_bytes().to_vec();
        raw.extend_from_slice(&self.user.to_bytes());
        raw.extend_from_slice(
            format!("{}|{}|{}", self.seat, self.accepted_at, self.seq).as_bytes(),
        );
        if self.attempts > 0 {
            raw.extend_from_slice(format!("|{}", self.attempts).as_bytes());
        }
        raw
    }
}

/// Where one job's record lies in a finished-jobs message.
pub type FinishedRecord = (JobId, Range<usize>);

/// The jobs of one event that a finished-jobs message announces.
pub type FinishedEvent = (EventId, Vec<FinishedRecord>);

/// Reads one message on [`crate::keys::FINISHED_CHANNEL`], as `process.lua` publishes it: for
/// each event, `"<event id>"`, then `" <length> <record>"` per job, the events separated by a
/// space (an event id is never a number, a length always is). Returns, per event in the message,
/// the event and, per job, its id and where its record lies in `message` (read it with
/// [`decode_record`]). An event of no jobs announces the event's deletion (`delete_event.lua`).
pub fn finished_records(message: &[u8]) -> Result<Vec<FinishedEvent>> {
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
    let mut events: Vec<FinishedEvent> = Vec::new();
    while at < message.len() {
        let text = word(&mut at).ok_or_else(corrupt)?;
        let Ok(len) = text.parse::<usize>() else {
            let event: EventId = text.parse().map_err(|_| corrupt())?;
            events.push((event, Vec::new()));
            continue;
        };
        let (event, records) = events.last_mut().ok_or_else(corrupt)?;
        let range = at..at + len;
        let record = message.get(range.clone()).ok_or_else(corrupt)?;
        let job = record
            .split(|b| *b == b'|')
            .next()
            .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok())
            .and_then(|seq| JobId::new(*event, seq))
            .ok_or_else(corrupt)?;
        records.push((job, range));
        at += len + 1;
    }
    if events.is_empty() {
        return Err(corrupt());
    }
    Ok(events)
}

/// Decodes a job's record as `job_record` in `process.lua` writes it: seven text fields
/// `<seq>|<c, f or r>|<kind>|<seat>|<code or attempts>|<created ms>|<completed or retry ms>`,
/// then the raw seat record or the reason of a failure. `limit` is MAX_HELD_SEATS (a 429
/// reports it). The same record, whether read from Redis or heard on the finished-jobs channel,
/// gives the same job.
pub fn decode_record(event: EventId, record: &[u8], limit: u32) -> Result<JobView> {
    let corrupt = || Error::Corrupt(format!("job record {:?}", String::from_utf8_lossy(record)));
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
    let id = JobId::new(event, seq).ok_or_else(corrupt)?;
    let state = match outcome {
        "f" => JobState::Failed {
            completed_at,
            reason: String::from_utf8_lossy(rest).into_owned(),
        },
        // A retry: `code` counts the attempts made, `completed_at` is when the next is due.
        "r" => JobState::Retrying {
            attempts: u32::try_from(code).map_err(|_| corrupt())?,
            retry_at: completed_at,
            reason: String::from_utf8_lossy(rest).into_owned(),
        },
        "c" => {
            // The record is the seat as the job left it; decoded as of its completion.
            let left = seat_state(rest, completed_at)?;
            let result = match code {
                200 => Ok(()),
                404 => Err(Refusal::NoSuchSeat),
                403 => Err(Refusal::HeldByAnother),
                429 => Err(Refusal::HoldLimit { limit }),
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
        }
        _ => return Err(corrupt()),
    };
    Ok(JobView {
        id,
        kind,
        created_at,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_job_round_trips_and_anything_else_is_refused() {
        let job = QueuedJob {
            kind: JobKind::Reserve,
            user: UserId::from_bytes([b'|'; 16]),
            seat: 42,
            accepted_at: 1_795_000_000_123,
            seq: 7,
            attempts: 0,
        };
        assert_eq!(QueuedJob::decode(&job.encode()), Some(job.clone()));
        let retried = QueuedJob { attempts: 3, ..job };
        assert_eq!(QueuedJob::decode(&retried.encode()), Some(retried.clone()));
        let raw = retried.encode();
        for bad in [&raw[..16], &raw[..raw.len() - 1]] {
            assert_eq!(QueuedJob::decode(bad), None, "{bad:?} is cut short");
        }
        assert_eq!(QueuedJob::decode(b"X0123456789abcdef1|2|3"), None);
        assert_eq!(QueuedJob::decode(b"H0123456789abcdef1|2|3|4|5"), None);
    }

    #[test]
    fn a_finished_jobs_message_names_each_event_with_its_jobs_and_an_event_alone_is_a_deletion() {
        let (a, b) = (EventId::new_random(), EventId::new_random());
        // Records are binary and may hold spaces and digits: their lengths delimit them.
        let (one, two, three) = (
            &b"4|c|H|1|200|1|2| 9 9"[..],
            &b"5|c|H|2|200|1|2|x"[..],
            &b"1|f|R|3|0|1|2|no"[..],
        );
        let mut message = a.to_string().into_bytes();
        for record in [one, two] {
            message.extend_from_slice(format!(" {} ", record.len()).as_bytes());
            message.extend_from_slice(record);
        }
        message.extend_from_slice(format!(" {b} {} ", three.len()).as_bytes());
        message.extend_from_slice(three);
        let events = finished_records(&message).expect("readable");
        type Records<'a> = Vec<(JobId, &'a [u8])>;
        let read: Vec<(EventId, Records)> = events
            .into_iter()
            .map(|(event, records)| {
                let records = records
                    .into_iter()
                    .map(|(job, range)| (job, &message[range]))
                    .collect();
                (event, records)
            })
            .collect();
        let job = |event, seq| JobId::new(event, seq).expect("a job id");
        assert_eq!(
            read,
            vec![
                (a, vec![(job(a, 4), one), (job(a, 5), two)]),
                (b, vec![(job(b, 1), three)]),
            ]
        );
        let deleted = finished_records(a.to_string().as_bytes()).expect("readable");
        assert_eq!(
            deleted,
            vec![(a, Vec::new())],
            "an event alone: its deletion"
        );
        for bad in [&b""[..], b"12 4|c|", b"not-an-event 3 1|c"] {
            assert!(finished_records(bad).is_err(), "{bad:?}");
        }
    }
}
