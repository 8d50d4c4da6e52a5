//! Clients waiting on jobs (`GET /seats/job/{id}/status?wait=N`). One pub/sub subscription per
//! API process hears every batch the workers finish (`process.lua` publishes the jobs' records)
//! and hands each waiter its job as it finished: no waiting request polls Redis, and none reads
//! its job again once woken.

use std::collections::HashMap;
use std::sync::Mutex;

use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use queue_core::keys::FINISHED_CHANNEL;
use queue_core::{JobId, JobView, Store};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The longest wait a client may ask for, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;

#[derive(Debug, Default)]
pub struct Waiters {
    waiting: Mutex<HashMap<JobId, Vec<oneshot::Sender<JobView>>>>,
}

impl Waiters {
    /// Registers interest in `job` finishing; the receiver gets the job as it finished. Register
    /// before reading the job's status, so that a finish between the read and the wait is not
    /// missed.
    pub fn register(&self, job: JobId) -> oneshot::Receiver<JobView> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            // Waiters whose client gave up leave closed senders behind; drop them now and then.
            if waiting.len() > 10_000 {
                waiting.retain(|_, senders| {
                    senders.retain(|s| !s.is_closed());
                    !senders.is_empty()
                });
            }
            waiting.entry(job).or_default().push(tx);
        }
        rx
    }

    fn finished(&self, store: &Store, message: &[u8]) {
        let Ok(mut waiting) = self.waiting.lock() else {
            return;
        };
        let jobs = match store.finished_jobs(message, |id| waiting.contains_key(&id)) {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "an unreadable finished-jobs message; its waiters answer at their deadline");
                return;
            }
        };
        for job in jobs {
            for sender in waiting.remove(&job.id).unwrap_or_default() {
                let _ = sender.send(job.clone());
            }
        }
    }

    /// Subscribes to the finished-jobs channel and wakes waiters until `shutdown`.
    pub async fn listen(&self, store: &Store, shutdown: CancellationToken) {
        let subscriber = match store.subscriber().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no finished-jobs listener: ?wait= answers at its deadline");
                return;
            }
        };
        let _resubscribe = subscriber.manage_subscriptions();
        if let Err(e) = subscriber.subscribe(FINISHED_CHANNEL).await {
            tracing::warn!(error = %e, "cannot subscribe to finished jobs");
        }
        let mut messages = subscriber.message_rx();
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
        let _ = subscriber.quit().await;
    }
}
