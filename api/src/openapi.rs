//! The OpenAPI document, generated from the handlers' and types' annotations. It is served at
//! `/api-docs/openapi.json` with Swagger UI at `/swagger-ui/`, and committed as
//! `docs/openapi.json` (a test fails when the two differ; `UPDATE_OPENAPI=1` rewrites the file).

use utoipa::OpenApi;

use crate::dto::{
    ChangeKindSchema, CreateEvent, EventBody, EventList, JobKindSchema, JobResultBody,
    JobStatusBody, QueueResponse, SeatBody, SeatChangeBody, SeatList, SeatMessage, SeatRequest,
    SeatStatusSchema, StreamSeat, StreamSnapshot,
};
use crate::error::ErrorBody;
use crate::routes::{events, health, jobs, metrics, seats, stream};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Seat reservation service",
        description = "Hold seats for a short time, then reserve them. Holds and reserves are \
            jobs: the answer is `202 Accepted` with a job to poll at `statusEndpoint`; jobs on one \
            event take effect in the order they were accepted. Every error is JSON: \
            `{\"error\": \"…\", \"code\": \"…\"}`, plus `field`, `currentStatus` or `limit` where useful. \
            To try it here: create an event with `POST /events/create`, then use its `id` in place \
            of the example ids; a seat id is `<event id>:<seat number>`.",
        version = "0.1.0",
    ),
    paths(
        events::create, events::list, events::get, events::delete, stream::stream,
        events::list_seats,
        seats::get, seats::hold, seats::reserve, seats::refresh, seats::hold_refresh, seats::release,
        jobs::status,
        health::health, metrics::metrics,
    ),
    components(schemas(
        CreateEvent, SeatRequest, EventBody, SeatBody, SeatList, SeatMessage, QueueResponse,
        JobStatusBody, JobResultBody, SeatStatusSchema, JobKindSchema, ErrorBody, health::Health,
        EventList, StreamSnapshot, StreamSeat, SeatChangeBody, ChangeKindSchema,
    )),
    modifiers(&BearerScheme, &RateLimited),
    tags(
        (name = "events", description = "Create, read and delete events"),
        (name = "seats", description = "Read, hold, reserve, refresh and release seats"),
        (name = "jobs", description = "Follow a hold or reserve job"),
        (name = "service", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme: a JWT in jwt mode (docs/CONTRACT.md §2), or ADMIN_TOKEN for an
/// admin operation in none mode. Swagger UI's "Authorize" fills it in.
#[derive(Debug)]
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "jwt mode (AUTH_MODE=jwt): a JWT whose `sub` is the user; an admin's \
                         carries `role: \"admin\"`. none mode: only admin operations take one, \
                         ADMIN_TOKEN.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The 429 of the rate limits (`rate_limit.rs`), on every operation: each one is limited (G10).
#[derive(Debug)]
struct RateLimited;

impl utoipa::Modify for RateLimited {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            schema::{ObjectBuilder, Type},
            ContentBuilder, HeaderBuilder, Ref, ResponseBuilder,
        };
        let header = |schema: Type, description: &str| {
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(schema)))
                .description(Some(description))
                .build()
        };
        let response = ResponseBuilder::new()
            .description(
                "Rate limited: this client (its address, or in jwt mode its user) sent more \
                 requests of this kind than its limit admits (`rate_limited`); nothing was done. \
                 Retry after `Retry-After` seconds.",
            )
            .header("Retry-After", header(Type::Integer, "Seconds to wait"))
            .header(
                "RateLimit-Policy",
                header(
                    Type::String,
                    "The limit (draft-ietf-httpapi-ratelimit-headers): \
                     `\"<class>\";q=<burst>;w=<seconds to refill it>`",
                ),
            )
            .header(
                "RateLimit",
                header(
                    Type::String,
                    "What is left: `\"<class>\";r=0;t=<seconds until one more is admitted>`",
                ),
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .insert("429".to_owned(), response.clone().into());
            }
        }
    }
}

/// The document as committed under `docs/`.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .map(|mut json| {
            json.push('\n');
            json
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn the_committed_document_is_the_generated_one() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        let generated = super::document();
        assert!(generated.len() > 1000, "the document was generated");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("docs/openapi.json is writable");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json differs from what the code generates; run \
             `UPDATE_OPENAPI=1 cargo test -p api openapi` and commit the file"
        );
    }
}
