//! The handlers, one module per resource. A handler extracts, converts to domain types, calls one
//! queue-core operation and shapes the answer.

pub mod events;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod page;
pub mod seats;
pub mod stream;

use crate::error::ApiError;

/// Parses a path segment into a domain id, naming the parameter when it is malformed (422).
pub fn parse_id<T>(raw: &str, field: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr<Err = queue_core::InvalidValue>,
{
    raw.parse()
        .map_err(|e: queue_core::InvalidValue| ApiError::InvalidField {
            field: field.to_owned(),
            message: e.to_string(),
        })
}
