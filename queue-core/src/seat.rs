//! A seat's status and its state as stored in Redis (see `lua/common.lua` for the encoding).

use std::fmt;

use serde::Serialize;

use crate::clock::Millis;
use crate::ids::{SeatId, UserId};

/// The three statuses of a seat, spelled as the API shows them. This is the one list of them;
/// the Lua scripts use the single-letter codes of [`SeatStatus::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SeatStatus {
    #[serde(rename = "Available")]
    Available,
    #[serde(rename = "On hold")]
    OnHold,
    #[serde(rename = "Reserved")]
    Reserved,
}

impl SeatStatus {
    pub const ALL: [SeatStatus; 3] = [Self::Available, Self::OnHold, Self::Reserved];

    /// How the API spells the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "Available",
            Self::OnHold => "On hold",
            Self::Reserved => "Reserved",
        }
    }

    /// The letter the Lua scripts use for it: 'A', 'H' or 'R'.
    pub fn code(self) -> char {
        match self {
            Self::Available => 'A',
            Self::OnHold => 'H',
            Self::Reserved => 'R',
        }
    }

    pub fn from_code(code: char) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl fmt::Display for SeatStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A seat's state at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatState {
    Available,
    OnHold {
        holder: UserId,
        expires_at: Millis,
        since: Millis,
    },
    Reserved {
        by: UserId,
    },
}

/// Bytes of one seat's record in the event's seats string (layout in `lua/common.lua`).
pub const RECORD_LEN: usize = 29;

impl SeatState {
    /// Decodes a seat record as of `now`: a hold past its deadline is Available, and so is an
    /// all-zero (never written or cleared) record. Errors name what is wrong.
    pub fn decode(raw: &[u8], now: Millis) -> Result<Self, String> {
        let status = raw
            .first()
            .and_then(|b| SeatStatus::from_code(char::from(*b)));
        let (Some(status), Ok(record)) = (status, <&[u8; RECORD_LEN]>::try_from(raw)) else {
            return match raw.iter().all(|b| *b == 0) || raw.first().is_some_and(|b| *b == b'A') {
                true => Ok(Self::Available),
                false => Err(format!("corrupt seat record {raw:?}")),
            };
        };
        let mut user = [0u8; 16];
        user.copy_from_slice(&record[1..17]);
        let user = UserId::from_bytes(user);
        let t1 = u48(&record[17..23]);
        let t2 = u48(&record[23..29]);
        Ok(match status {
            SeatStatus::Available => Self::Available,
            SeatStatus::Reserved => Self::Reserved { by: user },
            SeatStatus::OnHold if t1 > now => Self::OnHold {
                holder: user,
                expires_at: t1,
                since: t2,
            },
            SeatStatus::OnHold => Self::Available,
        })
    }

    pub fn status(&self) -> SeatStatus {
        match self {
            Self::Available => SeatStatus::Available,
            Self::OnHold { .. } => SeatStatus::OnHold,
            Self::Reserved { .. } => SeatStatus::Reserved,
        }
    }

    /// The holder or reserver.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Self::Available => None,
            Self::OnHold { holder, .. } => Some(*holder),
            Self::Reserved { by } => Some(*by),
        }
    }

    pub fn expires_at(&self) -> Option<Millis> {
        match self {
            Self::OnHold { expires_at, .. } => Some(*expires_at),
            _ => None,
        }
    }
    /// This state as the state of seat `id`.
    pub fn into_seat(self, id: SeatId) -> Seat {
        Seat { id, state: self }
    }
}

fn u48(bytes: &[u8]) -> Millis {
    bytes.iter().fold(0, |n, b| (n << 8) | Millis::from(*b))
}

/// A seat as the service reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    pub id: SeatId,
    pub state: SeatState,
}

/// Why an operation on a seat was refused: a business answer, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such event or seat (404).
    NoSuchSeat,
    /// The seat is not in the status the operation needs; `current` is what it is (409).
    Conflict { current: SeatStatus },
    /// Another user holds the seat (403).
    HeldByAnother,
    /// The user already holds `limit` seats of this event (429).
    HoldLimit { limit: u32 },
}

impl Refusal {
    /// The HTTP-style code of docs/CONTRACT.md §2.
    pub fn code(self) -> u16 {
        match self {
            Self::NoSuchSeat => 404,
            Self::Conflict { .. } => 409,
            Self::HeldByAnother => 403,
            Self::HoldLimit { .. } => 429,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: u8, t1: Millis, t2: Millis) -> Vec<u8> {
        let mut r = vec![status];
        r.extend_from_slice(&[7u8; 16]);
        r.extend_from_slice(&t1.to_be_bytes()[2..]);
        r.extend_from_slice(&t2.to_be_bytes()[2..]);
        r
    }

    #[test]
    fn holds_lapse_at_their_deadline() {
        let raw = record(b'H', 1_795_000_001_000, 1_795_000_000_500);
        let live = SeatState::decode(&raw, 1_795_000_000_999).expect("valid record");
        assert_eq!(live.status(), SeatStatus::OnHold);
        assert_eq!(live.expires_at(), Some(1_795_000_001_000));
        assert_eq!(live.user(), Some(UserId::from_bytes([7; 16])));
        let lapsed = SeatState::decode(&raw, 1_795_000_001_000).expect("valid record");
        assert_eq!(
            lapsed,
            SeatState::Available,
            "a hold is over at its deadline"
        );
    }

    #[test]
    fn reserved_never_lapses_and_corruption_is_reported() {
        let state = SeatState::decode(&record(b'R', 5, 0), i64::MAX).expect("valid record");
        assert_eq!(state.status(), SeatStatus::Reserved);
        assert_eq!(
            SeatState::decode(&[0; RECORD_LEN], 0),
            Ok(SeatState::Available)
        );
        assert!(SeatState::decode(b"X", 0).is_err());
        assert!(SeatState::decode(&record(b'H', 1, 1)[..20], 0).is_err());
    }
}
