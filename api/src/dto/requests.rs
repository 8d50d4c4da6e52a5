//! The request bodies, parsed into queue-core's domain types as they are deserialised.

use queue_core::{EventName, SeatCount, SeatId, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

use super::schema::{EXAMPLE_SEAT, EXAMPLE_USER};

/// A new event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "Opening night", "totalSeats": 100}))]
pub struct CreateEvent {
    /// Not blank, at most 200 characters, no control characters.
    #[schema(value_type = String, min_length = 1, max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub name: EventName,
    /// An integer from 10 to 10,000 (not a string, not a fraction; `50.0` is the integer 50).
    #[schema(value_type = u32, minimum = 10, maximum = 10000)]
    #[serde(deserialize_with = "seat_count")]
    pub total_seats: SeatCount,
}

/// `totalSeats`: a JSON number that is an integer. JSON does not tell `50` from `50.0` (JSON
/// Schema's `integer` accepts both), so neither does the API; `10.5` and `"50"` are refused.
fn seat_count<'de, D: serde::Deserializer<'de>>(de: D) -> Result<SeatCount, D::Error> {
    use serde::de::Error;
    let number = serde_json::Number::deserialize(de)?;
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => Some(n),
        // Exact: every integer up to 2^53 is an f64, and the range check comes next.
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&f) => {
            Some(f as u64)
        }
        _ => None,
    };
    match whole {
        Some(n) => SeatCount::try_from(n).map_err(D::Error::custom),
        None => Err(D::Error::custom(format!(
            "totalSeats must be an integer from {} to {}, got {number}",
            queue_core::ids::MIN_SEATS,
            queue_core::ids::MAX_SEATS
        ))),
    }
}

/// The body of hold, reserve, refresh and release.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"id": EXAMPLE_SEAT, "UUID": EXAMPLE_USER}))]
pub struct SeatRequest {
    /// The seat: `<event id>:<seat number>`, the number from 1 to 10,000.
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}:([1-9][0-9]{0,3}|10000)$")]
    pub id: SeatId,
    /// The user's id, a UUID. In jwt mode the user is the bearer token's, and `UUID` may be
    /// left out there (the document, written for both modes, requires it); when present it must
    /// be the token's user.
    #[serde(rename = "UUID", default)]
    #[schema(value_type = String, format = Uuid, required = true)]
    pub user: Option<UserId>,
}
