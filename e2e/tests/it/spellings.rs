//! Every word the service spells in a status (a seat's status, a job's type and status, a seat
//! change) comes from one enum of queue-core, and each place that spells it again is tied to that
//! enum here: queue-core's own serde, the API's schema enums, the OpenAPI document (generated and
//! committed) and the API's job status body, and the typed client's parsers (loadgen, which
//! depends on neither). For each variant both sides spell it alike, and neither side has a word
//! the other lacks. (The Lua scripts' letters are tied in queue-core, by
//! `lua_status_literals_are_seat_statuses`.)

use std::collections::BTreeSet;
use std::fmt::Debug;

use api::dto::{ChangeKindSchema, JobKindSchema, JobStatusBody, SeatStatusSchema};
use loadgen::api as client;
use queue_core::{ChangeKind, EventId, JobId, JobKind, JobState, JobStatus, JobView, SeatStatus};
use serde::Serialize;
use serde_json::Value;

/// How `value` serialises, as a JSON string.
fn serialised(value: &impl Serialize) -> String {
    match serde_json::to_value(value).expect("serialises") {
        Value::String(text) => text,
        other => panic!("serialises as a string, not {other}"),
    }
}

/// The words of a list, each once.
fn set<'a>(words: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let words: Vec<String> = words.into_iter().map(str::to_owned).collect();
    let set: BTreeSet<String> = words.iter().cloned().collect();
    assert_eq!(set.len(), words.len(), "a word twice in {words:?}");
    set
}

/// The OpenAPI document as the API generates it and as it is committed.
fn documents() -> [(&'static str, Value); 2] {
    let generated = serde_json::from_str(&api::openapi::document()).expect("the document is JSON");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
            .expect("docs/openapi.json is committed");
    let committed = serde_json::from_str(&committed).expect("docs/openapi.json is JSON");
    [("generated", generated), ("docs/openapi.json", committed)]
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "the document has a schema {name}");
    schema
}

/// The `enum` of a schema.
fn enum_of(doc: &Value, name: &str) -> BTreeSet<String> {
    let words = schema(doc, name)["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} has an enum"));
    set(words.iter().map(|w| w.as_str().expect("a string")))
}

/// Asserts that `property` of schema `owner` refers to schema `name` (itself, or as one of a
/// `oneOf` when it may be null).
fn assert_refers(doc: &Value, owner: &str, property: &str, name: &str) {
    let wanted = format!("#/components/schemas/{name}");
    let value = &schema(doc, owner)["properties"][property];
    let refs: Vec<&Value> = std::iter::once(&value["$ref"])
        .chain(
            value["oneOf"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| &v["$ref"]),
        )
        .collect();
    assert!(
        refs.iter().any(|r| **r == wanted),
        "{owner}.{property} is a {name}: {value}"
    );
}

/// Asserts that the typed client reads exactly the words of `all` (spelled by `spell`), each as
/// the variant `to_client` names, and has no word of its own.
fn assert_client_reads<T: Copy + Debug, C: Copy + Debug + PartialEq>(
    all: &[T],
    spell: fn(T) -> &'static str,
    to_client: fn(T) -> C,
    client_all: &[C],
    client_spell: fn(C) -> &'static str,
    client_parse: fn(&str) -> Option<C>,
) {
    for &variant in all {
        let text = spell(variant);
        assert_eq!(
            client_parse(text),
            Some(to_client(variant)),
            "the client reads {text:?} as {variant:?}"
        );
        assert_eq!(client_spell(to_client(variant)), text, "{variant:?}");
    }
    assert_eq!(
        set(client_all.iter().map(|&c| client_spell(c))),
        set(all.iter().map(|&v| spell(v))),
        "the client's words are the service's"
    );
}

#[test]
fn seat_statuses_are_spelled_alike_everywhere() {
    let schema_of = |s: SeatStatus| match s {
        SeatStatus::Available => SeatStatusSchema::Available,
        SeatStatus::OnHold => SeatStatusSchema::OnHold,
        SeatStatus::Reserved => SeatStatusSchema::Reserved,
    };
    for status in SeatStatus::ALL {
        assert_eq!(serialised(&status), status.as_str(), "queue-core's serde");
        assert_eq!(
            serialised(&schema_of(status)),
            status.as_str(),
            "the schema"
        );
        assert_eq!(status.to_string(), status.as_str(), "Display");
    }
    let words = set(SeatStatus::ALL.map(SeatStatus::as_str));
    for (which, doc) in documents() {
        assert_eq!(enum_of(&doc, "SeatStatusSchema"), words, "{which}");
        for (owner, property) in [
            ("SeatBody", "status"),
            ("StreamSeat", "status"),
            ("SeatChangeBody", "status"),
            ("JobResultBody", "currentStatus"),
            ("ErrorBody", "currentStatus"),
        ] {
            assert_refers(&doc, owner, property, "SeatStatusSchema");
        }
    }
    assert_client_reads(
        &SeatStatus::ALL,
        SeatStatus::as_str,
        |s| match s {
            SeatStatus::Available => client::SeatStatus::Available,
            SeatStatus::OnHold => client::SeatStatus::OnHold,
            SeatStatus::Reserved => client::SeatStatus::Reserved,
        },
        &client::SeatStatus::ALL,
        client::SeatStatus::as_str,
        client::SeatStatus::parse,
    );
}

