//! Jobs finishing, as this process hears of them. One pub/sub subscription per API process hears
//! every batch the workers finish (`process.lua` publishes the jobs' records), and:
//!
//! - hands each client waiting on one of them (`GET /seats/job/{id}/status?wait=N`) its job as it
//!   finished: no waiting request polls Redis, and none reads its job again once woken;
//! - keeps the records for a few seconds, so that a status read of a job that finished that
//!   recently is answered without Redis. That is the common case: a client asks for its result
//!   right after its 202, and under load the job is often done by the time the request arrives.
//!   A finished job's record never changes, so the copy is as good as Redis's; a job not heard
//!   of (it finished earlier, or while the subscription was down) is read from Redis as before;
//! - knows, for a job accepted after a job this process accepted while subscribed, that its
//!   finishing will be heard (its announcement comes after its acceptance): a `?wait` on it that
//!   finds no record heard waits without reading Redis first. That read is most of what a wait
//!   costs Redis, and a client waits on nearly every job it sends. Whatever could make an
//!   announcement go unheard (the subscription made again, the listener falling behind, a record
//!   forgotten) ends that knowledge until a job is accepted again; a wait that waited in vain
//!   reads Redis at its deadline, as before.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use futures::FutureExt;
use queue_core::keys::FINISHED_CHANNEL;
use queue_core::{EventId, JobId, JobView, Store};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The longest wait a client may ask for, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;
/// How long a finished job's record is kept at most, and how many are kept at most (about 20 MB
/// at the longest records; at the pool's full drain rate the count, not the time, is the limit).
const KEEP_AT_MOST: Duration = Duration::from_secs(5);
const KEEP_MAX_JOBS: usize = 100_000;
/// Events with a job accepted kept at most (see [`Accepted`]); past it, those that tell nothing
/// any more are dropped.
const KEEP_MAX_EVENTS: usize = 10_000;
/// How long a deletion heard is remembered: an acceptance whose answer is handled after the
/// event's deletion was heard (it was sent before) must not make the event's jobs look sure to
/// be announced. An answer comes within the command timeout of its sending, or not at all.
const DELETIONS_KEPT: Duration = Duration::from_secs(60);

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
    /// Counts the moments since which announcements may have gone unheard: the connection
    /// failed or was made again, the listener fell behind, the subscription ended. A job
    /// accepted in an earlier epoch is not known to be heard.
    epoch: AtomicU64,
    /// Whether a job's acceptance here tells that its finishing will be heard; not with
    /// REDIS_REPLICA_ACKS, where a worker announces a batch only once replicas have it, and never
    /// when they do not (its jobs are read from Redis as before).
    follows: bool,
}

/// Taken before a job is sent to be accepted ([`Waiters::ticket`]), handed back with the job
/// accepted ([`Waiters::accepted`]).
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    sent: Instant,
}

/// Per event, a job this process had accepted while subscribed: the event's jobs from this one on
/// are announced after the subscription was in place.
#[derive(Debug, Clone, Copy)]
struct Accepted {
    seq: u64,
    ticket: Ticket,
}

#[derive(Debug, Default)]
struct Inner {
    waiting: HashMap<JobId, Vec<oneshot::Sender<JobView>>>,
    recent: HashMap<JobId, Heard>,
    /// The jobs in `recent`, oldest first, to forget them in time.
    heard: VecDeque<(Instant, JobId)>,
    /// See [`Accepted`].
    accepted: HashMap<EventId, Accepted>,
    /// When the last record forgotten was heard: a job accepted after it is heard later, and so
    /// still in `recent` if heard at all.
    forgot_upto: Option<Instant>,
    /// The events deleted lately, and when this process heard so (see [`DELETIONS_KEPT`]).
    deleted: HashMap<EventId, Instant>,
}

impl Accepted {
    /// Whether the event's jobs from this one on are still known to be heard when they finish: no
    /// announcement may have been missed since it was sent, and every record forgotten since
    /// was heard before it was sent (its jobs are heard after, so none of them was forgotten).
    fn tells(&self, epoch: u64, forgot_upto: Option<Instant>) -> bool {
        self.ticket.epoch == epoch && forgot_upto.is_none_or(|f| self.ticket.sent > f)
    }
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
    /// Not finished: its finishing will be heard, and the receiver gets it.
    Pending(oneshot::Receiver<JobView>),
}

