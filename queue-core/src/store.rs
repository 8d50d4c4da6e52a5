//! The connection to Redis and the handle every operation hangs off.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::clients::{Client, Pool, SubscriberClient};
use fred::error::ErrorKind;
use fred::interfaces::{ClientLike, EventInterface};
use fred::types::config::{Config, ReconnectPolicy};
use fred::types::Builder;

use crate::error::Result;
use crate::ids::EventId;
use crate::settings::{
    QueueSettings, RedisSettings, ReservationSettings, Settings, WorkerSettings,
};

/// How long startup waits for a first connection before going on without one (requests then get
/// 503 until Redis answers).
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// A handle on the service's data in Redis. Cheap to clone; every clone shares one connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) pool: Pool,
    builder: Builder,
    pub(crate) db: u8,
    pub(crate) rules: ReservationSettings,
    pub(crate) queue: QueueSettings,
    pub(crate) workers: WorkerSettings,
    /// Whether REDIS_URL names a cluster: then no script may touch keys of two slots, and the
    /// `{sys}` keys are written by separate commands.
    pub(crate) clustered: bool,
    /// Per client of the pool, whether its connection dropped (see [`Link`]).
    links: Vec<Arc<Link>>,
    /// Round-robin position over the pool.
    next: AtomicUsize,
    /// When this process last recorded an enqueue hint per event (see `queue.rs`).
    pub(crate) hinted: Mutex<HashMap<EventId, Instant>>,
    /// Jobs waiting to be sent to Redis in the next batch of their event (see `enqueue.rs`).
    pub(crate) outbox: crate::enqueue::Outbox,
}

impl Store {
    /// Connects a pool to REDIS_URL. Returns once connected, or after a few seconds without Redis
    /// (the pool keeps reconnecting in the background); fails only on a malformed URL.
    pub async fn connect(settings: &Settings) -> Result<Self> {
        let builder = builder(&settings.redis)?;
        let db = builder.get_config().and_then(|c| c.database).unwrap_or(0);
        let clustered = builder
            .get_config()
            .is_some_and(|c| c.server.is_clustered());
        let pool = builder.build_pool(settings.redis.pool_size)?;
        let links: Vec<Arc<Link>> = pool.clients().iter().map(|_| Arc::default()).collect();
        for (client, link) in pool.clients().iter().zip(&links) {
            Link::watch(client, link, &links);
        }
        connect_and_wait(&pool).await;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                links,
                next: AtomicUsize::new(0),
                builder,
                db,
                clustered,
                rules: settings.reservations,
                queue: settings.queue,
                workers: settings.workers.clone(),
                hinted: Mutex::new(HashMap::new()),
                outbox: Default::default(),
            }),
        })
    }

    /// A client of its own, for a consumer that blocks (BLPOP): a blocked connection delays every
    /// other command sent on it. Its command timeout is left to the blocking call.
    pub async fn dedicated_client(&self) -> Result<Client> {
        let mut builder = self.inner.builder.clone();
        builder.with_performance_config(|p| p.default_command_timeout = Duration::ZERO);
        let client = builder.build()?;
        connect_and_wait(&client).await;
        Ok(client)
    }

    /// A client for pub/sub that re-subscribes by itself after a reconnect.
    pub async fn subscriber(&self) -> Result<SubscriberClient> {
        let client = self.inner.builder.build_subscriber_client()?;
        connect_and_wait(&client).await;
        Ok(client)
    }

    /// The database number of REDIS_URL (keyspace notifications are per database).
    pub fn database(&self) -> u8 {
        self.inner.db
    }

    pub fn rules(&self) -> ReservationSettings {
        self.inner.rules
    }

    pub fn queue_settings(&self) -> QueueSettings {
        self.inner.queue
    }

    /// A client of the pool whose connection is up, or at once the error of Redis being down:
    /// a command sent on a dropped connection would wait out the command timeout, and the API
    /// must answer 503 without a hang while the pool reconnects by itself.
    pub(crate) fn client(&self) -> Result<&Client> {
        let clients = self.inner.pool.clients();
        let links = &self.inner.links;
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..clients.len() {
            let n = (start + i) % clients.len();
            if clients[n].is_connected() && links[n].is_up(&clients[n]) {
                return Ok(&clients[n]);
            }
        }
        Err(not_connected())
    }

    /// Whether Redis answers a PING now.
    pub async fn ping(&self) -> Result<()> {
        self.client()?.ping::<()>(None).await?;
        Ok(())
    }

    /// Closes the pool's connections.
    pub async fn quit(&self) {
        let _ = self.inner.pool.quit().await;
    }
}

