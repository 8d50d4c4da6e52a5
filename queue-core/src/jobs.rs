//! Where a job stands: read from Redis, or from a record heard on the finished-jobs channel.

use crate::error::Result;
use crate::ids::{EventId, JobId};
use crate::job::{JobState, JobView};
use crate::keys::EventKeys;
use crate::scripts::{self, arg};
use crate::store::Store;
use crate::wire::{self, QueuedJob};

/// Why every job of a deleted event reads `failed`.
pub const EVENT_DELETED: &str = "the event was deleted";

impl Store {
    /// Where a job stands; `None` when the id is unknown or its record is past retention.
    pub async fn job(&self, id: JobId) -> Result<Option<JobView>> {
        let k = EventKeys::new(id.event());
        let (mut reply, client) = self
            .script_on(
                &scripts::JOB_STATUS,
                [&k.event, &k.queue, &k.results, &k.deleted],
                vec![arg(id.seq()), arg(self.workers().lease_ms)],
            )
            .await?;
        let found = reply.int()?;
        if found >= 2 {
            // A finished job: not told before the replicas have its record.
            self.fenced(&client, id.event()).await?;
        }
        match found {
            0 => Ok(None),
            1 => {
                let position = reply.unsigned()?;
                let queued = QueuedJob::decode(&reply.bytes()?);
                let leased = reply.flag()?;
                let state = if position == 0 && leased {
                    JobState::Active
                } else {
                    JobState::Waiting { position }
                };
                Ok(Some(JobView {
                    id,
                    kind: queued.as_ref().map(|job| job.kind),
                    created_at: queued.map_or(0, |job| job.accepted_at),
                    state,
                }))
            }
            2 => self.parse_record(id.event(), &reply.bytes()?).map(Some),
            // Its event was deleted: the job ended failed then, whatever it was doing.
            _ => Ok(Some(JobView {
                id,
                kind: None,
                created_at: 0,
                state: JobState::Failed {
                    completed_at: reply.int()?,
                    reason: EVENT_DELETED.to_owned(),
                },
            })),
        }
    }

    /// Parses a finished job's record (see [`wire::decode_record`]).
    pub fn parse_record(&self, event: EventId, record: &[u8]) -> Result<JobView> {
        wire::decode_record(event, record, self.rules().max_held_seats)
    }
}