impl Waiters {
    /// Keeps finished records for at most `job_result_ttl / 2` (and at most a few seconds);
    /// `replica_acks`: REDIS_REPLICA_ACKS is on.
    pub fn new(job_result_ttl: Duration, replica_acks: bool) -> Self {
        Self {
            inner: Mutex::default(),
            keep: KEEP_AT_MOST.min(job_result_ttl / 2),
            subscribed: std::sync::atomic::AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            follows: !replica_acks,
        }
    }

    /// To be taken just before a job is sent to Redis to be accepted: `None` when its acceptance
    /// will not tell that its finishing is heard (not subscribed; REDIS_REPLICA_ACKS).
    pub fn ticket(&self) -> Option<Ticket> {
        (self.follows && self.subscribed.load(Ordering::Acquire)).then(|| Ticket {
            epoch: self.epoch.load(Ordering::Acquire),
            sent: Instant::now(),
        })
    }

    /// `job` was accepted, sent with `ticket`: from it on, its event's jobs are announced while
    /// subscribed. Only the first such job per event is kept (with the latest ticket once the
    /// one kept no longer tells anything).
    pub fn accepted(&self, job: JobId, ticket: Option<Ticket>) {
        let Some(ticket) = ticket else {
            return;
        };
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let epoch = self.epoch.load(Ordering::Acquire);
        let forgot_upto = inner.forgot_upto;
        let told = |a: &Accepted| a.tells(epoch, forgot_upto);
        let entry = Accepted {
            seq: job.seq(),
            ticket,
        };
        if !told(&entry) {
            return;
        }
        // Sent before the event's deletion was heard: none of its jobs will be announced.
        if inner
            .deleted
            .get(&job.event())
            .is_some_and(|heard| *heard > ticket.sent)
        {
            return;
        }
        match inner.accepted.get_mut(&job.event()) {
            Some(kept) if told(kept) && kept.seq <= entry.seq => {}
            Some(kept) => *kept = entry,
            None => {
                if inner.accepted.len() >= KEEP_MAX_EVENTS {
                    inner.accepted.retain(|_, a| a.tells(epoch, forgot_upto));
                }
                inner.accepted.insert(job.event(), entry);
            }
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
        let wait = wait.filter(|_| self.subscribed.load(Ordering::Acquire));
        let woken = match self.look(store, job, wait.is_some()) {
            Looked::Finished(finished) => return Ok(Some(finished)),
            Looked::Unknown(woken) => woken,
            Looked::Pending(woken) => {
                let wait = wait.unwrap_or_default();
                return match tokio::time::timeout(wait, woken).await {
                    Ok(Ok(finished)) => Ok(Some(finished)),
                    // The deadline, or no announcement will come: as it stands now.
                    _ => store.job(job).await,
                };
            }
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
                None if wait && self.heard_when_finished(&inner, job) => {
                    return Looked::Pending(inner.register(job))
                }
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

    /// Whether `job`, not heard of, is known not to have finished: had it, it would have been
    /// heard and kept (see [`Accepted`]).
    fn heard_when_finished(&self, inner: &Inner, job: JobId) -> bool {
        let epoch = self.epoch.load(Ordering::Acquire);
        inner
            .accepted
            .get(&job.event())
            .is_some_and(|a| a.seq <= job.seq() && a.tells(epoch, inner.forgot_upto))
    }

    /// Announcements may have gone unheard from now on: what was accepted so far tells nothing.
    fn missed(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn look_in_redis(&self, job: JobId, wait: bool) -> Looked {
        match self.inner.lock() {
            Ok(mut inner) if wait => Looked::Unknown(Some(inner.register(job))),
            _ => Looked::Unknown(None),
        }
    }

    /// One message of finished jobs (of one event or several): wakes their waiters and keeps
    /// their records.
    fn finished(&self, store: &Store, message: &[u8]) {
        let events = match queue_core::wire::finished_records(message) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::warn!(error = %e, "an unreadable finished-jobs message; its waiters answer at their deadline");
                return;
            }
        };
        let message: Arc<[u8]> = Arc::from(message);
        let now = Instant::now();
        let mut woken = Vec::new();
        for (event, records) in events {
            if records.is_empty() {
                // The event was deleted (delete_event.lua): none of its jobs will be announced.
                self.event_deleted(event);
                continue;
            }
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
                .map(|record| store.parse_record(job.event(), record));
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
            inner.gone(event);
        }
    }

    /// `event` was deleted, by this process or another: its jobs will not be announced, so its
    /// waiters read them from Redis now (they are `failed`) instead of at their deadline.
    fn event_deleted(&self, event: EventId) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.gone(event);
            // Dropping their senders wakes them, with no job: they read it.
            inner.waiting.retain(|job, _| job.event() != event);
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
        // A connection that fails loses what is published until it is made again and the
        // subscription with it (fred does both).
        let mut errors = subscriber.error_rx();
        let mut reconnects = subscriber.reconnect_rx();
        // Until the subscription is in place `?wait=` reads and answers at once (see
        // `subscribed`); tried again until it is.
        let mut warned = false;
        loop {
            match subscriber.subscribe(FINISHED_CHANNEL).await {
                Ok(()) => {
                    self.subscribed.store(true, Ordering::Release);
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
                event = errors.recv() => {
                    if matches!(event, Err(RecvError::Closed)) {
                        break;
                    }
                    self.missed();
                    continue;
                }
                event = reconnects.recv() => {
                    if matches!(event, Err(RecvError::Closed)) {
                        break;
                    }
                    self.missed();
                    continue;
                }
                message = messages.recv() => message,
            };
            match message {
                Ok(message) => {
                    if let Some(payload) = message.value.as_bytes() {
                        self.finished(store, payload);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    self.missed();
                    tracing::warn!(missed, "the finished-jobs listener fell behind");
                }
                Err(RecvError::Closed) => break,
            }
        }
        self.subscribed.store(false, Ordering::Release);
        self.missed();
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

    /// `event` was deleted: the records heard of its jobs are forgotten (Redis now says they
    /// failed), what was accepted of it tells nothing, and nothing accepted of it before now
    /// will (see [`Waiters::accepted`]).
    fn gone(&mut self, event: EventId) {
        let now = Instant::now();
        self.recent.retain(|job, _| job.event() != event);
        self.accepted.remove(&event);
        self.deleted
            .retain(|_, heard| now.duration_since(*heard) < DELETIONS_KEPT);
        self.deleted.insert(event, now);
    }

    fn forget_old(&mut self, now: Instant, keep: Duration) {
        while let Some(&(at, job)) = self.heard.front() {
            if now.duration_since(at) < keep && self.heard.len() <= KEEP_MAX_JOBS {
                break;
            }
            self.heard.pop_front();
            self.forgot_upto = Some(at);
            // Only if this is the entry heard then (a job is heard once, but be sure).
            if self.recent.get(&job).is_some_and(|h| h.at == at) {
                self.recent.remove(&job);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that subscribed, with `event`'s job 1 sent for acceptance under `ticket`.
    fn subscribed() -> (Waiters, Ticket, EventId, JobId) {
        let waiters = Waiters::new(Duration::from_secs(300), false);
        waiters.subscribed.store(true, Ordering::Release);
        let ticket = waiters.ticket().expect("subscribed: a ticket");
        let event = EventId::new_random();
        let job = JobId::new(event, 1).expect("a job id");
        (waiters, ticket, event, job)
    }

    fn sure_to_be_heard(waiters: &Waiters, job: JobId) -> bool {
        let inner = waiters.inner.lock().expect("the lock");
        waiters.heard_when_finished(&inner, job)
    }

    #[test]
    fn a_job_accepted_while_subscribed_is_sure_to_be_heard() {
        let (waiters, ticket, _, job) = subscribed();
        waiters.accepted(job, Some(ticket));
        assert!(sure_to_be_heard(&waiters, job));
    }

    #[test]
    fn an_acceptance_answered_after_its_events_deletion_was_heard_tells_nothing() {
        let (waiters, ticket, event, job) = subscribed();
        // The job was accepted, then the event deleted; this process hears the deletion before
        // it handles the acceptance's answer.
        waiters.event_deleted(event);
        waiters.accepted(job, Some(ticket));
        assert!(
            !sure_to_be_heard(&waiters, job),
            "a wait on it would sit to its deadline"
        );
        // A deletion by this process itself counts the same.
        let (waiters, ticket, event, job) = subscribed();
        waiters.forget_event(event);
        waiters.accepted(job, Some(ticket));
        assert!(!sure_to_be_heard(&waiters, job));
    }

    #[test]
    fn a_deletion_heard_before_a_ticket_was_taken_does_not_void_it() {
        let (waiters, _, event, job) = subscribed();
        waiters.event_deleted(event);
        std::thread::sleep(Duration::from_millis(2));
        let later = waiters.ticket().expect("a ticket");
        waiters.accepted(job, Some(later));
        assert!(sure_to_be_heard(&waiters, job));
    }
}
