//! The live feed of an event's seats: every change (held, refreshed, released, lapsed, reserved)
//! is appended to the event's `changes` stream by the script that makes it (`log_change` in
//! `lua/common.lua`), so a reader that starts from a snapshot, or resumes after the id of the last
//! change it saw, gets every later change exactly once.

use std::fmt;
use std::str::FromStr;

use fred::clients::Client;
use fred::interfaces::StreamsInterface;
use fred::types::Value;

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::ids::{EventId, InvalidValue, SeatId, UserId};
use crate::keys::{slot_of, EventKeys};
use crate::reply::seat_state;
use crate::scripts::{self, arg};
use crate::seat::{SeatState, SeatStatus, RECORD_LEN};
use crate::store::Store;

/// The id of an entry of a changes stream, `<ms>-<seq>` as Redis makes it; the SSE event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ChangeId {
    ms: u64,
    seq: u64,
}

impl ChangeId {
    /// Before every change: a reader at `ZERO` has seen none.
    pub const ZERO: Self = Self { ms: 0, seq: 0 };

    /// When the change was made (Redis's clock).
    pub fn millis(self) -> Millis {
        Millis::try_from(self.ms).unwrap_or(Millis::MAX)
    }
}

impl FromStr for ChangeId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            InvalidValue::new(format!(
                "`{}` is not a change id (`<milliseconds>-<sequence>`, as sent in `id:`)",
                s.chars().take(60).collect::<String>()
            ))
        };
        let (ms, seq) = s.split_once('-').ok_or_else(invalid)?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return Err(invalid());
        }
        Ok(Self {
            ms: ms.parse().map_err(|_| invalid())?,
            seq: seq.parse().map_err(|_| invalid())?,
        })
    }
}

impl fmt::Display for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// What happened to a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Held,
    Refreshed,
    Released,
    Lapsed,
    Reserved,
}

impl ChangeKind {
    pub const ALL: [Self; 5] = [
        Self::Held,
        Self::Refreshed,
        Self::Released,
        Self::Lapsed,
        Self::Reserved,
    ];

    /// The letter `log_change` writes.
    pub fn code(self) -> u8 {
        match self {
            Self::Held => b'h',
            Self::Refreshed => b'f',
            Self::Released => b'x',
            Self::Lapsed => b'l',
            Self::Reserved => b'r',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Refreshed => "refreshed",
            Self::Released => "released",
            Self::Lapsed => "lapsed",
            Self::Reserved => "reserved",
        }
    }

    /// The seat's status after the change.
    pub fn status(self) -> SeatStatus {
        match self {
            Self::Held | Self::Refreshed => SeatStatus::OnHold,
            Self::Released | Self::Lapsed => SeatStatus::Available,
            Self::Reserved => SeatStatus::Reserved,
        }
    }
}

/// One change to one seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatChange {
    pub id: ChangeId,
    pub seat: SeatId,
    pub kind: ChangeKind,
    /// The user concerned: the new holder or reserver, or for `Released` and `Lapsed` the
    /// former holder.
    pub user: UserId,
    /// The hold's deadline after `Held` or `Refreshed`; when it ran out for `Lapsed`.
    pub deadline: Option<Millis>,
}

impl SeatChange {
    /// When the change took effect: a lapse at the hold's deadline (the sweep that records it
    /// may come a little later), anything else when it was made.
    pub fn at(&self) -> Millis {
        match (self.kind, self.deadline) {
            (ChangeKind::Lapsed, Some(deadline)) => deadline,
            _ => self.id.millis(),
        }
    }

    /// The hold's expiry, while the change leaves the seat On hold.
    pub fn expires_at(&self) -> Option<Millis> {
        (self.kind.status() == SeatStatus::OnHold)
            .then_some(self.deadline)
            .flatten()
    }
}

/// Every seat of an event at one instant, and the id of the last change before it: the stream
/// continues from there.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub event: Event,
    /// Seat n at index n - 1.
    pub seats: Vec<SeatState>,
    pub last: ChangeId,
}

/// What a reader resuming after a change id gets.
#[derive(Debug, Clone)]
pub enum CatchUp {
    /// The changes after it, oldest first (at most the number asked for).
    Changes(Vec<SeatChange>),
    /// Changes after it are no longer kept (or the id is not one this stream made): start again
    /// from a snapshot.
    Gap,
}

