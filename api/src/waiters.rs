//! Jobs finishing, as this process hears of them. One pub/sub subscription per API process hears
//! every batch the workers finish (`process.lua` publishes the jobs' records), and:
//!
//! - hands each client waiting on one of them (`GET /seats/job/{id}/status?wait=N`) its job as it
//!   finished: no waiting request polls Redis, and none reads its job again once woken;
//! - keeps the records for a few seconds, so that a status read of a job that finished that
//!   recently is answered without Redis. That is the common case: a client asks for its result
//!   right after its 202, and under load the job is often done by the time the request arrives.
//!   A finished job's record never changes, so the copy is as good as Redis's; a job not heard
//!   of (it finished earlier, or while the subscription was down) is read from Redis as before.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use futures::FutureExt;
use queue_core::keys::FINISHED_CHANNEL;
use queue_core::{JobId, JobView, Store};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The longest wait a client may ask for, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;
/// How long a finished job's record is kept at most, and how many are kept at most (about 20 MB
/// at the longest records; at the pool's full drain rate the count, not the time, is the limit).
const KEEP_AT_MOST: Duration = Duration::from_secs(5);
const KEEP_MAX_JOBS: usize = 100_000;

#[derive(Debug)]
pub struct Waiters {
    inner: Mutex<Inner>,
    /// How long a record is kept: at most [`KEEP_AT_MOST`], and well within JOB_RESULT_TTL so
    /// that a job past retention is never answered from here.
    keep: Duration,
    /// Whether the subscription is in place: until it is (a process just started; on a cluster
    /// its subscriber first learns the topology), an announcement would go unheard, and a
    /// waiter would sit out its whole wait for a job finished meanwhile.
    subscribed: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct Inner {
    waiting: HashMap<JobId, Vec<oneshot::Sender<JobView>>>,
    recent: HashMap<JobId, Heard>,
    /// The jobs in `recent`, oldest first, to forget them in time.
    heard: VecDeque<(Instant, JobId)>,
}

/// A finished job's record: a range of the message it came in (shared by its jobs).
#[derive(Debug, Clone)]
struct Heard {
    at: Instant,
    message: Arc<[u8]>,
    record: Range<usize>,
}

/// What [`Waiters::look`] found.
#[derive(Debug)]
enum Looked {
    /// The job finished within the last few seconds: this is it.
    Finished(JobView),
    /// Not heard of: read it from Redis. With a wait, the receiver gets the job if it finishes.
    Unknown(Option<oneshot::Receiver<JobView>>),
}

impl Waiters {
    /// Keeps finished records for at most `job_result_ttl / 2` (and at most a few seconds).
    pub fn new(job_result_ttl: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            keep: KEEP_AT_MOST.min(job_result_ttl / 2),
            subscribed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Where a job stands (`GET /seats/job/{id}/status`); `None` when it is unknown or its result
    /// has expired. Without `wait`, as it stands now; with it, as soon as it finishes, or as it
    /// stands at the deadline if it has not by then.
    pub async fn status(
        &self,
        store: &Store,
        job: JobId,
        wait: Option<Duration>,
    ) -> queue_core::Result<Option<JobView>> {
        // A job that finished moments ago is answered from what this process heard; otherwise the
        // waiter is registered before the read, so that a job finishing in between still wakes us.
        // Not subscribed yet: no announcement would come, so the job is read as it stands now.
        let wait = wait.filter(|_| self.subscribed.load(std::sync::atomic::Ordering::Acquire));
        let woken = match self.look(store, job, wait.is_some()) {
            Looked::Finished(finished) => return Ok(Some(finished)),
            Looked::Unknown(woken) => woken,
        };
        let (Some(wait), Some(woken)) = (wait, woken) else {
            return store.job(job).await;
        };
        // Fused: once it has answered (an error: no announcement will come), it stays pending
        // instead of being polled again, and the wait ends at the deadline.
        let mut woken = woken.fuse();
        let deadline = tokio::time::Instant::now() + wait;
        let read = store.job(job);
        tokio::pin!(read);
        tokio::select! {
            // It finished while the read was on its way: that is the answer, at once (a job that
            // finished exists), rather than after the read.
            Ok(finished) = &mut woken => Ok(Some(finished)),
            read = &mut read => match read? {
                Some(view) if !view.state.is_finished() => {
                    match tokio::time::timeout_at(deadline, &mut woken).await {
                        // As it finished, from the workers' announcement.
                        Ok(Ok(finished)) => Ok(Some(finished)),
                        // The deadline (or no listener): as it stands now.
                        _ => store.job(job).await,
                    }
                }
                view => Ok(view),
            },
        }
    }

    /// The job, if it finished within the last few seconds; otherwise, when `wait`, registers
    /// interest in its finishing. Register before reading the job's status from Redis, so that a
    /// finish between the read and the wait is not missed.
    fn look(&self, store: &Store, job: JobId, wait: bool) -> Looked {
        let heard = {
            let Ok(mut inner) = self.inner.lock() else {
                return Looked::Unknown(None);
            };
            match inner.recent.get(&job) {
                Some(heard) if heard.at.elapsed() < self.keep => heard.clone(),
                _ if wait => return Looked::Unknown(Some(inner.register(job))),
                _ => return Looked::Unknown(None),
            }
        };
        let parsed = heard
            .message
            .get(heard.record)
            .and_then(|record| store.parse_record(job.event(), record).ok());
        match parsed {
            Some(finished) => Looked::Finished(finished),
            // A record this process cannot read (only its sequence number was checked when
            // heard): Redis answers, or the request fails as it would have without the copy.
            None => self.look_in_redis(job, wait),
        }
    }

    fn look_in_redis(&self, job: JobId, wait: bool) -> Looked {
        match self.inner.lock() {
            Ok(mut inner) if wait => Looked::Unknown(Some(inner.register(job))),
            _ => Looked::Unknown(None),
        }
    }

    /// One message of finished jobs: wakes their waiters and keeps their records.
    fn finished(&self, store: &Store, message: &[u8]) {
        let (event, records) = match queue_core::wire::finished_records(message) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::warn!(error = %e, "an unreadable finished-jobs message; its waiters answer at their deadline");
                return;
            }
        };
        let message: Arc<[u8]> = Arc::from(message);
        let now = Instant::now();
        let mut woken = Vec::new();
        {
            let Ok(mut inner) = self.inner.lock() else {
                return;
            };
            for (job, record) in records {
                if let Some(senders) = inner.waiting.remove(&job) {
                    woken.push((job, record.clone(), senders));
                }
                inner.recent.insert(
                    job,
                    Heard {
                        at: now,
                        message: message.clone(),
                        record,
                    },
                );
                inner.heard.push_back((now, job));
            }
            inner.forget_old(now, self.keep);
        }
        // Parsed and sent outside the lock: the request threads need it meanwhile.
        for (job, record, senders) in woken {
            let parsed = message
                .get(record)
                .map(|record| store.parse_record(event, record));
            match parsed {
                Some(Ok(finished)) => {
                    for sender in senders {
                        let _ = sender.send(finished.clone());
                    }
                }
                // The waiters then answer at their deadline, from Redis.
                Some(Err(e)) => tracing::warn!(%job, error = %e, "an unreadable finished job"),
                // The ranges come from the message itself: only a bug puts one outside it.
                None => tracing::warn!(%job, "a finished job's record lies outside its message"),
            }
        }
    }

