//! Events: an event and its seat counts, as the service reports them.

use crate::clock::Millis;
use crate::ids::{EventId, SeatId};

/// An event and its seat counts at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    pub name: String,
    pub total_seats: u32,
    pub available: u32,
    pub on_hold: u32,
    pub reserved: u32,
    /// When the event ends (`endsAt`, ms since the epoch), if it was given one: EVENT_RETENTION
    /// later the housekeeping deletes it.
    pub ends_at: Option<Millis>,
}

/// One page of the events registry, newest first (`GET /events`).
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<EventCursor>,
}

/// A place in the events registry: the last event of a page, by its creation time and id. The
/// API hands it out as an opaque string ([`EventCursor::encode`], [`EventCursor::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    pub created: Millis,
    pub id: EventId,
}

impl EventCursor {
    /// `<creation ms in hex>.<event id>`: opaque to clients, who only hand it back.
    pub fn encode(&self) -> String {
        format!("{:x}.{}", self.created, self.id)
    }

    /// A cursor as [`EventCursor::encode`] writes it: 1 to 15 lowercase hex digits (leading
    /// zeros allowed), a dot, a lowercase event id; `None` for anything else. (The OpenAPI
    /// document states the same pattern.)
    pub fn parse(s: &str) -> Option<Self> {
        let (created, id) = s.split_once('.')?;
        let lower_hex = |t: &str| {
            t.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if created.is_empty() || created.len() > 15 || !lower_hex(created) {
            return None;
        }
        if id.len() != 36 || !lower_hex(&id.replace('-', "")) {
            return None;
        }
        let created = i64::from_str_radix(created, 16).ok()?;
        let id: EventId = id.parse().ok()?;
        Some(Self { created, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_nothing_else_parses() {
        let cursor = EventCursor {
            created: 1_764_600_000_123,
            id: EventId::new_random(),
        };
        assert_eq!(EventCursor::parse(&cursor.encode()), Some(cursor));
        for bad in [
            "",
            ".",
            "zz.x",
            "1",
            &format!("-1.{}", cursor.id),
            &format!("{}0", cursor.encode()),
            &cursor.encode().to_uppercase(),
            &format!("1234567890abcdef.{}", cursor.id),
        ] {
            assert_eq!(EventCursor::parse(bad), None, "{bad:?} must not parse");
        }
    }
}

/// An event with the seats that are Available at one instant, in seat order.
#[derive(Debug, Clone)]
pub struct AvailableSeats {
    pub event: Event,
    pub seats: Vec<SeatId>,
}
