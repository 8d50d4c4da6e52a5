//! Where a job stands: read from Redis, or from a record heard on the finished-jobs channel.

use crate::error::Result;
use crate::ids::{EventId, JobId};
use crate::job::{JobState, JobView};
use crate::keys::EventKeys;
use crate::scripts::{self, arg, run};
use crate::store::Store;
use crate::wire::{self, QueuedJob};

impl Store {
    /// Where a job stands; `None` when the id is unknown or its record is past retention.
    pub async fn job(&self, id: JobId) -> Result<Option<JobView>> {
        let k = EventKeys::new(id.event());
        let mut reply = run(
            &scripts::JOB_STATUS,
            &self.client()?,
            [&k.event, &k.queue, &k.results],
            vec![arg(id.seq()), arg(self.workers().lease_ms)],
        )
        .await?;
        match reply.int()? {
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
            _ => self.parse_record(id.event(), &reply.bytes()?).map(Some),
        }
    }

    /// Parses a finished job's record (see [`wire::decode_record`]).
    pub fn parse_record(&self, event: EventId, record: &[u8]) -> Result<JobView> {
        wire::decode_record(event, record, self.rules().max_held_seats)
    }
}