impl Store {
    /// Every seat of the event now, with the id of the last change; `None` when there is no such
    /// event.
    pub async fn snapshot(&self, id: EventId) -> Result<Option<Snapshot>> {
        let Some((event, now, records, last)) = self.read_event(id, true).await? else {
            return Ok(None);
        };
        let seats = records
            .chunks(RECORD_LEN)
            .take(event.total_seats as usize)
            .map(|record| seat_state(record, now))
            .collect::<Result<Vec<_>>>()?;
        let last = match last {
            Some(last) => last
                .parse()
                .map_err(|e: InvalidValue| Error::Corrupt(e.to_string()))?,
            None => ChangeId::ZERO,
        };
        Ok(Some(Snapshot { event, seats, last }))
    }

    /// Up to `limit` changes of the event after `after`; `None` when there is no such event.
    pub async fn changes_after(
        &self,
        event: EventId,
        after: ChangeId,
        limit: usize,
    ) -> Result<Option<CatchUp>> {
        let k = EventKeys::new(event);
        let (mut reply, client) = self
            .script_on(
                &scripts::READ_CHANGES,
                [&k.event, &k.changes],
                vec![arg(after), arg(limit)],
            )
            .await?;
        if reply.is_empty() {
            return Ok(None);
        }
        self.fenced(&client, event).await?;
        if reply.string()? == "gap" {
            return Ok(Some(CatchUp::Gap));
        }
        let mut changes = Vec::new();
        while let Some(entry) = reply.value() {
            changes.push(parse_entry(event, entry)?);
        }
        Ok(Some(CatchUp::Changes(changes)))
    }
}

impl Store {
    /// Waits up to `block_ms` for changes after each cursor on a connection of its own (XREAD
    /// blocks the connection it runs on), and returns them, at most `count` per event. An empty
    /// answer means none came in time. One Redis only: on a cluster one XREAD may not name
    /// streams of several slots (see [`Store::poll_new`]).
    pub async fn read_new(
        &self,
        client: &Client,
        cursors: &[(EventId, ChangeId)],
        count: u64,
        block_ms: u64,
    ) -> Result<Vec<SeatChange>> {
        let changes = read_streams(client, cursors, count, Some(block_ms)).await?;
        if let Some(first) = changes.first() {
            self.fenced(client, first.seat.event()).await?;
        }
        Ok(changes)
    }
}

impl Store {
    /// On a cluster: the changes after each cursor now, at most `count` per event, without
    /// waiting. One XREAD per hash slot (one may not span slots), all sent at once on the
    /// pools' connections, each to its slot's primary; a blocking XREAD would hold up the
    /// connection to its primary for every other command, and one per slot would need a
    /// connection per watched event. A primary that does not answer (a failover) holds back
    /// only its own events' changes: they come on a later read. Only when no read succeeds is
    /// the answer an error.
    pub async fn poll_new(
        &self,
        cursors: &[(EventId, ChangeId)],
        count: u64,
    ) -> Result<Vec<SeatChange>> {
        let mut by_slot: std::collections::BTreeMap<u16, Vec<(EventId, ChangeId)>> =
            std::collections::BTreeMap::new();
        for (event, cursor) in cursors {
            by_slot
                .entry(slot_of(&EventKeys::new(*event).changes))
                .or_default()
                .push((*event, *cursor));
        }
        let reads = by_slot.iter().map(|(slot, group)| async move {
            let client = self.client_at(*slot)?;
            let changes = read_streams(&client, group, count, None).await?;
            if let Some(first) = changes.first() {
                self.fenced(&client, first.seat.event()).await?;
            }
            Ok::<_, crate::Error>(changes)
        });
        let mut changes = Vec::new();
        let mut failed = None;
        let reads = futures::future::join_all(reads).await;
        let any_read = reads.iter().any(Result::is_ok);
        for read in reads {
            match read {
                Ok(read) => changes.extend(read),
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) if !any_read => Err(e),
            Some(e) => {
                tracing::debug!(error = %e, "some seat feeds could not be read this round");
                Ok(changes)
            }
            None => Ok(changes),
        }
    }
}

