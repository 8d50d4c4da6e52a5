//! The messages of `GET /events/{id}/stream` (Server-Sent Events), and their OpenAPI schema.

use queue_core::{SeatId, SeatStatus, UserId};
use serde::Serialize;
use utoipa::ToSchema;

use super::responses::{rfc3339, shown_user, EventBody};
use super::schema::{ChangeKindSchema, SeatStatusSchema, EXAMPLE_SEAT, EXAMPLE_USER};

/// A seat as the stream's snapshot shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": EXAMPLE_SEAT, "number": 7, "status": "On hold",
    "UUID": EXAMPLE_USER, "expiresAt": "2026-11-21T18:00:00.000Z"}))]
pub struct StreamSeat {
    pub id: String,
    pub number: u32,
    #[schema(value_type = SeatStatusSchema)]
    pub status: SeatStatus,
    /// The holder's or reserver's id when the stream's asker is that user, else `""`.
    #[serde(rename = "UUID")]
    pub user: String,
    /// When the hold lapses (RFC 3339), while On hold.
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// The first message of `GET /events/{id}/stream` (`event: snapshot`): the event with its counts
/// and every seat, in seat-number order. Its SSE `id` is that of the last change before it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamSnapshot {
    pub event: EventBody,
    pub seats: Vec<StreamSeat>,
}

impl StreamSnapshot {
    /// The snapshot as `viewer` may see it (see [`shown_user`]).
    pub fn shown_to(snapshot: &queue_core::Snapshot, viewer: Option<UserId>) -> Self {
        let event = snapshot.event.id;
        let seats = (1..)
            .zip(&snapshot.seats)
            .map(|(number, state)| StreamSeat {
                id: SeatId::new(event, number)
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                number,
                status: state.status(),
                user: shown_user(state.user(), viewer),
                expires_at: state.expires_at().map(rfc3339),
            })
            .collect();
        Self {
            event: EventBody::with_counts(&snapshot.event),
            seats,
        }
    }
}

/// One change to one seat (`event: seat` of `GET /events/{id}/stream`); its SSE `id` is what a
/// reconnecting client sends back as `Last-Event-ID`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"seat": EXAMPLE_SEAT, "number": 7, "change": "held",
    "status": "On hold", "UUID": EXAMPLE_USER, "expiresAt": "2026-11-21T18:01:00.000Z",
    "at": "2026-11-21T18:00:00.000Z"}))]
pub struct SeatChangeBody {
    pub seat: String,
    pub number: u32,
    #[schema(value_type = ChangeKindSchema)]
    pub change: &'static str,
    /// The seat's status after the change.
    #[schema(value_type = SeatStatusSchema)]
    pub status: SeatStatus,
    /// The user concerned (the new holder or reserver; for `released` and `lapsed`, the former
    /// holder) when the stream's asker is that user, else `""`.
    #[serde(rename = "UUID")]
    pub user: String,
    /// When the hold lapses, after `held` and `refreshed`.
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// When the change took effect (for `lapsed`, the hold's deadline).
    pub at: String,
}

impl SeatChangeBody {
    /// The change as `viewer` may see it (see [`shown_user`]).
    pub fn shown_to(change: &queue_core::SeatChange, viewer: Option<UserId>) -> Self {
        Self {
            seat: change.seat.to_string(),
            number: change.seat.number(),
            change: change.kind.as_str(),
            status: change.kind.status(),
            user: shown_user(Some(change.user), viewer),
            expires_at: change.expires_at().map(rfc3339),
            at: rfc3339(change.at()),
        }
    }
}

/// One message of `GET /events/{id}/stream` as schemathesis and OpenAPI 3.2 (`itemSchema`) read
/// a `text/event-stream`: `event` names it, `id` is what a reconnecting client sends back as
/// `Last-Event-ID`, and `data` is one line of JSON — a [`StreamSnapshot`] for `snapshot`, a
/// [`SeatChangeBody`] for `seat`. (The `retry:` line and `: keep-alive` comments carry no data
/// and are not messages.) Written by hand: the derive cannot express `contentSchema`.
#[derive(Debug)]
pub struct StreamMessage;

/// The `id:` of a stream message: `<milliseconds>-<sequence>` (a Redis Stream entry id).
pub const CHANGE_ID_PATTERN: &str = "^[0-9]{1,19}-[0-9]{1,19}$";

impl utoipa::PartialSchema for StreamMessage {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        use utoipa::openapi::Ref;
        let message = |event: &str, data: &str| {
            ObjectBuilder::new()
                .property(
                    "event",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([event])),
                )
                .required("event")
                .property(
                    "id",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(CHANGE_ID_PATTERN)),
                )
                .required("id")
                .property(
                    "data",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .content_media_type("application/json")
                        .content_schema(Some(Ref::from_schema_name(data))),
                )
                .required("data")
                .property(
                    "retry",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
        };
        OneOfBuilder::new()
            .item(message("snapshot", "StreamSnapshot"))
            .item(message("seat", "SeatChangeBody"))
            .description(Some(
                "One Server-Sent Events message: `data` is JSON, a StreamSnapshot for \
                 `event: snapshot`, a SeatChangeBody for `event: seat`",
            ))
            .into()
    }
}

impl ToSchema for StreamMessage {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((StreamSnapshot::name().into(), StreamSnapshot::schema()));
        StreamSnapshot::schemas(schemas);
        schemas.push((SeatChangeBody::name().into(), SeatChangeBody::schema()));
        SeatChangeBody::schemas(schemas);
    }
}

#[cfg(test)]
mod stream_message_tests {
    use super::*;
    use utoipa::PartialSchema;

    #[test]
    fn each_stream_message_names_the_schema_of_its_data() {
        let schema = serde_json::to_value(StreamMessage::schema()).expect("a schema serialises");
        let variants = schema["oneOf"]
            .as_array()
            .expect("one variant per kind of message");
        let kinds: Vec<(&Value, &Value)> = variants
            .iter()
            .map(|v| {
                (
                    &v["properties"]["event"]["enum"][0],
                    &v["properties"]["data"]["contentSchema"]["$ref"],
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    &Value::from("snapshot"),
                    &Value::from("#/components/schemas/StreamSnapshot")
                ),
                (
                    &Value::from("seat"),
                    &Value::from("#/components/schemas/SeatChangeBody")
                ),
            ]
        );
    }

    use serde_json::Value;
}
