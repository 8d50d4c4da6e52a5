//! A seat's status and its state as stored in Redis (see `lua/common.lua` for the encoding).

use std::fmt;

use serde::Serialize;

use crate::ids::{SeatId, UserId};

/// Milliseconds since the Unix epoch, on Redis's clock.
pub type Millis = i64;

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

impl SeatState {
    /// Decodes a raw state from the seats hash as of `now`: a hold past its deadline is Available.
    /// `None` (an absent field) is Available. Errors name the corrupt value.
    pub fn decode(raw: Option<&str>, now: Millis) -> Result<Self, String> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Self::Available);
        };
        let corrupt = || format!("corrupt seat state `{raw}`");
        let mut fields = raw.split('|');
        let code = fields.next().and_then(|c| c.chars().next());
        let user: UserId = fields
            .next()
            .and_then(|u| u.parse().ok())
            .ok_or_else(corrupt)?;
        let mut number = || -> Result<Millis, String> {
            fields
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(corrupt)
        };
        match code.and_then(SeatStatus::from_code) {
            Some(SeatStatus::Reserved) => Ok(Self::Reserved { by: user }),
            Some(SeatStatus::OnHold) => {
                let expires_at = number()?;
                let since = number()?;
                Ok(if expires_at > now {
                    Self::OnHold {
                        holder: user,
                        expires_at,
                        since,
                    }
                } else {
                    Self::Available
                })
            }
            _ => Err(corrupt()),
        }
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
    /// The HTTP-style code of SPEC §2.
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

    const U: &str = "5f0c6f8e-1b2a-4c3d-9e8f-0a1b2c3d4e5f";

    #[test]
    fn holds_lapse_at_their_deadline() {
        let raw = format!("H|{U}|1000|500");
        let live = SeatState::decode(Some(&raw), 999).expect("valid state");
        assert_eq!(live.status(), SeatStatus::OnHold);
        assert_eq!(live.expires_at(), Some(1000));
        let lapsed = SeatState::decode(Some(&raw), 1000).expect("valid state");
        assert_eq!(
            lapsed,
            SeatState::Available,
            "a hold is over at its deadline"
        );
    }

    #[test]
    fn reserved_never_lapses_and_corruption_is_reported() {
        let raw = format!("R|{U}|1000");
        let state = SeatState::decode(Some(&raw), i64::MAX).expect("valid state");
        assert_eq!(state.status(), SeatStatus::Reserved);
        assert!(SeatState::decode(Some("X|y"), 0).is_err());
        assert!(SeatState::decode(Some(&format!("H|{U}|soon|0")), 0).is_err());
    }

    /// Every status letter the Lua scripts compare against or write must be one of the enum's.
    #[test]
    fn lua_status_literals_are_seat_statuses() {
        let mut seen = 0;
        for (name, source) in crate::scripts::SOURCES {
            for quote in ["status == '", "status ~= '", "f[1] == '", "return '"] {
                for piece in source.split(quote).skip(1) {
                    let literal: String = piece.chars().take_while(|c| *c != '\'').collect();
                    let mut chars = literal.chars();
                    let (Some(code), None) = (chars.next(), chars.next()) else {
                        continue;
                    };
                    assert!(
                        SeatStatus::from_code(code).is_some(),
                        "{name}: '{literal}' is not a SeatStatus code"
                    );
                    seen += 1;
                }
            }
        }
        assert!(seen > 10, "the scan found only {seen} status literals");
    }
}
