//! How many seat streams may be open (docs/CONTRACT.md §2, admission G10): a cap per client
//! address and one for the whole process, the latter kept well below the file-descriptor limit
//! (raised to the hard limit at startup), so that a client opening streams in a loop is refused
//! with a quick JSON answer long before the process runs out of descriptors, and everyone
//! else's requests go on. A slot is held by the stream's feed and given back when it ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::error::ApiError;

/// Descriptors kept for everything but streams: listening sockets, Redis connections, log
/// files, and the ordinary requests of the clients the cap protects.
pub const RESERVED_DESCRIPTORS: u64 = 512;

/// The open streams of one process.
#[derive(Debug)]
pub struct StreamSlots {
    per_client: usize,
    total: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// One open stream's place; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<StreamSlots>,
    client: IpAddr,
}

impl StreamSlots {
    /// `per_client` streams per address and `total` in all, `total` lowered to fit in
    /// `descriptors` (the process's limit) minus [`RESERVED_DESCRIPTORS`].
    pub fn new(per_client: usize, total: usize, descriptors: u64) -> Self {
        let fit = usize::try_from(descriptors.saturating_sub(RESERVED_DESCRIPTORS))
            .unwrap_or(usize::MAX)
            .max(1);
        Self {
            per_client: per_client.max(1),
            total: total.min(fit).max(1),
            open: Mutex::default(),
        }
    }

    /// The cap of the whole process, after fitting it to the descriptors.
    pub fn total(&self) -> usize {
        self.total
    }

    /// A place for a stream of `client`: 429 `too_many_streams` when that address has its
    /// share open, 503 `streams_full` when the process has.
    pub fn take(self: &Arc<Self>, client: IpAddr) -> Result<Slot, ApiError> {
        let mut open = self
            .open
            .lock()
            .map_err(|_| ApiError::Misconfigured("the stream slots' lock was poisoned"))?;
        let mine = open.by_client.get(&client).copied().unwrap_or(0);
        if mine >= self.per_client {
            return Err(ApiError::TooManyStreams {
                limit: self.per_client,
            });
        }
        if open.total >= self.total {
            return Err(ApiError::StreamsFull { limit: self.total });
        }
        open.total += 1;
        *open.by_client.entry(client).or_default() += 1;
        Ok(Slot {
            slots: self.clone(),
            client,
        })
    }

    /// Streams open now: in all, and of `client`.
    pub fn open(&self, client: IpAddr) -> (usize, usize) {
        self.open.lock().map_or((0, 0), |open| {
            (
                open.total,
                open.by_client.get(&client).copied().unwrap_or(0),
            )
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.slots.open.lock() {
            open.total = open.total.saturating_sub(1);
            if let Some(n) = open.by_client.get_mut(&self.client) {
                *n -= 1;
                if *n == 0 {
                    open.by_client.remove(&self.client);
                }
            }
        }
    }
}

/// Raises the process's soft limit of open files to its hard limit; the limit now in force.
pub fn raise_descriptor_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_share_the_process_its_total_and_a_closed_stream_frees_its_place() {
        let slots = Arc::new(StreamSlots::new(2, 3, 10_000));
        let (a, b) = (IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 3]));
        let first = slots.take(a).expect("a's first");
        let _second = slots.take(a).expect("a's second");
        assert!(matches!(
            slots.take(a),
            Err(ApiError::TooManyStreams { limit: 2 })
        ));
        let _third = slots.take(b).expect("b's first");
        assert!(matches!(
            slots.take(b),
            Err(ApiError::StreamsFull { limit: 3 })
        ));
        drop(first);
        assert_eq!(slots.open(a), (2, 1));
        let _again = slots.take(a).expect("a place freed by a closed stream");
    }

    #[test]
    fn the_total_fits_in_the_descriptors() {
        assert_eq!(StreamSlots::new(10, 100_000, 1024).total(), 512);
        assert_eq!(StreamSlots::new(10, 100, 1_000_000).total(), 100);
    }
}
