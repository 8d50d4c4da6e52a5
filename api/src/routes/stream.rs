//! `GET /events/{id}/stream`: an event's seats as Server-Sent Events. A snapshot first, then every
//! change; a client that reconnects with `Last-Event-ID` gets exactly the changes it missed.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use queue_core::{CatchUp, ChangeId, EventId, SeatChange, Store, UserId};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::dto::SeatChangeBody;
use crate::error::{ApiError, ErrorBody};
use crate::routes::parse_id;
use crate::snapshots::{Rendered, SnapshotError, Snapshots};
use crate::state::AppState;

/// A comment line this often. It keeps proxies from closing an idle stream, and it is how a
/// closed stream is noticed: actix does not read a connection while it streams an answer, so a
/// client that went away shows only when a write to it fails (the second after its close). At
/// 2 s a closed stream's place and memory come back within about 4 s; a 3-byte comment every
/// 2 s costs 10,000 streams 15 KB/s.
const KEEP_ALIVE: Duration = Duration::from_secs(2);
/// Changes read from Redis per call while catching up.
const CATCH_UP_PAGE: usize = 1000;
/// Messages queued for one client before its feed waits for it.
const CLIENT_QUEUE: usize = 64;

/// An event's seats, live, as Server-Sent Events.
///
/// The first message is `event: snapshot` with every seat; then one `event: seat` message per
/// change (held, refreshed, released, lapsed, reserved), each with an `id`. A client that
/// reconnects with the `Last-Event-ID` header (browsers' `EventSource` sends it by itself) gets
/// every change after that id exactly once and no new snapshot — unless the changes it missed
/// are no longer kept (about the last 10,000 per event), in which case a fresh `snapshot` comes
/// first. A comment line is sent every 2 s while nothing changes. A stream is ended after
/// STREAM_MAX_LIFETIME_SECS (15 minutes by default); the client resumes with `Last-Event-ID`
/// and misses nothing. One client address may have STREAMS_PER_CLIENT streams open (16).
///
/// The stream ends only when the event is deleted (within about a second), so Swagger UI's
/// "Try it out" keeps waiting: follow it with
/// `curl -N <url>`, an `EventSource`, or the seat map at `/`.
#[utoipa::path(get, path = "/events/{id}/stream", tag = "events",
    security((), ("bearer" = [])),
    params(
        ("X-User-Id" = Option<String>, Header, format = Uuid, nullable = false,
            description = "none mode: the asker's user id, to see it on the asker's own seats (everyone else sees `\"UUID\": \"\"`)"),
        ("id" = String, Path, description = "The event's id (a UUID)", example = "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4",
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
        ("Last-Event-ID" = Option<String>, Header, nullable = false, pattern = "^[0-9]{1,19}-[0-9]{1,19}$",
            description = "The `id` of the last message received, to resume after it (`<ms>-<seq>`, as sent in `id:`); leave it out to start with a snapshot"),
    ),
    responses(
        (status = 200, description = "The stream: `event: snapshot` (data: StreamSnapshot), then `event: seat` messages (data: SeatChangeBody)", content_type = "text/event-stream", body = crate::dto::StreamMessage),
        (status = 401, description = "jwt mode: no bearer token, or one that does not verify (`WWW-Authenticate` says why)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge"))),
        (status = 404, description = "No such event", body = ErrorBody),
        (status = 422, description = "A malformed id, `Last-Event-ID` or `X-User-Id`", body = ErrorBody),
        (status = 429, description = "This client address has STREAMS_PER_CLIENT streams open (`too_many_streams`, `limit`); close one, or retry after `Retry-After`", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "Redis is unavailable, or the service has as many streams open as it allows (`streams_full`); retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn stream(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let event: EventId = parse_id(&path, "id")?;
    let viewer = state.identity.viewer(req.headers())?;
    // A place first, before anything is read: a client over its share costs a lookup. The feed
    // holds it, and gives it back when it ends.
    // The client as the rate limits see it: the peer, or the address a trusted proxy forwards.
    let peer = req
        .peer_addr()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let client = match req.app_data::<web::Data<crate::rate_limit::RateLimiter>>() {
        Some(limiter) => limiter.client_address(peer, req.headers()),
        None => peer,
    };
    let slot = state.stream_slots.take(client)?;
    let resume = match req.headers().get("Last-Event-ID") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| invalid_last_event_id("is not text"))?
                .trim()
                .parse::<ChangeId>()
                .map_err(|e| invalid_last_event_id(&e.to_string()))?,
        ),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(CLIENT_QUEUE);
    // Reconnect after a second when the connection drops (EventSource's default is 3 s).
    let _ = tx.try_send(Bytes::from_static(b"retry: 1000\n\n"));
    let mut feed = Feed {
        store: state.store.clone(),
        snapshots: state.snapshots.clone(),
        event,
        tx,
        position: ChangeId::ZERO,
        viewer,
    };
    // The first read happens before the 200, so that an unknown event or a Redis outage is a
    // JSON error, not a broken stream.
    let first = match resume {
        None => Start::Snapshot,
        Some(after) => {
            feed.position = after;
            match state
                .store
                .changes_after(event, after, CATCH_UP_PAGE)
                .await?
            {
                None => {
                    return Err(ApiError::EventNotFound {
                        id: event.to_string(),
                    })
                }
                Some(CatchUp::Gap) => Start::Snapshot,
                Some(CatchUp::Changes(changes)) => Start::Changes(changes),
            }
        }
    };
    if matches!(first, Start::Snapshot) {
        let Some(snapshot) = feed.shared_snapshot(ChangeId::ZERO).await? else {
            return Err(ApiError::EventNotFound {
                id: event.to_string(),
            });
        };
        feed.position = snapshot.last;
        // The queue is new and has room.
        let _ = feed.tx.try_send(snapshot.shown_to(viewer));
    }
    let updates = state.changes.watch(event, feed.position);
    let stopping = state.stopping.clone();
    let until = tokio::time::Instant::now() + state.stream_lifetime;
    actix_web::rt::spawn(async move {
        let _slot = slot;
        if let Start::Changes(changes) = first {
            if feed.send_changes(&changes).await.is_err() {
                return;
            }
        }
        if let Err(e) = feed.run(updates, stopping, until).await {
            tracing::debug!(event = %feed.event, reason = %e, "seat feed ended");
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, actix_web::Error>(chunk), rx))
    });
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

