//! The invariant check: what every user was told, and what the API says at the end, must fit
//! docs/CONTRACT.md §3 — G1 (no seat held or reserved by two users at once), G2 (nobody over the hold cap)
//! and G4 (every accepted job finished).
//!
//! A history is the list of jobs the load generator had accepted, each with what its result said.
//! Times are Redis's (`completedAt`, `expiresAt`), so the intervals compare exactly: a hold of seat
//! s by user u lasts `[completedAt, expiresAt)`, cut short by u's own reserve of s, and a
//! reservation lasts for ever. Two intervals of one seat may not overlap; one user's live holds
//! in one event may never number more than the cap. The read-back (`GET /seats/get`,
//! `GET /seats/list`, `GET /events`) must agree with the history, allowing `margin_ms` of clock
//! difference around hold deadlines. This assumes the load generator is the only client of its
//! events, which it is when it created them.
//!
//! [`replay`] goes further: it replays each event's accepted jobs in the order of their sequence
//! numbers against the reference model ([`crate::model`]), so that every job's answer, and the
//! state read back at the end, must be the one the rules give (the right hold wins a race, the
//! cap refuses the right hold, a seat is reserved once, a hold lapses at its deadline).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::api::{job_seq, SeatStatus};
pub use crate::model::Kind;
use crate::model::{Applied, EventModel, EventRead, Rules, SeatRead};

/// How an accepted job ended, as far as the load generator learnt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// `completed` with `result.status` = `code`; `expires_at` for a successful hold.
    Completed {
        code: u16,
        completed_at: i64,
        expires_at: Option<i64>,
    },
    /// `failed`: the job could not be applied at all.
    Failed { reason: String },
    /// Still waiting or active when the load generator stopped waiting.
    Unfinished,
    /// 404: the service no longer knows the job.
    Lost,
}

/// One accepted job and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: String,
    pub kind: Kind,
    pub event: String,
    pub seat: u32,
    pub user: String,
    pub outcome: Outcome,
}

/// A POST that got no clear answer (a 503, or none at all): the service may or may not have
/// stored its job, so the read-back may show its effect although no user was told of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Uncertain {
    pub kind: Kind,
    pub event: String,
    pub seat: u32,
    pub user: String,
}

impl Uncertain {
    pub fn new(kind: Kind, event: &str, seat: u32, user: &str) -> Self {
        Self {
            kind,
            event: event.to_owned(),
            seat,
            user: user.to_owned(),
        }
    }

    fn matches(&self, kind: Kind, event: &str, seat: u32, user: &str) -> bool {
        self.kind == kind && self.event == event && self.seat == seat && self.user == user
    }
}

/// One seat as read back at the end.
#[derive(Debug, Clone)]
pub struct SeatReading {
    pub event: String,
    pub seat: u32,
    pub status: SeatStatus,
    pub user: String,
}

/// One event as read back at the end.
#[derive(Debug, Clone)]
pub struct EventReading {
    pub event: String,
    /// `totalSeats` of `GET /events/{id}`.
    pub total: u32,
    /// `onHold` and `reserved` of `GET /events/{id}`.
    pub on_hold: u32,
    pub reserved: u32,
    /// The seat numbers `GET /seats/list/{id}` lists Available.
    pub listed: Vec<u32>,
}

/// The state read back through the API, between `at_ms` and `done_ms` (this machine's clock):
/// reading every seat takes a while, and a hold may lapse meanwhile.
#[derive(Debug, Clone, Default)]
pub struct Readback {
    pub at_ms: i64,
    /// When the last read answered (0: taken as `at_ms`).
    pub done_ms: i64,
    /// POSTs without a clear answer, whose effect the read-back may show.
    pub uncertain: Vec<Uncertain>,
    pub seats: Vec<SeatReading>,
    pub events: Vec<EventReading>,
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// A stable name: `unfinished-job`, `lost-job`, `double-booking`, `over-cap`,
    /// `reserve-without-hold`, `readback`; from the replay, `model-job` (a job answered other
    /// than the model) and `model-state` (the state read back differs from the model's).
    pub rule: &'static str,
    pub detail: String,
}

/// The time a seat belongs to a user.
#[derive(Debug, Clone)]
struct Span<'a> {
    user: &'a str,
    job: &'a str,
    start: i64,
    /// Exclusive; `i64::MAX` for a reservation.
    end: i64,
    reserved: bool,
}

