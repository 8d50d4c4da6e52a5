//! The read-back: the state of every seat the run touched, through the API, for the check.

use anyhow::{Context, Result};
use futures::stream::{self, StreamExt};

use crate::api::{now_ms, Api};
use crate::check::{EventReading, Job, Readback, SeatReading};

/// Reads back every seat the run touched, and each event's counts and listing.
pub async fn read_back(api: &Api, events: &[String], jobs: &[Job]) -> Result<Readback> {
    let mut touched: Vec<(&str, u32)> = jobs.iter().map(|j| (j.event.as_str(), j.seat)).collect();
    touched.sort_unstable();
    touched.dedup();
    let at_ms = now_ms();
    let seats = stream::iter(touched)
        .map(|(event, seat)| async move {
            let view = api
                .seat(&format!("{event}:{seat}"))
                .await
                .with_context(|| format!("reading back seat {event}:{seat}"))?;
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
