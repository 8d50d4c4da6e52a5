//! Events: an event and its seat counts, as the service reports them.

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
}

/// An event with the seats that are Available at one instant, in seat order.
#[derive(Debug, Clone)]
pub struct AvailableSeats {
    pub event: Event,
    pub seats: Vec<SeatId>,
}
