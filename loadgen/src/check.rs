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

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::api::SeatStatus;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Kind {
    Hold,
    Reserve,
}

impl Kind {
    /// As in the outcome counts ("hold.post.202") and the trace.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hold => "hold",
            Kind::Reserve => "reserve",
        }
    }
}

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
    /// `reserved` of `GET /events/{id}`.
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
    /// `reserve-without-hold`, `readback`.
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

    #[test]
    fn the_read_back_must_agree_with_what_users_were_told() {
        let jobs = good_history();
        // At 1500: seat 1 is Bob's (until 2000), seat 2 Alice's reservation, seat 3 Carol's.
        let good = Readback {
            at_ms: 1500,
            done_ms: 1500,
            uncertain: Vec::new(),
            seats: vec![
                reading(1, SeatStatus::OnHold, "bob"),
                reading(2, SeatStatus::Reserved, "alice"),
                reading(3, SeatStatus::OnHold, "carol"),
            ],
            events: vec![EventReading {
                event: E.to_owned(),
                reserved: 1,
                listed: vec![4, 5],
            }],
        };
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
}
