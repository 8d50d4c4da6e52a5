//! Events and their seats: creating an event, and reading events, seat lists and seats.

use fred::bytes::Bytes;
use fred::interfaces::SortedSetsInterface;

use crate::clock::{wall_clock_ms, Millis};
use crate::error::{Error, Result};
use crate::event::{AvailableSeats, Event, EventCursor, EventPage};
use crate::ids::{EventId, EventName, SeatCount, SeatId};
use crate::keys::{self, EventKeys};
use crate::reply::seat_state;
use crate::scripts::{self, arg};
use crate::seat::{Seat, SeatState, RECORD_LEN};
use crate::store::Store;

impl Store {
    /// Creates an event whose seats 1..=count all exist, Available, once this returns. With
    /// `ends_at` (ms since the epoch; the caller checks it is ahead), the housekeeping deletes
    /// the event once EVENT_RETENTION has passed after it ([`Store::delete_ended`]).
    pub async fn create_event(
        &self,
        name: &EventName,
        count: SeatCount,
        ends_at: Option<Millis>,
    ) -> Result<Event> {
        // A random id that is taken already (a v4 UUID: it never happens in practice) is
        // refused by the script without a write; another is drawn, a couple of times at most.
        let mut attempts = 0;
        let id = loop {
            attempts += 1;
            let id = EventId::new_random();
            let k = EventKeys::new(id);
            let mut reply = self
                .script(
                    &scripts::CREATE_EVENT,
                    [&k.event, &k.seats],
                    vec![
                        arg(name.as_str()),
                        arg(count.get()),
                        arg(ends_at.map(|ms| ms.to_string()).unwrap_or_default()),
                    ],
                )
                .await?;
            if reply.flag()? {
                break id;
            }
            if attempts == 3 {
                return Err(Error::Corrupt(format!(
                    "three new event ids in a row exist already (the last {id})"
                )));
            }
        };
        // Registered after it exists, so a failed creation leaves nothing behind. The registry
        // feeds the housekeeping full pass (a safety net) and the list of events, so a failure
        // here is logged, not returned: the event is there.
        let created = wall_clock_ms() as f64;
        if let Err(e) = self
            .client_for(keys::EVENTS)?
            .zadd::<(), _, _>(
                keys::EVENTS,
                None,
                None,
                false,
                false,
                (created, id.to_string()),
            )
            .await
        {
            tracing::warn!(event = %id, error = %e, "created an event but could not register it");
        }
        if let Some(ends) = ends_at {
            // Indexed after it exists too; should this fail, the creation fails, so that no event
            // with an `endsAt` is left that the housekeeping would never delete (the client sees
            // a 503 and the event stays until an admin deletes it).
            self.client_for(keys::ENDS)?
                .zadd::<(), _, _>(
                    keys::ENDS,
                    None,
                    None,
                    false,
                    false,
                    (ends as f64, id.to_string()),
                )
                .await?;
        }
        Ok(Event {
            id,
            name: name.as_str().to_owned(),
            total_seats: count.get(),
            available: count.get(),
            on_hold: 0,
            reserved: 0,
            ends_at,
        })
    }

    /// One page of the events, newest first, with their counts now: the `limit` events created
    /// before `after` (from the start without it). An event deleted meanwhile is left out of the
    /// page (which may then be shorter) and still moves the cursor on.
    pub async fn events_page(&self, limit: u32, after: Option<EventCursor>) -> Result<EventPage> {
        let (ms, id) = match after {
            Some(c) => (c.created.to_string(), c.id.to_string()),
            None => (String::new(), String::new()),
        };
        let mut reply = self
            .script(
                &scripts::LIST_EVENTS,
                [keys::EVENTS],
                vec![arg(limit.max(1)), arg(ms), arg(id)],
            )
            .await?;
        let more = reply.flag()?;
        let mut listed = Vec::new();
        while !reply.is_empty() {
            let member = reply.string()?;
            let created = reply.int()?;
            // Only ids are registered; anything else is skipped as the full pass skips it.
            if let Ok(id) = member.parse::<EventId>() {
                listed.push(EventCursor { created, id });
            }
        }
        let next = if more { listed.last().copied() } else { None };
        let reads = listed.iter().map(|c| self.event(c.id));
        let events = futures::future::try_join_all(reads).await?;
        Ok(EventPage {
            events: events.into_iter().flatten().collect(),
            next,
        })
    }

    /// The event with its counts now; `None` when there is no such event.
    pub async fn event(&self, id: EventId) -> Result<Option<Event>> {
        Ok(self.read_event(id, false).await?.map(|(event, ..)| event))
    }

    /// The event and its Available seats now; `None` when there is no such event.
    pub async fn available_seats(&self, id: EventId) -> Result<Option<AvailableSeats>> {
        let Some((event, now, records, _)) = self.read_event(id, true).await? else {
            return Ok(None);
        };
        let mut seats = Vec::with_capacity(event.available as usize);
        for (n, record) in (1..=event.total_seats).zip(records.chunks(RECORD_LEN)) {
            if seat_state(record, now)? == SeatState::Available {
                seats.extend(SeatId::new(id, n));
            }
        }
        Ok(Some(AvailableSeats { event, seats }))
    }

    /// The event, Redis's time, and (when asked) the seats string and the id of the last entry of
    /// its changes stream.
    pub(crate) async fn read_event(
        &self,
        id: EventId,
        with_seats: bool,
    ) -> Result<Option<(Event, Millis, Bytes, Option<String>)>> {
        let k = EventKeys::new(id);
        let (mut reply, client) = self
            .script_on(
                &scripts::READ_EVENT,
                [&k.event, &k.seats, &k.deadlines, &k.changes],
                vec![arg(u8::from(with_seats))],
            )
            .await?;
        if reply.is_empty() {
            return Ok(None);
        }
        self.fenced(&client, id).await?;
        let name = reply.string()?;
        let total = reply.count()?;
        let reserved = reply.count()?;
        let on_hold = reply.count()?;
        let now = reply.int()?;
        let ends_at = Some(reply.int()?).filter(|ms| *ms >= 0);
        let records = reply.bytes()?;
        let last_change = reply.opt_string()?;
        let event = Event {
            id,
            name,
            total_seats: total,
            available: total.saturating_sub(reserved + on_hold),
            on_hold,
            reserved,
            ends_at,
        };
        Ok(Some((event, now, records, last_change)))
    }

    /// A seat as it is now; `None` when there is no such event or seat.
    pub async fn seat(&self, id: SeatId) -> Result<Option<Seat>> {
        let k = EventKeys::new(id.event());
        let (mut reply, client) = self
            .script_on(
                &scripts::READ_SEAT,
                [&k.event, &k.seats],
                vec![arg(id.number())],
            )
            .await?;
        if reply.is_empty() {
            return Ok(None);
        }
        self.fenced(&client, id.event()).await?;
        let now: Millis = reply.int()?;
        Ok(Some(reply.seat_state(now)?.into_seat(id)))
    }
}
