//! The reference model of one event's seats: given every step that took effect before, what a
//! hold or reserve job must answer when a worker applies it, what a release and the pre-check of
//! a POST must answer, and what a read of the seats may show (docs/CONTRACT.md §2, the job
//! results; §3 G1, G2, G5). The e2e test `model` and the load generator's check
//! ([`crate::check::replay`]) replay what the service did against it, so a script that breaks
//! one of these rules is caught by the first answer it changed.
//!
//! The rules, as `enqueue.lua`, `process.lua` and `release.lua` apply them:
//! - A hold with deadline `d` is live for a step at `t < d`; from `d` on the seat is Available
//!   and the hold counts towards no cap (G5).
//! - A hold applied at `t` on an Available seat succeeds unless its user already holds
//!   MAX_HELD_SEATS live holds in the event (429, G2), and then lasts until `t + HOLD_TTL`. On a
//!   seat On hold or Reserved it answers 409 (G1); on a seat the event does not have, 404.
//! - A reserve succeeds only on a seat its user holds live, which is then Reserved for ever; 409
//!   on a seat Available (a lapsed hold included) or Reserved, 403 on one another user holds.
//! - A release needs what a reserve needs, and makes the seat Available at once.
//! - The pre-check of a POST judges the seat as it is then, as the job would but for the cap:
//!   202 or the job's refusal.
//! - Steps take effect in order and the clock never goes back: a job applied at an earlier time
//!   than the step before it is out of order (G3).
//!
//! Times are Redis's clock in ms. A job carries the time it was applied (`completedAt`); a
//! release or a read is known only to lie between two times, and the model allows any answer it
//! would give within them.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::api::{JobKind, SeatStatus};

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

impl From<JobKind> for Kind {
    fn from(kind: JobKind) -> Self {
        match kind {
            JobKind::Hold => Kind::Hold,
            JobKind::Reserve => Kind::Reserve,
        }
    }
}

/// The service's settings the rules depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Seats in the event: 1 to `seats`.
    pub seats: u32,
    /// MAX_HELD_SEATS.
    pub cap: u32,
    /// HOLD_TTL in ms.
    pub hold_ms: i64,
}

/// A seat that is not Available (one absent from the model is).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seat {
    /// Live until `deadline` (exclusive), Available from then on.
    Held {
        user: String,
        deadline: i64,
    },
    Reserved {
        user: String,
    },
}

/// What a job must answer: the code, and for a successful hold its `expiresAt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub code: u16,
    pub expires_at: Option<i64>,
    /// The seat (and for a hold, the user) as the model had them, for messages.
    pub why: String,
}

/// A finished job as the service reported it.
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    /// The job id, for messages.
    pub job: &'a str,
    pub kind: Kind,
    pub seat: u32,
    pub user: &'a str,
    /// `result.status`.
    pub code: u16,
    /// `completedAt`: when it was applied.
    pub at: i64,
    /// `result.seat.expiresAt`.
    pub expires_at: Option<i64>,
}

/// A step's refusal: its code and why.
type Refusal = (u16, String);

/// What a step needs of its seat: a hold, that it is Available; a reserve or a release, that its
/// user holds it live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Available,
    OwnHold,
}

impl From<Kind> for Needs {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Hold => Needs::Available,
            Kind::Reserve => Needs::OwnHold,
        }
    }
}

/// One read of a seat.
#[derive(Debug, Clone, Copy)]
pub struct SeatRead<'a> {
    pub seat: u32,
    pub status: SeatStatus,
    /// `""` when Available.
    pub user: &'a str,
}

/// What reads of an event showed, all made between `from` and `to`.
#[derive(Debug, Clone)]
pub struct EventRead<'a> {
    pub from: i64,
    pub to: i64,
    /// Seats read one by one (any of them).
    pub seats: Vec<SeatRead<'a>>,
    /// `onHold` and `reserved` of the event's counts.
    pub on_hold: u32,
    pub reserved: u32,
    /// Every seat the seat list showed Available.
    pub listed: &'a [u32],
    /// Seats that steps the model does not know may have changed after all it knows (a POST
    /// that got no clear answer may have queued a job): neither they nor the counts are compared.
    pub unsure: &'a [u32],
}

