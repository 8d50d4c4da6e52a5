//! The read-back: the state of every seat the run touched, through the API, for the check.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use futures::stream::{self, StreamExt};

use crate::api::{now_ms, Api, SeatStatus};
use crate::check::{EventReading, Job, Readback, SeatReading, Uncertain};

/// Reads back every seat the run touched, and each event's counts and listing.
///
/// No answer shows a user's id to anyone but that user, so a seat read anonymously says only
/// its status. A seat that is not Available is read again as each user who sent a job for it
/// (the only ones who can hold it) until one of them sees its own id: that is the holder. When
/// none does, the reading's user stays `""`, which the check reports.
pub async fn read_back(
    api: &Api,
    events: &[String],
    jobs: &[Job],
    uncertain: &[Uncertain],
) -> Result<Readback> {
    let mut touched: BTreeMap<(&str, u32), Vec<&str>> = BTreeMap::new();
    let sent = jobs
        .iter()
        .map(|j| (j.event.as_str(), j.seat, j.user.as_str()))
        .chain(
            uncertain
                .iter()
                .map(|u| (u.event.as_str(), u.seat, u.user.as_str())),
        );
    for (event, seat, user) in sent {
        let users = touched.entry((event, seat)).or_default();
        if !users.contains(&user) {
            users.push(user);
        }
    }
    let at_ms = now_ms();
    let seats = stream::iter(touched)
        .map(|((event, seat), users)| async move {
            let id = format!("{event}:{seat}");
            let context = || format!("reading back seat {id}");
            let mut view = api.seat(&id).await.with_context(context)?;
            // Until a candidate sees itself; the latest read stands (a hold may lapse meanwhile).
            for candidate in users {
                if view.status == SeatStatus::Available || !view.user.is_empty() {
                    break;
                }
                view = api.seat_as(&id, candidate).await.with_context(context)?;
            }
            Ok::<_, anyhow::Error>(SeatReading {
                event: event.to_owned(),
                seat,
                status: view.status,
                user: view.user,
            })
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let mut readings = Vec::new();
    for event in events {
        let counts = api.event(event).await?;
        let listed = api.available(event).await?;
        readings.push(EventReading {
            event: event.clone(),
            total: counts.total_seats,
            on_hold: counts.on_hold,
            reserved: counts.reserved,
            listed,
        });
    }
    Ok(Readback {
        at_ms,
        done_ms: now_ms(),
        uncertain: Vec::new(),
        seats,
        events: readings,
    })
}