/// One XREAD over the streams of `cursors` (all of one slot on a cluster), blocking up to
/// `block_ms` when given.
async fn read_streams(
    client: &Client,
    cursors: &[(EventId, ChangeId)],
    count: u64,
    block_ms: Option<u64>,
) -> Result<Vec<SeatChange>> {
    if cursors.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = cursors
        .iter()
        .map(|(event, _)| EventKeys::new(*event).changes)
        .collect();
    let ids: Vec<String> = cursors.iter().map(|(_, id)| id.to_string()).collect();
    let reply: Value = client.xread(Some(count), block_ms, keys, ids).await?;
    let mut changes = Vec::new();
    for stream in into_items(reply) {
        let mut parts = into_items(stream).into_iter();
        let (Some(key), Some(entries)) = (parts.next(), parts.next()) else {
            return Err(corrupt("an XREAD stream without key and entries"));
        };
        let key = key
            .into_string()
            .ok_or_else(|| corrupt("an XREAD key that is not text"))?;
        let event = cursors
            .iter()
            .map(|(event, _)| *event)
            .find(|event| EventKeys::new(*event).changes == key)
            .ok_or_else(|| corrupt("XREAD answered for a stream it was not asked for"))?;
        for entry in into_items(entries) {
            changes.push(parse_entry(event, entry)?);
        }
    }
    Ok(changes)
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(what.to_owned())
}

/// The items of an array reply; nothing for nil (an XREAD that timed out), and the key/value
/// pairs in order for a map (fred may turn a two-level reply into one).
fn into_items(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        Value::Map(map) => map
            .inner()
            .into_iter()
            .flat_map(|(k, v)| [Value::from(k), v])
            .collect(),
        other => vec![other],
    }
}

/// Decodes one stream entry, `[id, [field, value, ...]]`, as `log_change` writes it.
fn parse_entry(event: EventId, entry: Value) -> Result<SeatChange> {
    let mut parts = into_items(entry).into_iter();
    let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
        return Err(corrupt("a change entry without id and fields"));
    };
    let id: ChangeId = id
        .into_string()
        .ok_or_else(|| corrupt("a change id that is not text"))?
        .parse()
        .map_err(|e: InvalidValue| Error::Corrupt(e.to_string()))?;
    let (mut kind, mut seat, mut user, mut deadline) = (None, None, None, None);
    let mut fields = into_items(fields).into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let value = value
            .into_bytes()
            .ok_or_else(|| corrupt("a change field that is not a string"))?;
        let text = std::str::from_utf8(&value).unwrap_or_default();
        match name.as_bytes().unwrap_or_default() {
            b"k" => {
                kind = ChangeKind::ALL
                    .into_iter()
                    .find(|k| value[..] == [k.code()])
            }
            b"n" => seat = text.parse().ok().and_then(|n| SeatId::new(event, n)),
            b"u" => {
                user = <[u8; 16]>::try_from(&value[..])
                    .ok()
                    .map(UserId::from_bytes)
            }
            b"x" => deadline = text.parse::<Millis>().ok().filter(|ms| *ms > 0),
            _ => {}
        }
    }
    match (kind, seat, user) {
        (Some(kind), Some(seat), Some(user)) => Ok(SeatChange {
            id,
            seat,
            kind,
            user,
            deadline,
        }),
        _ => Err(Error::Corrupt(format!(
            "change {id} of event {event} is incomplete"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_ids_parse_print_and_order_like_redis_stream_ids() {
        let a: ChangeId = "1700000000000-0".parse().expect("a valid id");
        let b: ChangeId = "1700000000000-12".parse().expect("a valid id");
        let c: ChangeId = "1700000000001-0".parse().expect("a valid id");
        assert!(ChangeId::ZERO < a && a < b && b < c);
        assert_eq!(b.to_string(), "1700000000000-12");
        assert_eq!(a.millis(), 1_700_000_000_000);
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1",
            "a-1",
            "1-1-1",
            "+1-1",
            "1 -1",
            "99999999999999999999999-0",
        ] {
            assert!(bad.parse::<ChangeId>().is_err(), "{bad:?} must be refused");
        }
    }
}