fn builder(settings: &RedisSettings) -> Result<Builder> {
    let mut config = Config::from_url(&settings.url)?;
    // Start even when Redis is not up yet, and keep reconnecting; requests fail fast meanwhile.
    config.fail_fast = false;
    let mut builder = Builder::from_config(config);
    let timeout = Duration::from_millis(settings.command_timeout_ms);
    builder
        .with_performance_config(|p| p.default_command_timeout = timeout)
        .with_connection_config(|c| {
            // A command is sent once: replaying a script after a dropped connection could accept
            // a job twice. The caller sees the error and decides (the API answers 503).
            c.max_command_attempts = 1;
            c.connection_timeout = timeout;
            c.internal_command_timeout = timeout;
            // Commands of several tasks share a connection: without TCP_NODELAY, a command
            // written while the previous one is unacknowledged waits for that ACK (Nagle).
            c.tcp.nodelay = Some(true);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 1000, 2));
    Ok(builder)
}

/// Whether one pooled connection is usable. fred notices a dropped connection at once (its reader
/// broadcasts an error) but reports the client Connected until its reconnect attempt starts, and a
/// command sent in between waits out the command timeout. So a dropped link is marked down until
/// fred announces a new connection; should the two announcements be handled out of order, a PING
/// a little later finds the link up again.
#[derive(Debug, Default)]
struct Link {
    down: AtomicBool,
    probing: AtomicBool,
    down_since: Mutex<Option<Instant>>,
}

/// How long a link stays marked down, with fred reporting it connected, before a PING checks it.
const RECHECK_AFTER: Duration = Duration::from_millis(250);
/// How long that PING may take (a slow Redis is not a dead one).
const PING_WITHIN: Duration = Duration::from_secs(1);

impl Link {
    /// Follows `client`'s connection. A dropped connection marks every link of the pool down,
    /// not just its own: when Redis goes away they all drop, and the others' announcements may
    /// come a little later than the next request. Each link is up again on its own reconnect,
    /// or when a PING finds it answering (a single dropped connection costs the others at most
    /// [`RECHECK_AFTER`] of 503s).
    fn watch(client: &Client, link: &Arc<Self>, all: &[Arc<Self>]) {
        let pool: Vec<Arc<Self>> = all.to_vec();
        client.on_error(move |(error, _)| {
            if matches!(
                error.kind(),
                ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Timeout
            ) {
                for link in &pool {
                    link.mark_down();
                }
            }
            async { Ok(()) }
        });
        let on_reconnect = link.clone();
        client.on_reconnect(move |_| {
            on_reconnect.down.store(false, Ordering::Release);
            async { Ok(()) }
        });
    }

    fn mark_down(&self) {
        if let Ok(mut since) = self.down_since.lock() {
            *since = Some(Instant::now());
        }
        self.down.store(true, Ordering::Release);
    }

    /// Whether commands may go out on `client` now.
    fn is_up(self: &Arc<Self>, client: &Client) -> bool {
        if !self.down.load(Ordering::Acquire) {
            return true;
        }
        let stale = self
            .down_since
            .lock()
            .map(|since| since.is_some_and(|at| at.elapsed() > RECHECK_AFTER))
            .unwrap_or(false);
        if stale && !self.probing.swap(true, Ordering::AcqRel) {
            let (link, client) = (self.clone(), client.clone());
            tokio::spawn(async move {
                let answer = tokio::time::timeout(PING_WITHIN, client.ping::<()>(None)).await;
                if matches!(answer, Ok(Ok(()))) {
                    link.down.store(false, Ordering::Release);
                } else {
                    link.mark_down();
                }
                link.probing.store(false, Ordering::Release);
            });
        }
        false
    }
}

/// The error of a command not sent because the connection is down.
pub(crate) fn not_connected() -> crate::Error {
    crate::Error::Unavailable(fred::error::Error::new(
        fred::error::ErrorKind::IO,
        "not connected to Redis",
    ))
}

async fn connect_and_wait<C: ClientLike>(client: &C) {
    client.connect();
    if tokio::time::timeout(CONNECT_WAIT, client.wait_for_connect())
        .await
        .is_err()
    {
        tracing::warn!("Redis does not answer yet; carrying on and reconnecting in the background");
    }
}
