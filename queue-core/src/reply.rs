//! The one decoder of script replies: a reply read front to back, its reply codes, and the
//! values the scripts return (counts, seat records, refusals).

use fred::bytes::Bytes;
use fred::types::Value;

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::seat::{Refusal, SeatState, SeatStatus};

/// The outcome codes the scripts answer with, HTTP-style; `CODE` in `lua/common.lua` is the same
/// table on the Lua side (a test ties the two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// Done: held, reserved, refreshed or released.
    Ok = 200,
    /// Accepted onto the queue.
    Accepted = 202,
    /// Another user holds the seat.
    HeldByAnother = 403,
    /// No such event or seat.
    NoSuchSeat = 404,
    /// The seat is not in the status the operation needs.
    Conflict = 409,
    /// The user already holds MAX_HELD_SEATS seats of the event.
    HoldLimit = 429,
    /// The event's queue is full.
    QueueFull = 503,
}

impl Code {
    pub(crate) const ALL: [Self; 7] = [
        Self::Ok,
        Self::Accepted,
        Self::HeldByAnother,
        Self::NoSuchSeat,
        Self::Conflict,
        Self::HoldLimit,
        Self::QueueFull,
    ];

    fn from_i64(n: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|code| *code as i64 == n)
    }

    /// The name of its entry in Lua's `CODE` table.
    #[cfg(test)]
    pub(crate) fn lua_name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Accepted => "ACCEPTED",
            Self::HeldByAnother => "HELD_BY_ANOTHER",
            Self::NoSuchSeat => "NO_SUCH_SEAT",
            Self::Conflict => "CONFLICT",
            Self::HoldLimit => "HOLD_LIMIT",
            Self::QueueFull => "QUEUE_FULL",
        }
    }
}

/// A script's array reply, read front to back.
#[derive(Debug)]
pub(crate) struct Reply {
    items: std::vec::IntoIter<Value>,
}

impl Reply {
    pub(crate) fn new(value: Value) -> Self {
        let items = match value {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => vec![other],
        };
        Self {
            items: items.into_iter(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.len() == 0
    }

    pub(crate) fn int(&mut self) -> Result<i64> {
        match self.items.next() {
            Some(v) => v.as_i64().ok_or_else(|| {
                Error::Corrupt(format!("expected an integer in a script reply, got {v:?}"))
            }),
            None => Err(Error::Corrupt(
                "a script reply is shorter than expected".into(),
            )),
        }
    }

    /// A count or sequence number: a non-negative integer.
    pub(crate) fn unsigned(&mut self) -> Result<u64> {
        let n = self.int()?;
        u64::try_from(n).map_err(|_| Error::Corrupt(format!("a negative count {n}")))
    }

    /// A number of seats.
    pub(crate) fn count(&mut self) -> Result<u32> {
        let n = self.int()?;
        u32::try_from(n).map_err(|_| Error::Corrupt(format!("a count of {n}")))
    }

    /// A flag: 1 is true, anything else false.
    pub(crate) fn flag(&mut self) -> Result<bool> {
        Ok(self.int()? == 1)
    }

    /// A reply code.
    pub(crate) fn code(&mut self) -> Result<Code> {
        let n = self.int()?;
        Code::from_i64(n).ok_or_else(|| Error::Corrupt(format!("unexpected script code {n}")))
    }

    /// A string, or `None` for a nil (Lua `false`) or a missing trailing item.
    pub(crate) fn opt_string(&mut self) -> Result<Option<String>> {
        match self.items.next() {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .ok_or_else(|| Error::Corrupt("expected a string in a script reply".into())),
        }
    }

    pub(crate) fn string(&mut self) -> Result<String> {
        self.opt_string()?
            .ok_or_else(|| Error::Corrupt("a script reply lacks a string".into()))
    }

    /// The next item as it came, or `None` past the end.
    pub(crate) fn value(&mut self) -> Option<Value> {
        self.items.next()
    }

    /// Raw bytes (a seat record, a queued job); empty for a nil or a missing trailing item.
    pub(crate) fn bytes(&mut self) -> Result<Bytes> {
        match self.items.next() {
            None | Some(Value::Null) => Ok(Bytes::new()),
            Some(v) => v
                .into_bytes()
                .ok_or_else(|| Error::Corrupt("expected bytes in a script reply".into())),
        }
    }

    /// A raw item, or `None` past the end.
    pub(crate) fn next_bytes(&mut self) -> Option<Result<Bytes>> {
        (self.items.len() > 0).then(|| self.bytes())
    }

    /// A raw seat record, decoded as of `now`.
    pub(crate) fn seat_state(&mut self, now: Millis) -> Result<SeatState> {
        seat_state(&self.bytes()?, now)
    }

    /// The refusal that `code` stands for, reading the seat status a 409 comes with (the letter
    /// of [`SeatStatus::code`]). `limit` is MAX_HELD_SEATS, which a 429 reports.
    pub(crate) fn refusal(&mut self, code: Code, limit: u32) -> Result<Refusal> {
        Ok(match code {
            Code::NoSuchSeat => Refusal::NoSuchSeat,
            Code::HeldByAnother => Refusal::HeldByAnother,
            Code::HoldLimit => Refusal::HoldLimit { limit },
            Code::Conflict => {
                let letter = self.string()?;
                let current = letter
                    .chars()
                    .next()
                    .and_then(SeatStatus::from_code)
                    .ok_or_else(|| Error::Corrupt(format!("unknown seat status `{letter}`")))?;
                Refusal::Conflict { current }
            }
            Code::Ok | Code::Accepted | Code::QueueFull => {
                return Err(Error::Corrupt(format!("{code:?} is not a refusal")))
            }
        })
    }
}

/// A raw seat record decoded as of `now` (see [`SeatState::decode`]).
pub(crate) fn seat_state(raw: &[u8], now: Millis) -> Result<SeatState> {
    SeatState::decode(raw, now).map_err(Error::Corrupt)
}