/// One event's seats, as the steps so far left them.
#[derive(Debug, Clone)]
pub struct EventModel {
    rules: Rules,
    taken: BTreeMap<u32, Seat>,
    /// The time of the last step: no later step may take effect before it.
    last_at: i64,
}

impl EventModel {
    /// A new event: every seat Available.
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            taken: BTreeMap::new(),
            last_at: i64::MIN,
        }
    }

    pub fn rules(&self) -> Rules {
        self.rules
    }

    /// The seat's holder or reserver as a step at `at` finds it; `None` when it is Available.
    fn seat_at(&self, seat: u32, at: i64) -> Option<&Seat> {
        self.taken.get(&seat).filter(|s| match s {
            Seat::Held { deadline, .. } => *deadline > at,
            Seat::Reserved { .. } => true,
        })
    }

    /// The seats `user` holds live at `at`.
    fn live_holds(&self, user: &str, at: i64) -> Vec<u32> {
        self.taken
            .iter()
            .filter(|(_, s)| matches!(s, Seat::Held { user: u, deadline } if u == user && *deadline > at))
            .map(|(&n, _)| n)
            .collect()
    }

    /// Why a step by `user` on `seat` at `at` is refused; `None` when it may go ahead.
    fn refusal(&self, needs: Needs, seat: u32, user: &str, at: i64) -> Option<Refusal> {
        if seat < 1 || seat > self.rules.seats {
            return Some((
                404,
                format!("the event has seats 1 to {}", self.rules.seats),
            ));
        }
        match (self.seat_at(seat, at), needs) {
            (None, Needs::Available) => None,
            (None, Needs::OwnHold) => Some((409, self.describe(seat, at))),
            (Some(Seat::Held { user: holder, .. }), Needs::OwnHold) if holder == user => None,
            (Some(Seat::Held { .. }), Needs::OwnHold) => Some((403, self.describe(seat, at))),
            (Some(_), _) => Some((409, self.describe(seat, at))),
        }
    }

    /// The seat as a step at `at` finds it, in words.
    fn describe(&self, seat: u32, at: i64) -> String {
        match self.taken.get(&seat) {
            None => format!("seat {seat} is Available"),
            Some(Seat::Reserved { user }) => format!("seat {seat} is Reserved by {user}"),
            Some(Seat::Held { user, deadline }) if *deadline > at => {
                format!("seat {seat} is On hold by {user} until {deadline}")
            }
            Some(Seat::Held { user, deadline }) => {
                format!("seat {seat} is Available ({user}'s hold lapsed at {deadline})")
            }
        }
    }

    /// What a job applied at `at` answers by the model, which it then applies.
    pub fn job(&mut self, kind: Kind, seat: u32, user: &str, at: i64) -> Expected {
        let refused = |(code, why): Refusal| Expected {
            code,
            expires_at: None,
            why,
        };
        match kind {
            Kind::Hold => {
                if let Some(refusal) = self.refusal(Needs::Available, seat, user, at) {
                    return refused(refusal);
                }
                let live = self.live_holds(user, at);
                if live.len() >= self.rules.cap as usize {
                    return refused((
                        429,
                        format!(
                            "{user} holds {} live seats, the cap: {live:?}",
                            self.rules.cap
                        ),
                    ));
                }
                let deadline = at + self.rules.hold_ms;
                let why = format!("{}; {user} holds {live:?}", self.describe(seat, at));
                self.taken.insert(
                    seat,
                    Seat::Held {
                        user: user.to_owned(),
                        deadline,
                    },
                );
                Expected {
                    code: 200,
                    expires_at: Some(deadline),
                    why,
                }
            }
            Kind::Reserve => {
                if let Some(refusal) = self.refusal(Needs::OwnHold, seat, user, at) {
                    return refused(refusal);
                }
                let why = self.describe(seat, at);
                self.taken.insert(
                    seat,
                    Seat::Reserved {
                        user: user.to_owned(),
                    },
                );
                Expected {
                    code: 200,
                    expires_at: None,
                    why,
                }
            }
        }
    }

    /// Replays a job the service applied: its answer must be the model's, and it must come after
    /// the step before it. The model goes on from its own answer either way.
    pub fn replay(&mut self, job: &Applied) -> Result<(), String> {
        let order = (job.at < self.last_at).then(|| {
            format!(
                "applied at {} although the step before it took effect at {} (out of order)",
                job.at, self.last_at
            )
        });
        self.last_at = self.last_at.max(job.at);
        let expected = self.job(job.kind, job.seat, job.user, job.at);
        let answer = (job.code != expected.code
            || (expected.code == 200 && job.expires_at != expected.expires_at))
            .then(|| {
                format!(
                    "answered {}{}, the model {}{} ({})",
                    job.code,
                    shown_expiry(job.expires_at),
                    expected.code,
                    shown_expiry(expected.expires_at),
                    expected.why
                )
            });
        let problems: Vec<String> = order.into_iter().chain(answer).collect();
        if problems.is_empty() {
            return Ok(());
        }
        Err(format!(
            "job {} ({} of seat {} by {}, applied at {}): {}",
            job.job,
            job.kind.name(),
            job.seat,
            job.user,
            job.at,
            problems.join("; ")
        ))
    }

    /// The answers the pre-check of a hold or reserve POST sent between `from` and `to` may give:
    /// 202 (queued) or a refusal. The state is the one the applied steps left: jobs queued but not
    /// applied yet change nothing.
    pub fn precheck(&self, kind: Kind, seat: u32, user: &str, from: i64, to: i64) -> Vec<u16> {
        let answer = |at| match self.refusal(kind.into(), seat, user, at) {
            Some((code, _)) => code,
            None => 202,
        };
        let mut answers = vec![answer(from), answer(to)];
        answers.dedup();
        answers
    }

    /// Replays a release answered `answered` between `from` and `to`. Afterwards the seat is
    /// Available if `user` held it, whether the release or the lapse of the hold did it.
    pub fn release(
        &mut self,
        seat: u32,
        user: &str,
        answered: u16,
        from: i64,
        to: i64,
    ) -> Result<(), String> {
        let answer = |at| {
            self.refusal(Needs::OwnHold, seat, user, at)
                .map_or(200, |(code, _)| code)
        };
        let allowed = [answer(from), answer(to)];
        let outcome = if allowed.contains(&answered) {
            Ok(())
        } else {
            Err(format!(
                "release of seat {seat} by {user} between {from} and {to}: answered {answered}, the model {} ({})",
                allowed[0],
                self.describe(seat, from)
            ))
        };
        if matches!(self.taken.get(&seat), Some(Seat::Held { user: u, .. }) if u == user) {
            self.taken.remove(&seat);
        }
        self.last_at = self.last_at.max(from);
        outcome
    }

    /// Seats Reserved.
    pub fn reserved(&self) -> u32 {
        self.taken
            .values()
            .filter(|s| matches!(s, Seat::Reserved { .. }))
            .count() as u32
    }

    /// Compares what reads between `read.from` and `read.to` showed with the model: a hold whose
    /// deadline falls in between may show either way. One line per difference.
    pub fn check_read(&self, read: &EventRead) -> Vec<String> {
        let (from, to) = (read.from, read.to);
        let sure = |seat: &u32| !read.unsure.contains(seat);
        let mut problems = Vec::new();
        for s in read.seats.iter().filter(|s| sure(&s.seat)) {
            let fits = match self.taken.get(&s.seat) {
                None => s.status == SeatStatus::Available,
                Some(Seat::Reserved { user }) => s.status == SeatStatus::Reserved && s.user == user,
                Some(Seat::Held { user, deadline }) => match s.status {
                    SeatStatus::OnHold => s.user == user && from < *deadline,
                    SeatStatus::Available => to >= *deadline,
                    SeatStatus::Reserved => false,
                },
            };
            if !fits {
                problems.push(format!(
                    "seat {} reads {} {:?} between {from} and {to}, the model: {}",
                    s.seat,
                    s.status,
                    s.user,
                    self.describe(s.seat, from)
                ));
            }
        }
        let (held_surely, held_maybe) =
            self.taken
                .values()
                .fold((0, 0), |(sure, maybe), s| match s {
                    Seat::Held { deadline, .. } => (
                        sure + u32::from(*deadline > to),
                        maybe + u32::from(*deadline > from),
                    ),
                    Seat::Reserved { .. } => (sure, maybe),
                });
        let counts_known = read.unsure.is_empty();
        if counts_known && !(held_surely..=held_maybe).contains(&read.on_hold) {
            problems.push(format!(
                "the event counts {} seats On hold, the model {held_surely} to {held_maybe}",
                read.on_hold
            ));
        }
        if counts_known && read.reserved != self.reserved() {
            problems.push(format!(
                "the event counts {} seats Reserved, the model {}",
                read.reserved,
                self.reserved()
            ));
        }
        let mut listed = read.listed.to_vec();
        listed.sort_unstable();
        for seat in (1..=self.rules.seats).filter(sure) {
            let is_listed = listed.binary_search(&seat).is_ok();
            let (surely, maybe) = match self.taken.get(&seat) {
                None => (true, true),
                Some(Seat::Held { deadline, .. }) => (*deadline <= from, *deadline <= to),
                Some(Seat::Reserved { .. }) => (false, false),
            };
            if is_listed != surely && is_listed != maybe {
                problems.push(format!(
                    "seat {seat} is {}listed Available, the model: {}",
                    if is_listed { "" } else { "not " },
                    self.describe(seat, from)
                ));
            }
        }
        problems
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.code, shown_expiry(self.expires_at))
    }
}