/// Checks a history (and, when given, the state read back at the end). Empty when all is well.
pub fn check(
    jobs: &[Job],
    cap: u32,
    readback: Option<&Readback>,
    margin_ms: i64,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut by_seat: HashMap<(&str, u32), Vec<Span>> = HashMap::new();

    // G4: every accepted job finished.
    for job in jobs {
        match job.outcome {
            Outcome::Unfinished => violations.push(Violation {
                rule: "unfinished-job",
                detail: format!("job {} was accepted but never finished", job.id),
            }),
            Outcome::Lost => violations.push(Violation {
                rule: "lost-job",
                detail: format!(
                    "job {} was accepted but the service no longer knows it",
                    job.id
                ),
            }),
            _ => {}
        }
    }

    // Successful holds, then reserves in the order they were applied.
    for job in jobs {
        if let (
            Kind::Hold,
            Outcome::Completed {
                code: 200,
                completed_at,
                expires_at,
            },
        ) = (job.kind, &job.outcome)
        {
            let Some(end) = *expires_at else {
                violations.push(Violation {
                    rule: "readback",
                    detail: format!("hold job {} succeeded without an expiresAt", job.id),
                });
                continue;
            };
            by_seat
                .entry((&job.event, job.seat))
                .or_default()
                .push(Span {
                    user: &job.user,
                    job: &job.id,
                    start: *completed_at,
                    end,
                    reserved: false,
                });
        }
    }
    let mut reserves: Vec<(&Job, i64)> = jobs
        .iter()
        .filter_map(|job| match (job.kind, &job.outcome) {
            (
                Kind::Reserve,
                Outcome::Completed {
                    code: 200,
                    completed_at,
                    ..
                },
            ) => Some((job, *completed_at)),
            _ => None,
        })
        .collect();
    reserves.sort_by_key(|(_, at)| *at);
    for (job, at) in reserves {
        let spans = by_seat.entry((&job.event, job.seat)).or_default();
        match spans
            .iter_mut()
            .find(|s| !s.reserved && s.user == job.user && s.start <= at && at < s.end)
        {
            Some(hold) => hold.end = at,
            None => violations.push(Violation {
                rule: "reserve-without-hold",
                detail: format!(
                    "reserve job {} of seat {}:{} by {} succeeded at {at} while that user held no live hold of it",
                    job.id, job.event, job.seat, job.user
                ),
            }),
        }
        spans.push(Span {
            user: &job.user,
            job: &job.id,
            start: at,
            end: i64::MAX,
            reserved: true,
        });
    }

    // G1: the intervals of one seat never overlap. Any overlap shows against the interval that
    // reaches furthest among those that started earlier.
    let mut seats: Vec<_> = by_seat.iter_mut().collect();
    seats.sort_by(|a, b| a.0.cmp(b.0));
    for ((event, seat), spans) in seats {
        spans.sort_by_key(|s| (s.start, s.end));
        let mut furthest: Option<&Span> = None;
        for span in spans.iter().filter(|s| s.start < s.end) {
            if let Some(prev) = furthest {
                if span.start < prev.end {
                    violations.push(Violation {
                        rule: "double-booking",
                        detail: format!(
                            "seat {event}:{seat}: {} by {} (job {}, from {}) overlaps {} by {} (job {}, from {} to {})",
                            what(span),
                            span.user,
                            span.job,
                            span.start,
                            what(prev),
                            prev.user,
                            prev.job,
                            prev.start,
                            shown_end(prev.end)
                        ),
                    });
                }
            }
            if furthest.is_none_or(|p| span.end > p.end) {
                furthest = Some(span);
            }
        }
    }

    // G2: one user's live holds in one event never exceed the cap. At equal times an end comes
    // before a start, as the scripts compare deadlines (`deadline > now` is live).
    let mut per_user: BTreeMap<(&str, &str), Vec<(i64, i32)>> = BTreeMap::new();
    for ((event, _), spans) in &by_seat {
        for s in spans.iter().filter(|s| !s.reserved && s.start < s.end) {
            let points = per_user.entry((event, s.user)).or_default();
            points.push((s.start, 1));
            points.push((s.end, -1));
        }
    }
    for ((event, user), mut points) in per_user {
        points.sort();
        let mut live = 0i32;
        for (at, delta) in points {
            live += delta;
            if live > cap as i32 {
                violations.push(Violation {
                    rule: "over-cap",
                    detail: format!(
                        "user {user} held {live} seats of event {event} at once at {at} (cap {cap})"
                    ),
                });
                break;
            }
        }
    }

    if let Some(rb) = readback {
        check_readback(&by_seat, rb, margin_ms, &mut violations);
    }
    violations
}

