//! The snapshots that open seat streams, read and rendered once and shared.
//!
//! A stream starts with every seat of its event: for 10,000 seats one Redis read of 40 KB and
//! about 1 MB of JSON to render. Rendered for each opening, a few clients reopening streams in a
//! loop kept the API's cores and Redis busy for everyone. Here one rendering, made for an
//! anonymous viewer, serves every stream opened on the event within [`SHARE_FOR`]; openers who
//! arrive while it is being made wait for it instead of making their own. A viewer who holds or
//! reserved seats gets a copy with their id written into those seats' `UUID`: a copy of bytes,
//! not a rendering.
//!
//! A shared snapshot may be up to [`SHARE_FOR`] old. That changes nothing a client sees but its
//! age: the snapshot carries the id of its last change, and the stream goes on from there with
//! every later change, read from Redis, exactly as after a fresh one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use queue_core::{ChangeId, EventId, Snapshot, Store, UserId};

use crate::dto::StreamSnapshot;

/// How long one rendering is handed to new streams. Short, so that the changes a new stream
/// catches up on after it stay few even during an on-sale; long enough that openers in a loop
/// cost the event at most a handful of renderings a second.
pub const SHARE_FOR: Duration = Duration::from_millis(200);
/// Renderings kept before the old ones are dropped (each may be a megabyte).
const PRUNE_ABOVE: usize = 32;

/// One event's snapshot, rendered as the stream's first message.
#[derive(Debug)]
pub struct Rendered {
    /// The id of the last change the snapshot includes: the stream continues after it.
    pub last: ChangeId,
    taken: Instant,
    /// The whole `event: snapshot` message as a viewer who holds no seat gets it.
    anonymous: Bytes,
    /// Every seat that has a holder or reserver, in seat order: where its `"UUID":""` is empty
    /// in `anonymous` (the offset of the closing quote), and the user.
    users: Vec<(usize, UserId)>,
}

/// Why a snapshot could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}")]
    Store(#[from] queue_core::Error),
    #[error("cannot encode the snapshot: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<SnapshotError> for crate::error::ApiError {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::Store(e) => e.into(),
            SnapshotError::Encode(e) => Self::Encoding {
                what: "the stream's snapshot",
                reason: e.into(),
            },
        }
    }
}