#[test]
fn job_kinds_are_spelled_alike_everywhere() {
    let schema_of = |k: JobKind| match k {
        JobKind::Hold => JobKindSchema::Hold,
        JobKind::Reserve => JobKindSchema::Reserve,
    };
    for kind in JobKind::ALL {
        assert_eq!(serialised(&kind), kind.as_str(), "queue-core's serde");
        assert_eq!(serialised(&schema_of(kind)), kind.as_str(), "the schema");
    }
    let words = set(JobKind::ALL.map(JobKind::as_str));
    for (which, doc) in documents() {
        assert_eq!(enum_of(&doc, "JobKindSchema"), words, "{which}");
        assert_refers(&doc, "JobStatusBody", "type", "JobKindSchema");
    }
    assert_client_reads(
        &JobKind::ALL,
        JobKind::as_str,
        |k| match k {
            JobKind::Hold => client::JobKind::Hold,
            JobKind::Reserve => client::JobKind::Reserve,
        },
        &client::JobKind::ALL,
        client::JobKind::as_str,
        client::JobKind::parse,
    );
}

/// A job in each state the service knows, and the status body the API makes of it.
fn job_in_every_state() -> Vec<(JobState, Value)> {
    let id = JobId::new(EventId::new_random(), 7).expect("a sequence number from 1");
    let states = vec![
        JobState::Waiting { position: 3 },
        JobState::Active,
        JobState::Completed {
            completed_at: 2,
            result: Ok(()),
            seat: None,
        },
        JobState::Retrying {
            attempts: 1,
            retry_at: 3,
            reason: "a test".to_owned(),
        },
        JobState::Failed {
            completed_at: 4,
            reason: "a test".to_owned(),
        },
    ];
    for state in &states {
        // No wildcard: a new state does not compile until it is listed above.
        match state {
            JobState::Waiting { .. }
            | JobState::Active
            | JobState::Completed { .. }
            | JobState::Retrying { .. }
            | JobState::Failed { .. } => {}
        }
    }
    states
        .into_iter()
        .map(|state| {
            let view = JobView {
                id,
                kind: Some(JobKind::Hold),
                created_at: 1,
                state: state.clone(),
            };
            let body = serde_json::to_value(JobStatusBody::from(&view)).expect("serialises");
            (state, body)
        })
        .collect()
}

#[test]
fn job_statuses_are_spelled_alike_everywhere() {
    for status in JobStatus::ALL {
        assert_eq!(serialised(&status), status.as_str(), "queue-core's serde");
    }
    let words = set(JobStatus::ALL.map(JobStatus::as_str));
    // The API's body spells each state's status as queue-core does, and shows every status; the
    // client takes the same ones for finished.
    let mut shown = BTreeSet::new();
    for (state, body) in job_in_every_state() {
        let status = state.status().as_str();
        assert_eq!(body["status"].as_str(), Some(status), "{state:?}: {body}");
        assert_eq!(
            client::JobStatus::parse(status).map(client::JobStatus::is_finished),
            Some(state.is_finished()),
            "{state:?}"
        );
        shown.insert(status.to_owned());
    }
    assert_eq!(shown, words, "every status is some state's");
    // The document allows exactly those words: `^(waiting|active|...)$`.
    for (which, doc) in documents() {
        let pattern = schema(&doc, "JobStatusBody")["properties"]["status"]["pattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{which}: JobStatusBody.status has a pattern"));
        let alternatives = pattern
            .strip_prefix("^(")
            .and_then(|p| p.strip_suffix(")$"))
            .unwrap_or_else(|| panic!("{which}: a pattern `^(a|b|...)$`, not {pattern:?}"));
        assert_eq!(set(alternatives.split('|')), words, "{which}: {pattern}");
    }
    assert_client_reads(
        &JobStatus::ALL,
        JobStatus::as_str,
        |s| match s {
            JobStatus::Waiting => client::JobStatus::Waiting,
            JobStatus::Active => client::JobStatus::Active,
            JobStatus::Completed => client::JobStatus::Completed,
            JobStatus::Failed => client::JobStatus::Failed,
        },
        &client::JobStatus::ALL,
        client::JobStatus::as_str,
        client::JobStatus::parse,
    );
}

#[test]
fn change_kinds_are_spelled_alike_everywhere() {
    let schema_of = |k: ChangeKind| match k {
        ChangeKind::Held => ChangeKindSchema::Held,
        ChangeKind::Refreshed => ChangeKindSchema::Refreshed,
        ChangeKind::Released => ChangeKindSchema::Released,
        ChangeKind::Lapsed => ChangeKindSchema::Lapsed,
        ChangeKind::Reserved => ChangeKindSchema::Reserved,
    };
    for kind in ChangeKind::ALL {
        assert_eq!(serialised(&schema_of(kind)), kind.as_str(), "the schema");
    }
    let words = set(ChangeKind::ALL.map(ChangeKind::as_str));
    for (which, doc) in documents() {
        assert_eq!(enum_of(&doc, "ChangeKindSchema"), words, "{which}");
        assert_refers(&doc, "SeatChangeBody", "change", "ChangeKindSchema");
    }
}
