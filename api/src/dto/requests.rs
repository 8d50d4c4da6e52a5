//! The request bodies, parsed into queue-core's domain types as they are deserialised.

use queue_core::{EventName, Millis, SeatCount, SeatId, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

use super::schema::{EXAMPLE_SEAT, EXAMPLE_USER};

/// A new event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "Opening night", "totalSeats": 100, "endsAt": "2027-06-01T23:00:00Z"}))]
pub struct CreateEvent {
    /// Not blank, at most 200 characters, no control characters.
    #[schema(value_type = String, min_length = 1, max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub name: EventName,
    /// An integer from 10 to 10,000 (not a string, not a fraction; `50.0` is the integer 50).
    #[schema(value_type = u32, minimum = 10, maximum = 10000)]
    #[serde(deserialize_with = "seat_count")]
    pub total_seats: SeatCount,
    /// Optional (`null` is no end): when the event ends (RFC 3339, `Z` or an offset such as `+02:00`), in the future
    /// and at most two years ahead. EVENT_RETENTION later (7 days by default) the event and
    /// every key of it are deleted, as `DELETE /events/{id}` does; until then it is served as
    /// any other.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(default, deserialize_with = "ends_at")]
    pub ends_at: Option<Millis>,
}

/// `endsAt`: an RFC 3339 date-time (its range, which depends on the time now, is checked by the
/// handler).
fn ends_at<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Millis>, D::Error> {
    use serde::de::Error;
    // `null` is no end, as a missing `endsAt` is.
    let Some(text) = Option::<String>::deserialize(de)? else {
        return Ok(None);
    };
    parse_rfc3339_ms(&text).map(Some).ok_or_else(|| {
        D::Error::custom(format!(
            "endsAt must be an RFC 3339 date-time such as 2027-06-01T23:00:00Z, got {text:?}"
        ))
    })
}

/// Milliseconds since the epoch of an RFC 3339 date-time with `Z` (or `z`) or a `±HH:MM`
/// offset, and at most nanosecond precision; `None` for anything else.
pub fn parse_rfc3339_ms(text: &str) -> Option<Millis> {
    // The shortest form is `YYYY-MM-DDTHH:MM:SSZ`; the offset follows the seconds (and fraction).
    if !text.is_ascii() || text.len() < 20 || text.len() > 40 {
        return None;
    }
    let (local, offset_ms) = if let Some(local) = text.strip_suffix(['Z', 'z']) {
        (local, 0)
    } else {
        let (local, offset) = text.split_at(text.len() - 6);
        let sign = match offset.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let (h, m) = offset[1..].split_once(':')?;
        if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
        if h > 23 || m > 59 {
            return None;
        }
        (local, sign * (h * 60 + m) * 60_000)
    };
    // Date, `T`, time and an optional fraction: nothing else before the offset.
    let (date, time) = local.split_at_checked(10)?;
    let time = time.strip_prefix(['T', 't'])?;
    if !date.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        || !time
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b':' || b == b'.')
    {
        return None;
    }
    // humantime reads the UTC form strictly (`T` or `t` between date and time, 4-digit year).
    let at = humantime::parse_rfc3339(&format!("{local}Z")).ok()?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    Some(i64::try_from(ms).ok()? - offset_ms)
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

#[cfg(test)]
mod tests {
    use super::parse_rfc3339_ms;

    #[test]
    fn rfc3339_with_z_or_an_offset_parses_and_nothing_else() {
        let utc = parse_rfc3339_ms("2027-06-01T23:00:00Z").expect("UTC");
        assert_eq!(utc, 1_811_890_800_000);
        assert_eq!(
            parse_rfc3339_ms("2027-06-01T23:00:00.250Z"),
            Some(utc + 250)
        );
        assert_eq!(parse_rfc3339_ms("2027-06-02T01:00:00+02:00"), Some(utc));
        assert_eq!(parse_rfc3339_ms("2027-06-01T21:30:00-01:30"), Some(utc));
        for bad in [
            "",
            "tomorrow",
            "2027-06-01",
            "2027-06-01T23:00:00",
            "2027-06-01T23:00:00+2:00",
            "2027-13-01T23:00:00Z",
            "2027-06-01T23:00:00+24:00",
            "2027-06-01 23:00:00Z",
            "2027-06-01T23:00:00ZZ",
            "２０２７-06-01T23:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad:?} is refused");
        }
    }
}
