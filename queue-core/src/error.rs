//! Errors a caller of queue-core can act on. Business refusals (a seat already held, a full queue)
//! are not errors: they are ordinary results of the operations.

/// Something went wrong below the business rules.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Redis could not be reached or did not answer in time; retrying later may work.
    #[error("Redis is unavailable")]
    Unavailable(#[source] fred::error::Error),
    /// Redis refused a write for lack of memory (`maxmemory` reached, `noeviction`): nothing was
    /// written, reads still work, and writes are taken again once memory is freed or the limit
    /// raised.
    #[error("Redis is out of memory and refuses writes")]
    StoreFull(#[source] fred::error::Error),
    /// Redis answered with something the service never writes: a bug or tampering.
    #[error("unexpected data in Redis: {0}")]
    Corrupt(String),
    /// A lock of this process was poisoned by a panic in another task: a bug.
    #[error("a lock of {0} was poisoned by a panic")]
    Poisoned(&'static str),
}

/// How Redis's refusal of a write for lack of memory begins, for a command and for a script whose
/// first write it refused alike (`OOM command not allowed when used memory > 'maxmemory'.`); fred
/// gives it no error kind of its own.
const OOM: &str = "OOM ";

/// Every Redis error becomes a queue-core error here: a refusal for memory is [`Error::StoreFull`],
/// anything else [`Error::Unavailable`].
impl From<fred::error::Error> for Error {
    fn from(e: fred::error::Error) -> Self {
        if e.details().starts_with(OOM) {
            Self::StoreFull(e)
        } else {
            Self::Unavailable(e)
        }
    }
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

#[cfg(test)]
mod tests {
    use fred::error::{Error as RedisError, ErrorKind};

    use super::Error;

    #[test]
    fn a_refusal_for_memory_is_store_full_and_other_errors_unavailable() {
        let oom = "OOM command not allowed when used memory > 'maxmemory'.";
        let in_script = format!("{oom} script: d27d8414, on @user_script:1.");
        for details in [oom.to_owned(), in_script] {
            let e = Error::from(RedisError::new(ErrorKind::Unknown, details.clone()));
            assert!(matches!(e, Error::StoreFull(_)), "{details}: {e:?}");
        }
        for details in ["not connected to Redis", "ERR unknown command", "LOADING"] {
            let e = Error::from(RedisError::new(ErrorKind::Unknown, details));
            assert!(matches!(e, Error::Unavailable(_)), "{details}: {e:?}");
        }
    }
}
