//! The connection to Redis and the handle every operation hangs off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::clients::{Client, Pool, SubscriberClient};
use fred::interfaces::ClientLike;
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
    /// When this process last recorded an enqueue hint per event (see `queue.rs`).
    pub(crate) hinted: Mutex<HashMap<EventId, Instant>>,
}

impl Store {
    /// Connects a pool to REDIS_URL. Returns once connected, or after a few seconds without Redis
    /// (the pool keeps reconnecting in the background); fails only on a malformed URL.
    pub async fn connect(settings: &Settings) -> Result<Self> {
        let builder = builder(&settings.redis)?;
        let db = builder.get_config().and_then(|c| c.database).unwrap_or(0);
        let pool = builder.build_pool(settings.redis.pool_size)?;
        connect_and_wait(&pool).await;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                builder,
                db,
                rules: settings.reservations,
                queue: settings.queue,
                workers: settings.workers.clone(),
                hinted: Mutex::new(HashMap::new()),
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

    pub(crate) fn client(&self) -> &Client {
        self.inner.pool.next()
    }

    /// Whether Redis answers a PING now.
    pub async fn ping(&self) -> Result<()> {
        self.client().ping::<()>(None).await?;
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
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 1000, 2));
    Ok(builder)
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