fn what(span: &Span) -> &'static str {
    if span.reserved {
        "reservation"
    } else {
        "hold"
    }
}

fn shown_end(end: i64) -> String {
    if end == i64::MAX {
        "for ever".to_owned()
    } else {
        end.to_string()
    }
}

fn check_readback(
    by_seat: &HashMap<(&str, u32), Vec<Span>>,
    rb: &Readback,
    margin_ms: i64,
    violations: &mut Vec<Violation>,
) {
    let at = rb.at_ms;
    let done = rb.done_ms.max(at);
    let none = Vec::new();
    // A hold the history says is surely live during the whole read-back, whatever the clock
    // difference.
    let surely_live =
        |s: &&Span| !s.reserved && s.start + margin_ms <= at && done + margin_ms < s.end;
    for reading in &rb.seats {
        let spans = by_seat
            .get(&(reading.event.as_str(), reading.seat))
            .unwrap_or(&none);
        let reservation = spans.iter().find(|s| s.reserved);
        let seat = format!("{}:{}", reading.event, reading.seat);
        // The reader's own POST of this kind on this seat got no clear answer: it may have
        // been applied.
        let maybe = |kind: Kind| {
            rb.uncertain
                .iter()
                .any(|u| u.matches(kind, &reading.event, reading.seat, &reading.user))
        };
        let problem = match reading.status {
            SeatStatus::Reserved if reservation.is_none() && maybe(Kind::Reserve) => None,
            SeatStatus::Reserved => match reservation {
                None => Some(format!(
                    "seat {seat} reads Reserved by {} but no reserve of it succeeded",
                    reading.user
                )),
                Some(r) if r.user != reading.user => Some(format!(
                    "seat {seat} reads Reserved by {} but {} reserved it (job {})",
                    reading.user, r.user, r.job
                )),
                Some(_) => None,
            },
            SeatStatus::OnHold => {
                if let Some(r) = reservation {
                    Some(format!(
                        "seat {seat} reads On hold by {} but {} reserved it (job {})",
                        reading.user, r.user, r.job
                    ))
                } else if !maybe(Kind::Hold)
                    && !spans.iter().any(|s| {
                        !s.reserved
                            && s.user == reading.user
                            && s.start <= done + margin_ms
                            && at < s.end + margin_ms
                    })
                {
                    Some(format!(
                        "seat {seat} reads On hold by {}, who holds no live hold of it",
                        reading.user
                    ))
                } else {
                    None
                }
            }
            SeatStatus::Available => {
                if let Some(r) = reservation {
                    Some(format!(
                        "seat {seat} reads Available but {} reserved it (job {})",
                        r.user, r.job
                    ))
                } else {
                    spans.iter().find(surely_live).map(|h| {
                        format!(
                            "seat {seat} reads Available but {}'s hold (job {}) lasts until {}",
                            h.user, h.job, h.end
                        )
                    })
                }
            }
        };
        if let Some(detail) = problem {
            violations.push(Violation {
                rule: "readback",
                detail,
            });
        }
    }
    for event in &rb.events {
        let reserved = by_seat
            .iter()
            .filter(|((e, _), _)| *e == event.event)
            .flat_map(|(_, spans)| spans.iter().filter(|s| s.reserved))
            .count();
        let maybe_reserved = rb
            .uncertain
            .iter()
            .filter(|u| u.kind == Kind::Reserve && u.event == event.event)
            .count();
        if !(reserved..=reserved + maybe_reserved).contains(&(event.reserved as usize)) {
            violations.push(Violation {
                rule: "readback",
                detail: format!(
                    "event {} counts {} reserved seats, but {reserved} reserves succeeded",
                    event.event, event.reserved
                ),
            });
        }
        for &seat in &event.listed {
            let spans = by_seat.get(&(event.event.as_str(), seat)).unwrap_or(&none);
            if let Some(s) = spans.iter().find(|s| s.reserved || surely_live(s)) {
                violations.push(Violation {
                    rule: "readback",
                    detail: format!(
                        "seat {}:{seat} is listed Available but {} has a {} of it (job {})",
                        event.event,
                        s.user,
                        what(s),
                        s.job
                    ),
                });
            }
        }
    }
}