impl Rendered {
    /// Renders `snapshot` as `event: snapshot` message, noting where each seat's user goes.
    pub fn new(snapshot: &Snapshot) -> Result<Self, serde_json::Error> {
        let shown = StreamSnapshot::shown_to(snapshot, None);
        let mut data = Vec::with_capacity(64 + shown.seats.len() * 100);
        data.extend_from_slice(
            format!("event: snapshot\nid: {}\ndata: ", snapshot.last).as_bytes(),
        );
        data.extend_from_slice(br#"{"event":"#);
        serde_json::to_writer(&mut data, &shown.event)?;
        data.extend_from_slice(br#","seats":["#);
        let mut users = Vec::new();
        for (i, (seat, state)) in shown.seats.iter().zip(&snapshot.seats).enumerate() {
            if i > 0 {
                data.push(b',');
            }
            let start = data.len();
            serde_json::to_writer(&mut data, seat)?;
            if let Some(user) = state.user() {
                // Neither the seat's id nor its status can contain this, so it is the UUID field.
                const EMPTY_USER: &[u8] = br#""UUID":"""#;
                if let Some(at) = data[start..]
                    .windows(EMPTY_USER.len())
                    .position(|w| w == EMPTY_USER)
                {
                    users.push((start + at + EMPTY_USER.len() - 1, user));
                }
            }
        }
        data.extend_from_slice(b"]}\n\n");
        Ok(Self {
            last: snapshot.last,
            taken: Instant::now(),
            anonymous: Bytes::from(data),
            users,
        })
    }

    /// The message as `viewer` may see it: their own seats show their id, no other seat shows
    /// anyone's (docs/CONTRACT.md §2, G9). The same bytes as rendering
    /// [`StreamSnapshot::shown_to`] for that viewer.
    pub fn shown_to(&self, viewer: Option<UserId>) -> Bytes {
        let Some(viewer) = viewer else {
            return self.anonymous.clone();
        };
        let mut mine = self
            .users
            .iter()
            .filter(|(_, user)| *user == viewer)
            .map(|(at, _)| *at)
            .peekable();
        if mine.peek().is_none() {
            return self.anonymous.clone();
        }
        let id = viewer.to_string();
        let mut out = Vec::with_capacity(self.anonymous.len() + 64 * id.len());
        let mut from = 0;
        for at in mine {
            out.extend_from_slice(&self.anonymous[from..at]);
            out.extend_from_slice(id.as_bytes());
            from = at;
        }
        out.extend_from_slice(&self.anonymous[from..]);
        Bytes::from(out)
    }

    fn fresh(&self) -> bool {
        self.taken.elapsed() < SHARE_FOR
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Rendered>>>>;

/// The renderings shared now, one per event.
#[derive(Debug, Default)]
pub struct Snapshots {
    events: Mutex<HashMap<EventId, Slot>>,
}

impl Snapshots {
    /// The event's snapshot, rendered at most [`SHARE_FOR`] ago and including at least every
    /// change up to `not_before`; `None` when there is no such event.
    pub async fn get(
        &self,
        store: &Store,
        event: EventId,
        not_before: ChangeId,
    ) -> Result<Option<Arc<Rendered>>, SnapshotError> {
        let slot = self.slot(event);
        // Openers that arrive while it is being made wait here for it.
        let mut shared = slot.lock().await;
        if let Some(rendered) = shared.as_ref() {
            if rendered.fresh() && rendered.last >= not_before {
                return Ok(Some(rendered.clone()));
            }
        }
        let Some(snapshot) = store.snapshot(event).await? else {
            *shared = None;
            return Ok(None);
        };
        let rendered = Arc::new(Rendered::new(&snapshot)?);
        *shared = Some(rendered.clone());
        Ok(Some(rendered))
    }

    fn slot(&self, event: EventId) -> Slot {
        let Ok(mut events) = self.events.lock() else {
            // A poisoned lock only means a panic elsewhere: this opener renders for itself.
            return Slot::default();
        };
        if events.len() > PRUNE_ABOVE {
            // Keep those in use, and the fresh ones.
            events.retain(|_, slot| {
                slot.try_lock()
                    .map_or(true, |shared| shared.as_ref().is_some_and(|r| r.fresh()))
            });
        }
        events.entry(event).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use queue_core::{Event, SeatState};

    fn user(n: u8) -> UserId {
        UserId::from_bytes([n; 16])
    }

    fn snapshot() -> Snapshot {
        let event = Event {
            id: EventId::new_random(),
            name: "a \"quoted\" name: \"UUID\":\"\"".into(),
            total_seats: 6,
            available: 2,
            on_hold: 2,
            reserved: 2,
            ends_at: None,
        };
        let seats = vec![
            SeatState::Available,
            SeatState::OnHold {
                holder: user(1),
                expires_at: 1_800_000_000_000,
                since: 1_799_999_999_000,
            },
            SeatState::Reserved { by: user(2) },
            SeatState::OnHold {
                holder: user(2),
                expires_at: 1_800_000_000_500,
                since: 1_799_999_999_000,
            },
            SeatState::Available,
            SeatState::Reserved { by: user(1) },
        ];
        Snapshot {
            event,
            seats,
            last: "1700000000000-3".parse().expect("an id"),
        }
    }

    /// What the stream sent before renderings were shared: one rendering per viewer.
    fn rendered_for(snapshot: &Snapshot, viewer: Option<UserId>) -> String {
        format!(
            "event: snapshot\nid: {}\ndata: {}\n\n",
            snapshot.last,
            serde_json::to_string(&StreamSnapshot::shown_to(snapshot, viewer)).expect("encodes")
        )
    }

    #[test]
    fn each_viewer_gets_the_bytes_of_a_rendering_of_its_own() {
        let snapshot = snapshot();
        let rendered = Rendered::new(&snapshot).expect("renders");
        for viewer in [None, Some(user(1)), Some(user(2)), Some(user(3))] {
            let shown = rendered.shown_to(viewer);
            assert_eq!(
                std::str::from_utf8(&shown).expect("text"),
                rendered_for(&snapshot, viewer),
                "as seen by {viewer:?}"
            );
        }
        let mine = rendered.shown_to(Some(user(1)));
        assert_eq!(
            std::str::from_utf8(&mine)
                .expect("text")
                .matches(&user(1).to_string())
                .count(),
            2,
            "user 1 sees its hold and its reservation"
        );
        assert!(!std::str::from_utf8(&mine)
            .expect("text")
            .contains(&user(2).to_string()));
    }
}
