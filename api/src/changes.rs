//! The live seat feeds (`GET /events/{id}/stream`). One task per API process reads the changes
//! streams of every event someone is watching, with one blocking XREAD on a connection of its own,
//! and fans each batch out to that event's watchers; no watcher reads Redis in a loop. On a Redis
//! Cluster one XREAD cannot name streams of several slots: the task then reads every slot's
//! streams at once without blocking ([`Store::poll_new`]), every [`CLUSTER_POLL`] while nothing
//! comes, and at once again after a read that brought changes. A watcher
//! catches up from Redis by itself (after its snapshot or `Last-Event-ID`, and whenever it falls
//! behind the fan-out) and skips what it has already sent, so it sends every change exactly once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use queue_core::{ChangeId, EventId, SeatChange, Store};
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

/// A batch of changes to one event, oldest first.
pub type Changes = Arc<[SeatChange]>;

/// How long one XREAD waits for news; a newly watched event joins the read after at most this.
const BLOCK_MS: u64 = 200;
/// On a cluster, the pause after a round of reads that found nothing: what a change may wait
/// before it is fanned out, against a round of XREADs (one per watched slot) per pause.
const CLUSTER_POLL: Duration = Duration::from_millis(50);
/// Most changes read per event per XREAD.
const READ_COUNT: u64 = 1000;
/// Batches a slow watcher may fall behind before it catches up from Redis instead.
const FAN_OUT_DEPTH: usize = 256;
/// How often the watched events are checked for a deletion (by any API process): a deleted
/// event's watchers are let go, so their streams end within about this long.
const GONE_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct ChangeHub {
    watched: Mutex<HashMap<EventId, Watch>>,
    first_watch: Notify,
}

#[derive(Debug)]
struct Watch {
    tx: broadcast::Sender<Changes>,
    /// The last change read for this event.
    cursor: ChangeId,
}

impl ChangeHub {
    /// Subscribes to the changes of `event` read from now on. `seen` is the last change the
    /// caller has (or will have read itself): when the event is not watched yet, reading starts
    /// right after it, so nothing falls between the caller's own read and the fan-out.
    pub fn watch(&self, event: EventId, seen: ChangeId) -> broadcast::Receiver<Changes> {
        let Ok(mut watched) = self.watched.lock() else {
            // A poisoned lock only means another watcher panicked; this watcher then gets what
            // it caught up from Redis and keep-alives, and no live changes.
            return broadcast::channel(1).1;
        };
        let rx = match watched.get(&event) {
            Some(watch) => watch.tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(FAN_OUT_DEPTH);
                watched.insert(event, Watch { tx, cursor: seen });
                rx
            }
        };
        self.first_watch.notify_one();
        rx
    }

    /// Lets the watchers of `event` go (it was deleted): their feeds end, and with them their
    /// streams.
    pub fn forget(&self, event: EventId) {
        if let Ok(mut watched) = self.watched.lock() {
            watched.remove(&event);
        }
    }

    /// The events watched now with their cursors; forgets events nobody watches any more.
    fn cursors(&self) -> Vec<(EventId, ChangeId)> {
        let Ok(mut watched) = self.watched.lock() else {
            return Vec::new();
        };
        watched.retain(|_, watch| watch.tx.receiver_count() > 0);
        watched.iter().map(|(id, w)| (*id, w.cursor)).collect()
    }

    fn publish(&self, changes: Vec<SeatChange>) {
        let Ok(mut watched) = self.watched.lock() else {
            return;
        };
        let mut by_event: HashMap<EventId, Vec<SeatChange>> = HashMap::new();
        for change in changes {
            by_event
                .entry(change.seat.event())
                .or_default()
                .push(change);
        }
        for (event, changes) in by_event {
            if let (Some(watch), Some(last)) = (watched.get_mut(&event), changes.last()) {
                watch.cursor = watch.cursor.max(last.id);
                // No receiver left is not an error: the next round forgets the event.
                let _ = watch.tx.send(changes.into());
            }
        }
    }

    /// Fans out what a read brought, and says once when reads start or stop failing (a failed
    /// read pauses before the next). The number of changes read; `None` when the read failed.
    async fn take(
        &self,
        read: queue_core::Result<Vec<SeatChange>>,
        failing: &mut bool,
        shutdown: &CancellationToken,
    ) -> Option<usize> {
        match read {
            Ok(changes) => {
                if std::mem::take(failing) {
                    tracing::info!("the seat feeds read Redis again");
                }
                let read = changes.len();
                if read > 0 {
                    self.publish(changes);
                }
                Some(read)
            }
            Err(e) => {
                if !std::mem::replace(failing, true) {
                    tracing::warn!(error = %e, "cannot read the seat feeds; retrying");
                }
                pause(shutdown).await;
                None
            }
        }
    }

    /// Reads and fans out changes until `shutdown`.
    pub async fn run(&self, store: &Store, shutdown: CancellationToken) {
        let mut client = None;
        let mut failing = false;
        let mut checked = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            if checked.elapsed() >= GONE_CHECK {
                checked = tokio::time::Instant::now();
                self.forget_deleted(store).await;
            }
            let cursors = self.cursors();
            if cursors.is_empty() {
                tokio::select! {
                    () = self.first_watch.notified() => {}
                    () = shutdown.cancelled() => break,
                }
                continue;
            }
            if store.clustered() {
                let read = store.poll_new(&cursors, READ_COUNT).await;
                if self.take(read, &mut failing, &shutdown).await == Some(0) {
                    // Nothing came (the reads do not block on a cluster): wait a little.
                    tokio::select! {
                        () = tokio::time::sleep(CLUSTER_POLL) => {}
                        () = shutdown.cancelled() => break,
                    }
                }
                continue;
            }
            let reader = match &client {
                Some(c) => c,
                None => match store.dedicated_client().await {
                    Ok(c) => client.insert(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "no connection for the seat feeds; retrying");
                        pause(&shutdown).await;
                        continue;
                    }
                },
            };
            // The reader's connection has no command timeout (XREAD blocks): a half-open
            // connection would stall every feed, so a read that overruns its block is dropped
            // with its connection.
            let limit = Duration::from_millis(BLOCK_MS + 2_000);
            let read = tokio::select! {
                read = tokio::time::timeout(limit, store.read_new(reader, &cursors, READ_COUNT, BLOCK_MS)) => read,
                () = shutdown.cancelled() => break,
            };
            let Ok(read) = read else {
                tracing::warn!("a seat-feed read overran its block; reconnecting");
                client = None;
                continue;
            };
            self.take(read, &mut failing, &shutdown).await;
        }
        if let Some(client) = client {
            let _ = fred::interfaces::ClientLike::quit(&client).await;
        }
    }
}

impl ChangeHub {
    /// Lets go of the watched events that no longer exist. XREAD on the stream of a deleted
    /// event would only wait, so this is how watchers learn of a deletion made by another API
    /// process (the one that deletes lets its own go at once).
    async fn forget_deleted(&self, store: &Store) {
        let watched: Vec<EventId> = self.cursors().into_iter().map(|(id, _)| id).collect();
        if watched.is_empty() {
            return;
        }
        match store.missing_events(&watched).await {
            Ok(gone) => {
                for event in gone {
                    tracing::debug!(%event, "the event is gone; ending its streams");
                    self.forget(event);
                }
            }
            // Tried again next round; the feeds go on meanwhile.
            Err(e) => tracing::debug!(error = %e, "cannot check the watched events"),
        }
    }
}

async fn pause(shutdown: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(500)) => {}
        () = shutdown.cancelled() => {}
    }
}