/// What the replay against the model needs to know of the run and of the service.
#[derive(Debug, Clone)]
pub struct ModelRun<'a> {
    /// The events of the run.
    pub events: &'a [String],
    /// Seats in each, unless the read-back says otherwise.
    pub seats: u32,
    /// MAX_HELD_SEATS.
    pub cap: u32,
    /// HOLD_TTL in ms; `None` for what the first successful hold lasted. The load generator
    /// never refreshes, so every hold lasts exactly HOLD_TTL, and the model then checks that they
    /// all last the same.
    pub hold_ms: Option<i64>,
}

/// What the replay found, and how much of the run it could replay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Replayed {
    /// Jobs whose answer was compared with the model's.
    pub jobs: usize,
    /// Events whose state read back at the end was compared with the model's (but for the
    /// seats in doubt, see [`replay`]).
    pub states: usize,
    /// Why the replay of an event stopped short, or left its state uncompared.
    pub cut: Vec<String>,
    pub violations: Vec<Violation>,
}

/// Replays each created event's accepted jobs, in the order of their sequence numbers, against
/// the model, then compares the state read back (when given) with the model's.
///
/// The replay is exact as far as the load generator knows everything that took effect: its
/// users never refresh or release, so the jobs (and lapses, which the model keeps by itself) are
/// all that changes a seat, and an event whose first job is j1 started with every seat
/// Available (an event given to the run may have had jobs before it). What it may not know, it
/// does not guess:
/// - a sequence number it never saw is a job accepted before the run, or one whose 202 was lost
///   (a 503 or a dropped connection after the job was stored): the replay of that event stops
///   before it;
/// - a job unfinished or no longer known may or may not have been applied: likewise;
/// - a POST without a clear answer may have queued a job after the last one seen, so the final
///   state of its seat is not compared, nor the event's counts (such a job changes its own seat
///   alone).
///
/// A job that failed was never applied (a script checks before it writes), so it changes
/// nothing. A job retried after an error inside Redis (G3's one exception) is applied after
/// jobs accepted behind it, which the replay reports as out of order; an on-sale against a
/// healthy service never provokes one.
pub fn replay(
    jobs: &[Job],
    uncertain: &[Uncertain],
    run: &ModelRun,
    readback: Option<&Readback>,
    margin_ms: i64,
) -> Replayed {
    let mut out = Replayed::default();
    // Without a successful hold the length of one matters nowhere.
    let hold_ms = run
        .hold_ms
        .or_else(|| {
            jobs.iter().find_map(|job| match (job.kind, &job.outcome) {
                (
                    Kind::Hold,
                    Outcome::Completed {
                        code: 200,
                        completed_at,
                        expires_at: Some(until),
                    },
                ) => Some(until - completed_at),
                _ => None,
            })
        })
        .unwrap_or(0);
    for event in run.events {
        let counts = readback.and_then(|rb| rb.events.iter().find(|e| e.event == *event));
        let rules = Rules {
            seats: counts.map_or(run.seats, |c| c.total),
            cap: run.cap,
            hold_ms,
        };
        let mut mine = Vec::new();
        for job in jobs.iter().filter(|j| j.event == *event) {
            match job_seq(&job.id) {
                Ok(seq) => mine.push((seq, job)),
                Err(e) => out.violations.push(Violation {
                    rule: "model-job",
                    detail: format!("{e:#}"),
                }),
            }
        }
        mine.sort_by_key(|(seq, _)| *seq);
        let mut model = EventModel::new(rules);
        if let Err(cut) = replay_event(&mut model, &mine, &mut out) {
            out.cut.push(format!("event {event}: {cut}"));
            continue;
        }
        let mut unsure: Vec<u32> = uncertain
            .iter()
            .filter(|u| u.event == *event)
            .map(|u| u.seat)
            .collect();
        unsure.sort_unstable();
        unsure.dedup();
        if !unsure.is_empty() {
            out.cut.push(format!(
                "event {event}: POSTs of {} seats got no clear answer and may have queued a job after the last one seen: those seats and the counts are not compared",
                unsure.len()
            ));
        }
        let (Some(rb), Some(counts)) = (readback, counts) else {
            continue;
        };
        let read = EventRead {
            from: rb.at_ms - margin_ms,
            to: rb.done_ms.max(rb.at_ms) + margin_ms,
            seats: rb
                .seats
                .iter()
                .filter(|s| s.event == *event)
                .map(|s| SeatRead {
                    seat: s.seat,
                    status: s.status,
                    user: &s.user,
                })
                .collect(),
            on_hold: counts.on_hold,
            reserved: counts.reserved,
            listed: &counts.listed,
            unsure: &unsure,
        };
        out.states += 1;
        out.violations
            .extend(model.check_read(&read).into_iter().map(|detail| Violation {
                rule: "model-state",
                detail: format!("event {event}: {detail}"),
            }));
    }
    out
}

