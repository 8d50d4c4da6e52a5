//! Errors a caller of queue-core can act on. Business refusals (a seat already held, a full queue)
//! are not errors: they are ordinary results of the operations.

/// Something went wrong below the business rules.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Redis could not be reached or did not answer in time; retrying later may work.
    #[error("Redis is unavailable")]
    Unavailable(#[from] fred::error::Error),
    /// Redis answered with something the service never writes: a bug or tampering.
    #[error("unexpected data in Redis: {0}")]
    Corrupt(String),
    /// A lock of this process was poisoned by a panic in another task: a bug.
    #[error("a lock of {0} was poisoned by a panic")]
    Poisoned(&'static str),
}

impl Error {
    /// The error of a command not sent because the connection is down (or the task that would
    /// have sent it is gone), which a client sees as Redis being unavailable.
    pub(crate) fn not_connected() -> Self {
        Self::Unavailable(fred::error::Error::new(
            fred::error::ErrorKind::IO,
            "not connected to Redis",
        ))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