    /// Forgets the records heard of `event`'s jobs (it was deleted: from now on Redis says they
    /// failed). Other API processes may still answer a record they heard for a few seconds.
    pub fn forget_event(&self, event: queue_core::EventId) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.recent.retain(|job, _| job.event() != event);
        }
    }

    /// Subscribes to the finished-jobs channel and hears it until `shutdown`.
    pub async fn listen(&self, store: &Store, shutdown: CancellationToken) {
        let subscriber = match store.subscriber().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no finished-jobs listener: ?wait= answers at its deadline");
                return;
            }
        };
        let _resubscribe = subscriber.manage_subscriptions();
        // Listening before subscribing: a message published as the subscription takes effect
        // would otherwise be missed by a waiter that registered once `subscribed` was set.
        let mut messages = subscriber.message_rx();
        // Until the subscription is in place `?wait=` reads and answers at once (see
        // `subscribed`); tried again until it is.
        let mut warned = false;
        loop {
            match subscriber.subscribe(FINISHED_CHANNEL).await {
                Ok(()) => {
                    self.subscribed
                        .store(true, std::sync::atomic::Ordering::Release);
                    break;
                }
                Err(e) => {
                    if !std::mem::replace(&mut warned, true) {
                        tracing::warn!(error = %e, "cannot subscribe to finished jobs; retrying");
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => {
                            let _ = subscriber.quit().await;
                            return;
                        }
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                message = messages.recv() => message,
            };
            match message {
                Ok(message) => {
                    if let Some(payload) = message.value.as_bytes() {
                        self.finished(store, payload);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the finished-jobs listener fell behind");
                }
                Err(RecvError::Closed) => break,
            }
        }
        self.subscribed
            .store(false, std::sync::atomic::Ordering::Release);
        let _ = subscriber.quit().await;
    }
}

impl Inner {
    fn register(&mut self, job: JobId) -> oneshot::Receiver<JobView> {
        let (tx, rx) = oneshot::channel();
        // Waiters whose client gave up leave closed senders behind; drop them now and then.
        if self.waiting.len() > 10_000 {
            self.waiting.retain(|_, senders| {
                senders.retain(|s| !s.is_closed());
                !senders.is_empty()
            });
        }
        self.waiting.entry(job).or_default().push(tx);
        rx
    }

    fn forget_old(&mut self, now: Instant, keep: Duration) {
        while let Some(&(at, job)) = self.heard.front() {
            if now.duration_since(at) < keep && self.heard.len() <= KEEP_MAX_JOBS {
                break;
            }
            self.heard.pop_front();
            // Only if this is the entry heard then (a job is heard once, but be sure).
            if self.recent.get(&job).is_some_and(|h| h.at == at) {
                self.recent.remove(&job);
            }
        }
    }
}
