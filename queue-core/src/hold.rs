//! The synchronous operations on a hold: refresh and release.

use crate::error::Result;
use crate::ids::{SeatId, UserId};
use crate::keys::EventKeys;
use crate::reply::{Code, Reply};
use crate::scripts::{self, arg, arg_bytes};
use crate::seat::{Refusal, Seat};
use crate::store::Store;

impl Store {
    /// Extends the user's live hold on `seat` to now + HOLD_TTL, capped at the hold's start +
    /// MAX_HOLD_LIFETIME (G6). Returns the seat with its new expiry.
    pub async fn refresh(&self, seat: SeatId, user: UserId) -> Result<Result<Seat, Refusal>> {
        let k = EventKeys::new(seat.event());
        let rules = self.rules();
        let reply = self
            .script(
                &scripts::REFRESH,
                [&k.event, &k.seats, &k.deadlines, &k.tick, &k.changes],
                vec![
                    arg(seat.number()),
                    arg_bytes(&user.to_bytes()),
                    arg(rules.hold_ttl_secs * 1000),
                    arg(rules.max_hold_lifetime_secs * 1000),
                ],
            )
            .await?;
        self.hold_outcome(seat, reply)
    }

    /// Gives the user's live hold on `seat` back: the seat is Available at once.
    pub async fn release(&self, seat: SeatId, user: UserId) -> Result<Result<Seat, Refusal>> {
        let k = EventKeys::new(seat.event());
        let reply = self
            .script(
                &scripts::RELEASE,
                [
                    &k.event,
                    &k.seats,
                    &k.deadlines,
                    &k.holders,
                    &k.tick,
                    &k.changes,
                ],
                vec![arg(seat.number()), arg_bytes(&user.to_bytes())],
            )
            .await?;
        self.hold_outcome(seat, reply)
    }

    /// Reads `{200, new seat record}` or a refusal. The record is decoded as of an instant before
    /// any deadline in it, since the script just made it.
    fn hold_outcome(&self, seat: SeatId, mut reply: Reply) -> Result<Result<Seat, Refusal>> {
        match reply.code()? {
            Code::Ok => Ok(Ok(reply.seat_state(0)?.into_seat(seat))),
            code => reply.refusal(code, self.rules().max_held_seats).map(Err),
        }
    }
}
