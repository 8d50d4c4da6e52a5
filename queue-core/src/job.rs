//! Jobs: what a client asked for, and where it stands.

use serde::Serialize;

use crate::clock::Millis;
use crate::ids::JobId;
use crate::seat::{Refusal, Seat};

/// What a job does, spelled as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum JobKind {
    #[serde(rename = "HOLD_SEAT")]
    Hold,
    #[serde(rename = "RESERVE_SEAT")]
    Reserve,
}

impl JobKind {
    pub const ALL: [Self; 2] = [Self::Hold, Self::Reserve];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hold => "HOLD_SEAT",
            Self::Reserve => "RESERVE_SEAT",
        }
    }

    /// The letter the Lua scripts use for it.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Hold => "H",
            Self::Reserve => "R",
        }
    }

    pub(crate) fn from_code(code: char) -> Option<Self> {
        match code {
            'H' => Some(Self::Hold),
            'R' => Some(Self::Reserve),
            _ => None,
        }
    }
}

/// A job as its status endpoint reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub id: JobId,
    /// `None` only for a failed job whose kind could not be read.
    pub kind: Option<JobKind>,
    pub created_at: Millis,
    pub state: JobState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// `position` jobs of the same event are ahead of it.
    Waiting { position: u64 },
    /// Next in line, and a worker is draining its event's queue.
    Active,
    /// Applied: held or reserved (`Ok`), or refused by the rules (`Err`).
    Completed {
        completed_at: Millis,
        result: Result<(), Refusal>,
        /// The seat as the job left it (`None` when there is no such seat).
        seat: Option<Seat>,
    },
    /// Could not be applied yet: waits for attempt `attempts + 1`, due at `retry_at`. The jobs
    /// behind it go on meanwhile.
    Retrying {
        attempts: u32,
        retry_at: Millis,
        reason: String,
    },
    /// Could not be applied at all.
    Failed {
        completed_at: Millis,
        reason: String,
    },
}

impl JobState {
    /// Completed or failed: nothing more will happen to the job.
    pub fn is_finished(&self) -> bool {
        matches!(self, Self::Completed { .. } | Self::Failed { .. })
    }

    /// The status the API reports for this state (a job waiting for a retry is `waiting`).
    pub fn status(&self) -> JobStatus {
        match self {
            Self::Waiting { .. } | Self::Retrying { .. } => JobStatus::Waiting,
            Self::Active => JobStatus::Active,
            Self::Completed { .. } => JobStatus::Completed,
            Self::Failed { .. } => JobStatus::Failed,
        }
    }
}

/// The four statuses of a job, spelled as the API shows them. This is the one list of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Waiting,
    Active,
    Completed,
    Failed,
}

impl JobStatus {
    pub const ALL: [Self; 4] = [Self::Waiting, Self::Active, Self::Completed, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// Whether a job was accepted onto the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// On the queue, with `position` jobs of the same event ahead of it.
    Accepted { job: JobId, position: u64 },
    /// The pre-check failed; nothing was written.
    Refused(Refusal),
    /// The event's queue holds QUEUE_MAX_DEPTH jobs; nothing was written.
    QueueFull { depth: u64 },
}