/// Replays one event's jobs (sorted by sequence number); `Err` says why it stopped short.
fn replay_event(
    model: &mut EventModel,
    jobs: &[(u64, &Job)],
    out: &mut Replayed,
) -> Result<(), String> {
    let mut next = 1;
    for &(seq, job) in jobs {
        if seq < next {
            out.violations.push(Violation {
                rule: "model-job",
                detail: format!("job {} was accepted twice", job.id),
            });
            continue;
        }
        if seq > next {
            return Err(format!(
                "job j{next} is unknown to the load generator (accepted before the run, or its 202 was lost), so the replay stops before it"
            ));
        }
        next += 1;
        match &job.outcome {
            Outcome::Completed {
                code,
                completed_at,
                expires_at,
            } => {
                out.jobs += 1;
                let applied = Applied {
                    job: &job.id,
                    kind: job.kind,
                    seat: job.seat,
                    user: &job.user,
                    code: *code,
                    at: *completed_at,
                    expires_at: *expires_at,
                };
                if let Err(detail) = model.replay(&applied) {
                    out.violations.push(Violation {
                        rule: "model-job",
                        detail,
                    });
                }
            }
            Outcome::Failed { .. } => {}
            Outcome::Unfinished | Outcome::Lost => {
                return Err(format!(
                    "job {} may or may not have been applied, so the replay stops before it",
                    job.id
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "ev";

    fn hold(id: &str, seat: u32, user: &str, at: i64, until: i64) -> Job {
        Job {
            id: id.to_owned(),
            kind: Kind::Hold,
            event: E.to_owned(),
            seat,
            user: user.to_owned(),
            outcome: Outcome::Completed {
                code: 200,
                completed_at: at,
                expires_at: Some(until),
            },
        }
    }

    fn reserve(id: &str, seat: u32, user: &str, at: i64) -> Job {
        Job {
            id: id.to_owned(),
            kind: Kind::Reserve,
            event: E.to_owned(),
            seat,
            user: user.to_owned(),
            outcome: Outcome::Completed {
                code: 200,
                completed_at: at,
                expires_at: None,
            },
        }
    }

    fn refused(id: &str, kind: Kind, seat: u32, user: &str, code: u16) -> Job {
        Job {
            id: id.to_owned(),
            kind,
            event: E.to_owned(),
            seat,
            user: user.to_owned(),
            outcome: Outcome::Completed {
                code,
                completed_at: 5,
                expires_at: None,
            },
        }
    }

    fn rules(v: &[Violation]) -> Vec<&'static str> {
        v.iter().map(|v| v.rule).collect()
    }

    /// A history that keeps every rule: a hold that lapses and is taken by another user at the
    /// very millisecond of its deadline, a hold turned into a reservation, refusals.
    fn good_history() -> Vec<Job> {
        vec![
            hold("j1", 1, "alice", 0, 1000),
            hold("j2", 1, "bob", 1000, 2000),
            hold("j3", 2, "alice", 10, 1010),
            reserve("j4", 2, "alice", 500),
            refused("j5", Kind::Hold, 2, "bob", 409),
            refused("j6", Kind::Reserve, 1, "carol", 403),
            hold("j7", 3, "carol", 600, 1600),
        ]
    }

    #[test]
    fn a_clean_history_passes() {
        assert_eq!(check(&good_history(), 6, None, 0), vec![]);
    }

    #[test]
    fn two_users_holding_one_seat_at_once_is_caught() {
        let mut jobs = good_history();
        // Bob is told he got seat 1 while Alice's hold of it still had 1 ms to run.
        jobs[1] = hold("j2", 1, "bob", 999, 2000);
        let v = check(&jobs, 6, None, 0);
        assert_eq!(rules(&v), vec!["double-booking"], "{v:?}");
        assert!(v[0].detail.contains("seat ev:1"), "{v:?}");
    }

    #[test]
    fn a_hold_over_a_reservation_and_a_second_reservation_are_caught() {
        let mut jobs = good_history();
        jobs.push(hold("j8", 2, "bob", 5000, 6000));
        let v = check(&jobs, 6, None, 0);
        assert_eq!(rules(&v), vec!["double-booking"], "{v:?}");

        let mut jobs = good_history();
        jobs.push(hold("j8", 3, "dave", 2000, 3000));
        jobs.push(reserve("j9", 3, "dave", 2100));
        jobs.push(reserve("j10", 3, "dave", 2200));
        let v = check(&jobs, 6, None, 0);
        assert!(rules(&v).contains(&"double-booking"), "{v:?}");
        assert!(rules(&v).contains(&"reserve-without-hold"), "{v:?}");
    }

    #[test]
    fn a_reserve_after_the_hold_lapsed_is_caught() {
        let mut jobs = good_history();
        jobs.push(reserve("j8", 3, "carol", 1600));
        let v = check(&jobs, 6, None, 0);
        assert_eq!(rules(&v), vec!["reserve-without-hold"], "{v:?}");
    }

    #[test]
    fn a_user_over_the_cap_is_caught_and_lapsed_or_reserved_holds_do_not_count() {
        // Three live holds against a cap of 2.
        let jobs = vec![
            hold("j1", 1, "alice", 0, 1000),
            hold("j2", 2, "alice", 1, 1000),
            hold("j3", 3, "alice", 2, 1000),
        ];
        let v = check(&jobs, 2, None, 0);
        assert_eq!(rules(&v), vec!["over-cap"], "{v:?}");

        // The first lapses at 1000 exactly when the third starts; the second became a reservation.
        let jobs = vec![
            hold("j1", 1, "alice", 0, 1000),
            hold("j2", 2, "alice", 1, 1001),
            reserve("j3", 2, "alice", 5),
            hold("j4", 3, "alice", 6, 2000),
            hold("j5", 4, "alice", 1000, 2000),
        ];
        assert_eq!(check(&jobs, 2, None, 0), vec![]);
    }

    #[test]
    fn unfinished_and_lost_jobs_are_caught() {
        let mut jobs = good_history();
        jobs.push(Job {
            outcome: Outcome::Unfinished,
            ..hold("j8", 4, "erin", 0, 0)
        });
        jobs.push(Job {
            outcome: Outcome::Lost,
            ..hold("j9", 5, "erin", 0, 0)
        });
        jobs.push(Job {
            outcome: Outcome::Failed {
                reason: "corrupt".to_owned(),
            },
            ..hold("j10", 6, "erin", 0, 0)
        });
        let v = check(&jobs, 6, None, 0);
        assert_eq!(rules(&v), vec!["unfinished-job", "lost-job"], "{v:?}");
    }

    fn reading(seat: u32, status: SeatStatus, user: &str) -> SeatReading {
        SeatReading {
            event: E.to_owned(),
            seat,
            status,
            user: user.to_owned(),
        }
    }

    /// A read-back at 1500 of seats 1 to 3 of event E, its (on hold, reserved) counts and the
    /// seats it lists Available.
    fn read_back_at_1500(
        seats: [(SeatStatus, &str); 3],
        (on_hold, reserved): (u32, u32),
        listed: Vec<u32>,
    ) -> Readback {
        Readback {
            at_ms: 1500,
            done_ms: 1500,
            uncertain: Vec::new(),
            seats: (1..)
                .zip(seats)
                .map(|(n, (status, user))| reading(n, status, user))
                .collect(),
            events: vec![EventReading {
                event: E.to_owned(),
                total: 10,
                on_hold,
                reserved,
                listed,
            }],
        }
    }

    #[test]
    fn the_read_back_must_agree_with_what_users_were_told() {
        let jobs = good_history();
        // At 1500: seat 1 is Bob's (until 2000), seat 2 Alice's reservation, seat 3 Carol's.
        let good = read_back_at_1500(
            [
                (SeatStatus::OnHold, "bob"),
                (SeatStatus::Reserved, "alice"),
                (SeatStatus::OnHold, "carol"),
            ],
            (2, 1),
            vec![4, 5],
        );
        assert_eq!(check(&jobs, 6, Some(&good), 100), vec![]);

        let mut bad = good.clone();
        bad.seats[0] = reading(1, SeatStatus::OnHold, "mallory");
        bad.seats[1] = reading(2, SeatStatus::Reserved, "bob");
        bad.seats[2] = reading(3, SeatStatus::Available, "");
        bad.events[0].reserved = 2;
        bad.events[0].listed = vec![2];
        let v = check(&jobs, 6, Some(&bad), 50);
        assert_eq!(rules(&v), vec!["readback"; 5], "{v:?}");

        // Near a deadline the margin forgives the clocks: Carol's hold ends at 1600.
        let mut near = good.clone();
        near.seats[2] = reading(3, SeatStatus::Available, "");
        assert_eq!(check(&jobs, 6, Some(&near), 200), vec![]);

        // A hold nobody was told of: a violation, unless its user's POST got no clear answer
        // (a 503 or none), which the service may have applied all the same.
        let mut unknown = good.clone();
        unknown.seats.push(reading(4, SeatStatus::OnHold, "dave"));
        unknown.events[0].listed = vec![5];
        assert_eq!(
            rules(&check(&jobs, 6, Some(&unknown), 100)),
            vec!["readback"]
        );
        unknown.uncertain = vec![Uncertain::new(Kind::Hold, E, 4, "dave")];
        assert_eq!(check(&jobs, 6, Some(&unknown), 100), vec![]);
        // Someone else's unanswered POST does not excuse it.
        unknown.uncertain = vec![Uncertain::new(Kind::Hold, E, 4, "erin")];
        assert_eq!(
            rules(&check(&jobs, 6, Some(&unknown), 100)),
            vec!["readback"]
        );
    }

    /// A job of event E with an id of the shape the API hands out (its tag made up), applied at
    /// `at`: a hold that succeeds lasts 1000 ms.
    fn applied(seq: u64, kind: Kind, seat: u32, user: &str, code: u16, at: i64) -> Job {
        let id = format!("{E}:j{seq}.{seq:032x}");
        match (kind, code) {
            (Kind::Hold, 200) => hold(&id, seat, user, at, at + 1000),
            (Kind::Reserve, 200) => reserve(&id, seat, user, at),
            _ => Job {
                outcome: Outcome::Completed {
                    code,
                    completed_at: at,
                    expires_at: None,
                },
                ..refused(&id, kind, seat, user, code)
            },
        }
    }

    /// Alice races for seats 3, 1, 2 with a cap of 2 and leaves seat 2 to Bob, reserves seat 3
    /// twice, and loses seat 1 (which she can no longer reserve) to Carol when her hold lapses.
    fn sequenced_history() -> Vec<Job> {
        vec![
            applied(1, Kind::Hold, 3, "alice", 200, 100),
            applied(2, Kind::Hold, 1, "alice", 200, 100),
            applied(3, Kind::Hold, 2, "alice", 429, 100),
            applied(4, Kind::Hold, 2, "bob", 200, 100),
            applied(5, Kind::Reserve, 3, "alice", 200, 200),
            applied(6, Kind::Reserve, 3, "alice", 409, 200),
            applied(7, Kind::Reserve, 1, "alice", 409, 1100),
            applied(8, Kind::Hold, 1, "carol", 200, 1100),
        ]
    }

    /// The replay of event E (10 seats, a cap of 2), with 100 ms of clock margin.
    fn replay_of(
        jobs: &[Job],
        uncertain: &[Uncertain],
        hold_ms: Option<i64>,
        readback: Option<&Readback>,
    ) -> Replayed {
        let events = [E.to_owned()];
        let run = ModelRun {
            events: &events,
            seats: 10,
            cap: 2,
            hold_ms,
        };
        replay(jobs, uncertain, &run, readback, 100)
    }

    fn replay_rules(jobs: &[Job], hold_ms: Option<i64>) -> (Replayed, Vec<&'static str>) {
        let out = replay_of(jobs, &[], hold_ms, None);
        let rules = rules(&out.violations);
        (out, rules)
    }

    #[test]
    fn a_history_the_rules_give_replays_clean() {
        for hold_ms in [Some(1000), None] {
            let (out, rules) = replay_rules(&sequenced_history(), hold_ms);
            assert_eq!(rules, Vec::<&str>::new(), "{out:#?}");
            assert_eq!((out.jobs, out.cut.len()), (8, 0), "{out:#?}");
        }
    }

    #[test]
    fn answers_the_rules_do_not_give_are_caught() {
        // Applied by seat rather than by acceptance: seats 1 and 2 go to Alice, seat 3 meets the
        // cap and Bob finds seat 2 held.
        let mut jobs = sequenced_history();
        jobs[0] = applied(1, Kind::Hold, 3, "alice", 429, 100);
        jobs[2] = applied(3, Kind::Hold, 2, "alice", 200, 100);
        jobs[3] = applied(4, Kind::Hold, 2, "bob", 409, 100);
        let (out, rules) = replay_rules(&jobs, Some(1000));
        assert!(rules.iter().all(|r| *r == "model-job"), "{out:#?}");
        assert!(out.violations[0].detail.contains("job ev:j1"), "{out:#?}");

        // A reservation made twice.
        let mut jobs = sequenced_history();
        jobs[5] = applied(6, Kind::Reserve, 3, "alice", 200, 200);
        let (out, rules) = replay_rules(&jobs, Some(1000));
        assert_eq!(rules, vec!["model-job"], "{out:#?}");
        assert!(out.violations[0].detail.contains("job ev:j6"), "{out:#?}");

        // A hold that lasts 700 ms longer than the others, and so keeps Carol out.
        let mut jobs = sequenced_history();
        jobs[1] = Job {
            outcome: Outcome::Completed {
                code: 200,
                completed_at: 100,
                expires_at: Some(1800),
            },
            ..applied(2, Kind::Hold, 1, "alice", 200, 100)
        };
        jobs[7] = applied(8, Kind::Hold, 1, "carol", 409, 1100);
        let (out, rules) = replay_rules(&jobs, None);
        assert_eq!(rules, vec!["model-job", "model-job"], "{out:#?}");
    }

    #[test]
    fn the_replay_stops_where_the_load_generator_may_not_know_what_took_effect() {
        // Job 4's 202 was lost: the replay stops before it.
        let mut jobs = sequenced_history();
        jobs.remove(3);
        let (out, rules) = replay_rules(&jobs, Some(1000));
        assert_eq!(rules, Vec::<&str>::new(), "{out:#?}");
        assert_eq!(out.jobs, 3);
        assert!(out.cut[0].contains("job j4 is unknown"), "{out:#?}");

        // An event given to the run with jobs before it: nothing is replayed.
        let (out, _) = replay_rules(&sequenced_history()[2..], Some(1000));
        assert_eq!(out.jobs, 0);
        assert!(out.cut[0].contains("job j1 is unknown"), "{out:#?}");

        // Job 5 never finished.
        let mut jobs = sequenced_history();
        jobs[4].outcome = Outcome::Unfinished;
        let (out, _) = replay_rules(&jobs, Some(1000));
        assert_eq!(out.jobs, 4);
        assert!(
            out.cut[0].contains(&format!("job ev:j5.{:032x} may or may not", 5)),
            "{out:#?}"
        );

        // A failed job changed nothing; the rest replays.
        let mut jobs = sequenced_history();
        jobs.push(Job {
            outcome: Outcome::Failed {
                reason: "corrupt".to_owned(),
            },
            ..applied(9, Kind::Hold, 4, "alice", 0, 0)
        });
        jobs.push(applied(10, Kind::Hold, 4, "dave", 200, 1200));
        let (out, rules) = replay_rules(&jobs, Some(1000));
        assert_eq!((rules, out.jobs), (Vec::<&str>::new(), 9), "{out:#?}");
    }

    #[test]
    fn the_state_read_back_must_be_the_models() {
        // At 1500: seat 1 is Carol's until 2100, Bob's hold of seat 2 lapsed at 1100, seat 3 is
        // Alice's reservation.
        let good = read_back_at_1500(
            [
                (SeatStatus::OnHold, "carol"),
                (SeatStatus::Available, ""),
                (SeatStatus::Reserved, "alice"),
            ],
            (1, 1),
            vec![2, 4, 5, 6, 7, 8, 9, 10],
        );
        let jobs = sequenced_history();
        let out = replay_of(&jobs, &[], Some(1000), Some(&good));
        assert_eq!((out.states, out.violations.len()), (1, 0), "{out:#?}");

        let mut bad = good.clone();
        bad.seats[1] = reading(2, SeatStatus::OnHold, "bob");
        bad.events[0].listed.retain(|&n| n != 2);
        let out = replay_of(&jobs, &[], Some(1000), Some(&bad));
        assert_eq!(rules(&out.violations), vec!["model-state"; 2], "{out:#?}");

        // A POST without a clear answer may have queued a job after the last one seen, which
        // may have changed its own seat: that one is not compared, the others are.
        let uncertain = [Uncertain::new(Kind::Hold, E, 2, "erin")];
        let out = replay_of(&jobs, &uncertain, Some(1000), Some(&bad));
        assert_eq!((out.states, out.violations.len()), (1, 0), "{out:#?}");
        assert_eq!(out.cut.len(), 1, "{out:#?}");
        bad.seats[0] = reading(1, SeatStatus::Available, "");
        let out = replay_of(&jobs, &uncertain, Some(1000), Some(&bad));
        assert_eq!(rules(&out.violations), vec!["model-state"], "{out:#?}");
        assert!(
            out.violations[0].detail.contains("seat 1 reads"),
            "{out:#?}"
        );
    }
}
