//! The JSON shapes of docs/CONTRACT.md §2, and their conversion from queue-core types: request
//! bodies, response bodies, the stream's messages, and what exists only for the OpenAPI schema.

mod requests;
mod responses;
mod schema;
mod stream;

pub use requests::{CreateEvent, SeatRequest};
pub use responses::{
    rfc3339, EventBody, EventList, JobResultBody, JobStatusBody, QueueResponse, SeatBody, SeatList,
    SeatMessage,
};
pub use schema::{
    ChangeKindSchema, JobKindSchema, SeatStatusSchema, EXAMPLE_EVENT, EXAMPLE_JOB, EXAMPLE_SEAT,
    EXAMPLE_USER,
};
pub use stream::{SeatChangeBody, StreamMessage, StreamSeat, StreamSnapshot, CHANGE_ID_PATTERN};
