//! Identifiers and validated values. Each is a newtype with a private field that can only be built
//! by parsing, so a value that exists is valid ("parse, don't validate"). Their `Display` form is
//! the canonical one used in URLs, JSON and Redis keys.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a value was rejected; the message is meant for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(String);

impl InvalidValue {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Fewest seats an event may have.
pub const MIN_SEATS: u32 = 10;
/// Most seats an event may have.
pub const MAX_SEATS: u32 = 10_000;
/// Longest event name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

macro_rules! string_newtype {
    ($name:ident) => {
        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                value.parse()
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.to_string()
            }
        }
    };
}

/// An event's id: a UUID, in lowercase hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(Uuid);

impl EventId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id as its text, written into `buf`: what `Display` gives, without the formatting
    /// machinery or an allocation (key names are built on every request).
    pub fn encode<'a>(&self, buf: &'a mut [u8; uuid::fmt::Hyphenated::LENGTH]) -> &'a str {
        self.0.hyphenated().encode_lower(buf)
    }
}

impl FromStr for EventId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hyphenated_uuid(s)
            .map(Self)
            .ok_or_else(|| InvalidValue::new(format!("`{}` is not an event id (a UUID)", clip(s))))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}
string_newtype!(EventId);

/// A user's id, the `UUID` field of requests: a UUID, kept in lowercase hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(Uuid);

impl UserId {
    /// The 16 bytes the Lua scripts store.
    pub fn to_bytes(self) -> [u8; 16] {
        *self.0.as_bytes()
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }
}

impl FromStr for UserId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hyphenated_uuid(s).map(Self).ok_or_else(|| {
            InvalidValue::new(format!(
                "`{}` is not a user id (a UUID such as 0b6f6a8e-54a4-4b43-9a71-3f0c2f2f5c11)",
                clip(s)
            ))
        })
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}
string_newtype!(UserId);

/// A seat's number within its event, 1-based.
pub type SeatNo = u32;

/// A seat's id: `<event id>:<seat number>`, the number from 1 to the event's seat count. The event
/// id inside lets the service find the seat's keys without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SeatId {
    event: EventId,
    number: SeatNo,
}

impl SeatId {
    /// The id of seat `number` of `event`; `None` when the number is outside 1..=MAX_SEATS.
    pub fn new(event: EventId, number: SeatNo) -> Option<Self> {
        (1..=MAX_SEATS)
            .contains(&number)
            .then_some(Self { event, number })
    }

    pub fn event(&self) -> EventId {
        self.event
    }

    pub fn number(&self) -> SeatNo {
        self.number
    }
}

impl FromStr for SeatId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            InvalidValue::new(format!(
                "`{}` is not a seat id (`<event id>:<seat number>`)",
                clip(s)
            ))
        };
        let (event, number) = s.rsplit_once(':').ok_or_else(invalid)?;
        let event = event.parse().map_err(|_| invalid())?;
        let number = parse_canonical_u32(number).ok_or_else(invalid)?;
        Self::new(event, number).ok_or_else(invalid)
    }
}

impl fmt::Display for SeatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.event, self.number)
    }
}
string_newtype!(SeatId);

/// A job's id: `<event id>:j<sequence>`, where the sequence numbers one event's jobs in the order
/// they were accepted. The event id inside lets the service find the job without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId {
    event: EventId,
    seq: u64,
}

impl JobId {
    /// The id of job `seq` of `event`; `None` for 0, which numbers no job (the first is 1).
    pub fn new(event: EventId, seq: u64) -> Option<Self> {
        (seq >= 1).then_some(Self { event, seq })
    }

    pub fn event(&self) -> EventId {
        self.event
    }

    /// Acceptance order within the event: a smaller sequence was accepted earlier.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl FromStr for JobId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            InvalidValue::new(format!(
                "`{}` is not a job id (`<event id>:j<number>`)",
                clip(s)
            ))
        };
        let (event, seq) = s.rsplit_once(":j").ok_or_else(invalid)?;
        let event = event.parse().map_err(|_| invalid())?;
        let seq = parse_canonical_u64(seq).ok_or_else(invalid)?;
        Self::new(event, seq).ok_or_else(invalid)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:j{}", self.event, self.seq)
    }
}
string_newtype!(JobId);