fn shown_expiry(expires_at: Option<i64>) -> String {
    expires_at.map_or(String::new(), |at| format!(" until {at}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        seats: 10,
        cap: 2,
        hold_ms: 1000,
    };

    /// Applies each step `(kind, seat, user, at)` to the model, which must answer `code`.
    fn assert_answers(model: &mut EventModel, steps: &[(Kind, u32, &str, i64, u16)]) {
        for (i, &(kind, seat, user, at, code)) in steps.iter().enumerate() {
            let expected = model.job(kind, seat, user, at);
            assert_eq!(
                expected.code,
                code,
                "step {i}: {} of seat {seat} by {user} at {at}: {}",
                kind.name(),
                expected.why
            );
        }
    }

    use Kind::{Hold as H, Reserve as R};

    #[test]
    fn each_job_is_answered_by_the_state_the_jobs_before_it_left() {
        let mut model = EventModel::new(RULES);
        // Alice races for seats 3, 1, 2 in that order: the first two win, the third meets the
        // cap, which leaves seat 2 free for Bob. A reservation leaves the cap, and holds that
        // lapsed count for nothing. Carol's seat 8 is reserved once, by her; her reserve of seat
        // 9 at its deadline finds the hold lapsed, and the seat free for Dave.
        #[rustfmt::skip]
        assert_answers(&mut model, &[
            (H, 3, "alice", 100, 200), (H, 1, "alice", 100, 200), (H, 2, "alice", 100, 429),
            (H, 2, "bob", 100, 200), (H, 3, "bob", 100, 409), (H, 11, "bob", 100, 404),
            (R, 3, "alice", 200, 200), (H, 4, "alice", 200, 200), (H, 5, "alice", 200, 429),
            (H, 5, "alice", 1200, 200), (H, 6, "alice", 1200, 200), (H, 7, "alice", 1200, 429),
            (R, 8, "carol", 1300, 409), (H, 8, "carol", 1300, 200), (R, 8, "dave", 1310, 403),
            (R, 8, "carol", 1320, 200), (R, 8, "carol", 1330, 409), (H, 8, "dave", 1340, 409),
            (H, 9, "carol", 1340, 200), (R, 9, "carol", 2340, 409), (H, 9, "dave", 2340, 200),
        ]);
        assert_eq!(model.reserved(), 2, "seats 3 and 8");
    }

    #[test]
    fn a_hold_lasts_until_its_deadline_exclusive() {
        let mut model = EventModel::new(RULES);
        assert_eq!(
            model.job(Kind::Hold, 1, "alice", 0).expires_at,
            Some(1000),
            "HOLD_TTL after it was applied"
        );
        assert_eq!(model.job(Kind::Hold, 1, "bob", 999).code, 409);
        assert_eq!(model.job(Kind::Hold, 1, "bob", 1000).code, 200);
    }

    fn applied<'a>(job: &'a str, kind: Kind, seat: u32, code: u16, at: i64) -> Applied<'a> {
        Applied {
            job,
            kind,
            seat,
            user: "alice",
            code,
            at,
            expires_at: (code == 200 && kind == Kind::Hold).then_some(at + 1000),
        }
    }

    #[test]
    fn a_replay_names_each_answer_the_model_would_not_give() {
        let mut model = EventModel::new(RULES);
        assert_eq!(
            model.replay(&applied("e:j1", Kind::Hold, 1, 200, 10)),
            Ok(())
        );
        // A hold that lasts 700 ms too long, a reserve answered twice, a job out of order.
        let late = Applied {
            expires_at: Some(1710),
            ..applied("e:j2", Kind::Hold, 2, 200, 10)
        };
        let err = model.replay(&late).expect_err("a late deadline");
        assert!(
            err.contains("until 1710, the model 200 until 1010"),
            "{err}"
        );
        assert_eq!(
            model.replay(&applied("e:j3", Kind::Reserve, 1, 200, 20)),
            Ok(())
        );
        let err = model
            .replay(&applied("e:j4", Kind::Reserve, 1, 200, 20))
            .expect_err("a second reserve");
        assert!(err.contains("answered 200, the model 409"), "{err}");
        let err = model
            .replay(&applied("e:j5", Kind::Hold, 3, 429, 15))
            .expect_err("out of order");
        assert!(err.contains("out of order"), "{err}");
    }

    #[test]
    fn the_precheck_and_a_release_judge_the_seat_as_it_is_then() {
        let mut model = EventModel::new(RULES);
        model.job(Kind::Hold, 1, "alice", 0);
        model.job(Kind::Hold, 2, "alice", 0);
        assert_eq!(model.precheck(Kind::Hold, 1, "bob", 10, 20), vec![409]);
        assert_eq!(model.precheck(Kind::Reserve, 1, "bob", 10, 20), vec![403]);
        assert_eq!(model.precheck(Kind::Reserve, 1, "alice", 10, 20), vec![202]);
        // No cap at the pre-check; a deadline inside the window allows either answer.
        assert_eq!(model.precheck(Kind::Hold, 3, "alice", 10, 20), vec![202]);
        assert_eq!(
            model.precheck(Kind::Hold, 1, "bob", 990, 1010),
            vec![409, 202]
        );

        assert!(model.release(1, "bob", 403, 10, 20).is_ok());
        assert!(model.release(1, "alice", 200, 10, 20).is_ok());
        assert!(
            model.release(1, "alice", 200, 30, 40).is_err(),
            "released twice"
        );
        assert_eq!(
            model.job(Kind::Hold, 1, "bob", 50).code,
            200,
            "free at once"
        );
        assert!(model.release(2, "alice", 409, 1000, 1010).is_ok(), "lapsed");
    }

    #[test]
    fn reads_must_show_the_model_give_or_take_a_deadline_between_their_times() {
        let mut model = EventModel::new(RULES);
        model.job(Kind::Hold, 1, "alice", 0);
        model.job(Kind::Hold, 2, "alice", 0);
        model.job(Kind::Reserve, 2, "alice", 10);
        model.job(Kind::Hold, 3, "bob", 500);
        let listed: Vec<u32> = (4..=10).collect();
        let good = EventRead {
            from: 900,
            to: 1100,
            seats: vec![
                SeatRead {
                    seat: 1,
                    status: SeatStatus::Available,
                    user: "",
                },
                SeatRead {
                    seat: 2,
                    status: SeatStatus::Reserved,
                    user: "alice",
                },
                SeatRead {
                    seat: 3,
                    status: SeatStatus::OnHold,
                    user: "bob",
                },
            ],
            on_hold: 1,
            reserved: 1,
            listed: &listed,
            unsure: &[],
        };
        assert_eq!(model.check_read(&good), Vec::<String>::new());

        let mut bad = good.clone();
        bad.to = 950;
        bad.seats[2].user = "carol";
        bad.reserved = 2;
        bad.on_hold = 3;
        let problems = model.check_read(&bad);
        // Seat 1 cannot have lapsed by 950, seat 3 is not Carol's, and both counts are off.
        assert_eq!(problems.len(), 4, "{problems:#?}");
        let unlisted: Vec<u32> = (5..=10).collect();
        let problems = model.check_read(&EventRead {
            listed: &unlisted,
            ..good
        });
        assert_eq!(problems.len(), 1, "seat 4 is Available: {problems:#?}");
        // What a step unknown to the reader may have changed is not held against the service.
        let problems = model.check_read(&EventRead {
            unsure: &[1, 3],
            ..bad
        });
        assert_eq!(problems, Vec::<String>::new());
    }
}
