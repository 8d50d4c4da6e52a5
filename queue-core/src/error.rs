//! Errors a caller of queue-core can act on. Business refusals (a seat already held, a full queue)
//! are not errors: they are ordinary results of the operations.

/// Something went wrong below the business rules.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Redis could not be reached or did not answer in time, or a cluster is between two
    /// topologies (`MOVED` not followed, `ASK`, `CLUSTERDOWN`, `TRYAGAIN`: a failover or a
    /// resharding under way); retrying later may work. Shown with Redis's own words, so that a
    /// log line says which.
    #[error("Redis is unavailable ({})", .0.details())]
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
    /// Redis Cluster refused a command over keys of several slots (`CROSSSLOT`): a bug of the
    /// service (every script and command keeps to one slot), which no retry mends.
    #[error("Redis Cluster refused keys of several slots ({})", .0.details())]
    CrossSlot(#[source] fred::error::Error),
    /// The configuration does not fit the Redis it names (REDIS_URL says one Redis and the
    /// server is a cluster node, or the other way round): startup stops with this sentence.
    #[error("{0}")]
    Misconfigured(String),
}

/// How Redis's refusal of a write for lack of memory begins, for a command and for a script whose
/// first write it refused alike (`OOM command not allowed when used memory > 'maxmemory'.`); fred
/// gives it no error kind of its own.
const OOM: &str = "OOM ";

/// Every Redis error becomes a queue-core error here: a refusal for memory is [`Error::StoreFull`],
/// anything else [`Error::Unavailable`].
impl From<fred::error::Error> for Error {
    fn from(e: fred::error::Error) -> Self {
        match ClusterError::of(&e) {
            _ if e.details().starts_with(OOM) => Self::StoreFull(e),
            Some(ClusterError::CrossSlot) => Self::CrossSlot(e),
            _ => Self::Unavailable(e),
        }
    }
}

/// The errors of Redis Cluster's own: where fred's reply (or the script error around it) names
/// one, it is logged with its detail by whoever meets it, and all but `CrossSlot` pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterError {
    /// `MOVED <slot> <host:port>`: the slot lives on another node. `Store::routed` follows it
    /// (up to 5 times); one that reaches the caller was not followed.
    Moved,
    /// `ASK <slot> <host:port>`: the slot is being migrated.
    Ask,
    /// `CLUSTERDOWN`: the cluster cannot serve the slot (a primary failed, no replica promoted
    /// yet).
    ClusterDown,
    /// `TRYAGAIN`: a multi-key command met a slot being migrated.
    TryAgain,
    /// `CROSSSLOT`: keys of several slots in one command.
    CrossSlot,
}

impl ClusterError {
    /// The cluster error Redis's reply names, if any. fred gives these no error kind of their
    /// own (a script's error wraps the command's), so its words decide.
    pub fn of(e: &fred::error::Error) -> Option<Self> {
        let details = e.details();
        [
            ("MOVED ", Self::Moved),
            ("ASK ", Self::Ask),
            ("CLUSTERDOWN", Self::ClusterDown),
            ("TRYAGAIN", Self::TryAgain),
            ("CROSSSLOT", Self::CrossSlot),
        ]
        .into_iter()
        .find(|(word, _)| details.starts_with(word) || details.contains(&format!(" {word}")))
        .map(|(_, kind)| kind)
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

    #[test]
    fn cluster_errors_are_told_apart_and_only_crossslot_is_not_transient() {
        use super::ClusterError as C;
        for (details, kind, transient) in [
            ("MOVED 3999 127.0.0.1:6381", C::Moved, true),
            ("ASK 3999 127.0.0.1:6381", C::Ask, true),
            ("CLUSTERDOWN The cluster is down", C::ClusterDown, true),
            ("CLUSTERDOWN Hash slot not served", C::ClusterDown, true),
            (
                "TRYAGAIN Multiple keys request during rehashing of slot",
                C::TryAgain,
                true,
            ),
            (
                "CROSSSLOT Keys in request don't hash to the same slot",
                C::CrossSlot,
                false,
            ),
            (
                "ERR Error running script (call to f_1): @user_script:12: CROSSSLOT Keys in request don't hash to the same slot",
                C::CrossSlot,
                false,
            ),
        ] {
            let redis = RedisError::new(ErrorKind::Unknown, details);
            assert_eq!(C::of(&redis), Some(kind), "{details}");
            let e = Error::from(redis);
            assert_eq!(
                matches!(e, Error::Unavailable(_)),
                transient,
                "{details}: {e:?}"
            );
            assert!(e.to_string().contains(details), "the detail is shown: {e}");
        }
        assert_eq!(
            C::of(&RedisError::new(
                ErrorKind::Unknown,
                "ERR wrong number of arguments"
            )),
            None
        );
    }
}