/// The number of seats of an event: MIN_SEATS..=MAX_SEATS. Deserialises from a JSON integer
/// only: `"50"` and `10.5` are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u32", try_from = "u64")]
pub struct SeatCount(u32);

impl SeatCount {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u64> for SeatCount {
    type Error = InvalidValue;
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        u32::try_from(value)
            .ok()
            .filter(|n| (MIN_SEATS..=MAX_SEATS).contains(n))
            .map(Self)
            .ok_or_else(|| {
                InvalidValue::new(format!(
                    "totalSeats must be an integer from {MIN_SEATS} to {MAX_SEATS}, got {value}"
                ))
            })
    }
}

impl From<SeatCount> for u32 {
    fn from(value: SeatCount) -> Self {
        value.0
    }
}

/// An event's name: not blank, at most MAX_NAME_CHARS characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventName(String);

impl EventName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventName {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.trim().is_empty() {
            return Err(InvalidValue::new("name must not be empty"));
        }
        let chars = value.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(InvalidValue::new(format!(
                "name must be at most {MAX_NAME_CHARS} characters, got {chars}"
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(InvalidValue::new(
                "name must not contain control characters",
            ));
        }
        Ok(Self(value))
    }
}

impl From<EventName> for String {
    fn from(value: EventName) -> Self {
        value.0
    }
}

/// Accepts only the canonical hyphenated form (any case), so that one id has one spelling.
fn parse_hyphenated_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

fn parse_canonical_u64(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

fn parse_canonical_u32(s: &str) -> Option<u32> {
    parse_canonical_u64(s).and_then(|n| u32::try_from(n).ok())
}

/// Keeps error messages short when someone sends a huge id.
fn clip(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "5f0c6f8e-1b2a-4c3d-9e8f-0a1b2c3d4e5f";

    #[test]
    fn seat_ids_round_trip_and_reject_non_canonical_forms() {
        let id: SeatId = format!("{E}:17")
            .parse()
            .expect("a canonical seat id parses");
        assert_eq!(id.number(), 17);
        assert_eq!(id.to_string(), format!("{E}:17"));
        for bad in [
            format!("{E}:0"),
            format!("{E}:017"),
            format!("{E}:10001"),
            format!("{E}:+1"),
            format!("{E}:"),
            E.to_string(),
            "x:1".to_owned(),
            format!("{{{E}}}:1"),
        ] {
            assert!(bad.parse::<SeatId>().is_err(), "`{bad}` must be rejected");
        }
    }

    #[test]
    fn uppercase_uuids_are_normalised() {
        let id: UserId = E.to_uppercase().parse().expect("uppercase UUIDs are UUIDs");
        assert_eq!(id.to_string(), E);
        assert!(
            E.replace('-', "").parse::<UserId>().is_err(),
            "simple form is refused"
        );
    }

    #[test]
    fn job_ids_round_trip() {
        let id: JobId = format!("{E}:j42")
            .parse()
            .expect("a canonical job id parses");
        assert_eq!(id.seq(), 42);
        assert_eq!(id.to_string(), format!("{E}:j42"));
        for bad in [
            format!("{E}:j0"),
            format!("{E}:j"),
            format!("{E}:42"),
            "j1".to_owned(),
        ] {
            assert!(bad.parse::<JobId>().is_err(), "`{bad}` must be rejected");
        }
    }

    #[test]
    fn seat_counts_and_names_are_bounded() {
        assert!(SeatCount::try_from(9).is_err());
        assert!(SeatCount::try_from(10_001).is_err());
        assert_eq!(SeatCount::try_from(10).map(SeatCount::get), Ok(10));
        assert!(EventName::try_from("  ".to_owned()).is_err());
        assert!(EventName::try_from("a".repeat(201)).is_err());
        assert!(EventName::try_from("é".repeat(200)).is_ok());
    }
}