fn invalid_last_event_id(why: &str) -> ApiError {
    ApiError::InvalidField {
        field: "Last-Event-ID".into(),
        message: format!("The Last-Event-ID header {why}"),
    }
}

enum Start {
    Snapshot,
    Changes(Vec<SeatChange>),
}

/// Why a feed stopped.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("the client went away")]
    ClientGone,
    #[error("the API is stopping")]
    Stopping,
    #[error("the event was deleted")]
    EventGone,
    #[error("the stream reached its lifetime")]
    Lifetime,
    #[error("{0}")]
    Redis(#[from] queue_core::Error),
    #[error("cannot encode a message: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<SnapshotError> for Ended {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::Store(e) => Self::Redis(e),
            SnapshotError::Encode(e) => Self::Encode(e),
        }
    }
}

/// One client's feed: what it has been sent up to, and where to send.
struct Feed {
    store: Store,
    snapshots: Arc<Snapshots>,
    event: EventId,
    tx: mpsc::Sender<Bytes>,
    /// The last change sent (or covered by the snapshot sent).
    position: ChangeId,
    /// Who asked: the only user whose id the feed shows (docs/CONTRACT.md §2, G9).
    viewer: Option<UserId>,
}

impl Feed {
    async fn run(
        &mut self,
        mut updates: tokio::sync::broadcast::Receiver<crate::changes::Changes>,
        stopping: CancellationToken,
        until: tokio::time::Instant,
    ) -> Result<(), Ended> {
        // Whatever changed between the snapshot (or the resume point) and the fan-out's first
        // batch comes from Redis; the fan-out's copies of it are skipped by id.
        self.catch_up().await?;
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.tick().await;
        let client = self.tx.clone();
        loop {
            tokio::select! {
                update = updates.recv() => match update {
                    Ok(changes) => self.send_changes(&changes).await?,
                    // Fell behind the fan-out: the changes are still in Redis.
                    Err(RecvError::Lagged(_)) => self.catch_up().await?,
                    // The hub let this event's watchers go: it was deleted.
                    Err(RecvError::Closed) => return Err(Ended::EventGone),
                },
                _ = keep_alive.tick() => self.send(Bytes::from_static(b":\n\n")).await?,
                () = stopping.cancelled() => return Err(Ended::Stopping),
                () = client.closed() => return Err(Ended::ClientGone),
                // The client resumes with `Last-Event-ID` and misses nothing.
                () = tokio::time::sleep_until(until) => return Err(Ended::Lifetime),
            }
        }
    }

    /// Sends every change after `position` that Redis still keeps, or a fresh snapshot when the
    /// ones this client needs are gone.
    async fn catch_up(&mut self) -> Result<(), Ended> {
        loop {
            let page = self
                .store
                .changes_after(self.event, self.position, CATCH_UP_PAGE)
                .await?;
            match page {
                // The event was deleted: nothing more will come.
                None => return Err(Ended::EventGone),
                Some(CatchUp::Gap) => {
                    let Some(snapshot) = self.shared_snapshot(self.position).await? else {
                        return Err(Ended::EventGone);
                    };
                    self.position = snapshot.last;
                    self.send(snapshot.shown_to(self.viewer)).await?;
                }
                Some(CatchUp::Changes(changes)) => {
                    let full = changes.len() == CATCH_UP_PAGE;
                    self.send_changes(&changes).await?;
                    if !full {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// The event's snapshot, shared with the streams opened with this one (see
    /// [`crate::snapshots`]), including every change up to `not_before`.
    async fn shared_snapshot(
        &self,
        not_before: ChangeId,
    ) -> Result<Option<Arc<Rendered>>, SnapshotError> {
        self.snapshots
            .get(&self.store, self.event, not_before)
            .await
    }

    /// Sends, in one chunk, the changes of `changes` after `position`.
    async fn send_changes(&mut self, changes: &[SeatChange]) -> Result<(), Ended> {
        let mut chunk = Vec::new();
        let after = self.position;
        for change in changes.iter().filter(|c| c.id > after) {
            chunk.extend_from_slice(&message(
                "seat",
                change.id,
                &SeatChangeBody::shown_to(change, self.viewer),
            )?);
            self.position = change.id;
        }
        if chunk.is_empty() {
            return Ok(());
        }
        self.send(Bytes::from(chunk)).await
    }

    async fn send(&self, chunk: Bytes) -> Result<(), Ended> {
        self.tx.send(chunk).await.map_err(|_| Ended::ClientGone)
    }
}

/// One SSE message. JSON has no raw newline, so `data` is one line.
fn message(kind: &str, id: ChangeId, data: &impl Serialize) -> Result<Bytes, serde_json::Error> {
    let data = serde_json::to_string(data)?;
    Ok(Bytes::from(format!(
        "event: {kind}\nid: {id}\ndata: {data}\n\n"
    )))
}
