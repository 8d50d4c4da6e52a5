//! What exists only for the OpenAPI document: the schemas of queue-core's enums (which know
//! nothing of OpenAPI) and the example ids.

use serde::Serialize;
use utoipa::ToSchema;

// The ids the OpenAPI examples use, one event's throughout.
pub const EXAMPLE_EVENT: &str = "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4";
pub const EXAMPLE_SEAT: &str = "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4:7";
/// Job 42 of the example event, tagged under the key of the tests of `job_ids.rs`.
pub const EXAMPLE_JOB: &str =
    "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4:j42.202dcf7f2be7e4fb4d7cc2437b47c22f";
pub const EXAMPLE_USER: &str = "0b6f6a8e-54a4-4b43-9a71-3f0c2f2f5c11";

/// A seat's status (the schema of `queue_core::SeatStatus`, which knows nothing of OpenAPI).
#[derive(Debug, Serialize, ToSchema)]
pub enum SeatStatusSchema {
    Available,
    #[serde(rename = "On hold")]
    OnHold,
    Reserved,
}

/// What a job does (the schema of `queue_core::JobKind`).
#[derive(Debug, Serialize, ToSchema)]
pub enum JobKindSchema {
    #[serde(rename = "HOLD_SEAT")]
    Hold,
    #[serde(rename = "RESERVE_SEAT")]
    Reserve,
}

/// What happened to a seat (`change` of a stream message).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKindSchema {
    Held,
    Refreshed,
    Released,
    Lapsed,
    Reserved,
}

#[cfg(test)]
mod tests {
    use queue_core::{ChangeKind, JobKind, SeatStatus};
    use serde_json::Value;
    use utoipa::PartialSchema;

    use super::{ChangeKindSchema, JobKindSchema, SeatStatusSchema};

    fn listed<T: PartialSchema>() -> Value {
        serde_json::to_value(T::schema()).expect("a schema serialises")["enum"].clone()
    }

    fn spelled<T: serde::Serialize>(values: &[T]) -> Value {
        serde_json::to_value(values).expect("values serialise")
    }

    /// Each schema-only enum spells exactly the values of the queue-core enum it stands for.
    #[test]
    fn the_schema_enums_mirror_queue_core() {
        assert_eq!(
            listed::<SeatStatusSchema>(),
            spelled(&SeatStatus::ALL),
            "seat statuses"
        );
        assert_eq!(
            listed::<JobKindSchema>(),
            spelled(&JobKind::ALL),
            "job kinds"
        );
        let changes: Vec<&str> = ChangeKind::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            listed::<ChangeKindSchema>(),
            spelled(&changes),
            "seat changes"
        );
    }
}
