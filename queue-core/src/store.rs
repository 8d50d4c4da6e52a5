//! The connections to Redis: the handle every operation hangs off, with the settings the
//! operations call the scripts with. It holds no state of the operations themselves (the enqueue
//! batches are [`crate::Enqueuer`]'s).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use fred::clients::{Client, Pool, SubscriberClient};
use fred::error::ErrorKind;
use fred::interfaces::{ClientLike, EventInterface};
use fred::types::config::{Config, ReconnectPolicy, Server, ServerConfig};
use fred::types::{Builder, ClusterHash, CustomCommand};

use crate::error::{Error, Result};
use crate::settings::{
    QueueSettings, RedisSettings, ReservationSettings, Settings, WorkerSettings,
};

/// How long startup waits for a first connection before going on without one (requests then get
/// 503 until Redis answers).
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// A handle on the service's data in Redis. Cheap to clone; every clone shares one connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// What this pool shares with its siblings.
    common: Arc<Common>,
    pool: Pool,
    /// Per client of the pool, whether its connection dropped (see [`Link`]).
    links: Vec<Arc<Link>>,
    /// Round-robin position over the pool.
    next: AtomicUsize,
}

/// The settings and connection recipe of the pools one process holds to one Redis (see
/// [`Store::sibling`]), and the pools themselves.
#[derive(Debug)]
pub(crate) struct Common {
    builder: Builder,
    db: u8,
    rules: ReservationSettings,
    queue: QueueSettings,
    workers: WorkerSettings,
    /// REDIS_REPLICA_ACKS and how long to wait for them.
    replica_acks: u32,
    replica_ack_timeout_ms: u64,
    /// Whether REDIS_URL names a cluster (`redis-cluster://`, checked against the server's
    /// `cluster_enabled` at startup): then no script may touch keys of two slots, and the
    /// shards' keys are written by commands of their own.
    clustered: bool,
    /// After an outage each pool reconnects on its own backoff, so one may be back a step (up to
    /// the 1 s cap) before another; a request whose own pool has no connection up borrows a
    /// sibling's rather than answer 503 after another request of the process has succeeded.
    siblings: RwLock<Vec<Weak<Inner>>>,
}

impl Store {
    /// Connects a pool to REDIS_URL. Returns once connected, or after a few seconds without Redis
    /// (the pool keeps reconnecting in the background); fails only on a malformed URL.
    pub async fn connect(settings: &Settings) -> Result<Self> {
        let builder = builder(&settings.redis)?;
        check_mode(&builder, &settings.redis).await?;
        let db = builder.get_config().and_then(|c| c.database).unwrap_or(0);
        let clustered = builder
            .get_config()
            .is_some_and(|c| c.server.is_clustered());
        let common = Common {
            builder,
            db,
            clustered,
            rules: settings.reservations,
            queue: settings.queue,
            workers: settings.workers.clone(),
            replica_acks: settings.redis.replica_acks,
            replica_ack_timeout_ms: settings.redis.replica_ack_timeout_ms,
            siblings: RwLock::default(),
        };
        Self::open(Arc::new(common), settings.redis.pool_size).await
    }

    /// Another pool of `pool_size` connections to the same Redis with the same settings, for a
    /// thread that should send its commands on connections of its own (the API's HTTP workers).
    /// While none of its own connections is up it sends on a sibling's that has reconnected
    /// since.
    pub async fn sibling(&self, pool_size: usize) -> Result<Self> {
        Self::open(self.inner.common.clone(), pool_size).await
    }

    async fn open(common: Arc<Common>, pool_size: usize) -> Result<Self> {
        let pool = common.builder.build_pool(pool_size.max(1))?;
        let links: Vec<Arc<Link>> = pool.clients().iter().map(|_| Arc::default()).collect();
        // On a cluster a dropped connection is one node's: the pool's clients still reach the
        // other primaries, and fred routes each command to its slot's node, so nothing is
        // marked down (a command for the lost node's slots fails on its own, within the command
        // timeout, while fred follows the failover).
        if !common.clustered {
            for (client, link) in pool.clients().iter().zip(&links) {
                Link::watch(client, link, &links);
            }
        }
        connect_and_wait(&pool).await;
        let inner = Arc::new(Inner {
            common,
            pool,
            links,
            next: AtomicUsize::new(0),
        });
        if let Ok(mut siblings) = inner.common.siblings.write() {
            siblings.retain(|sibling| sibling.strong_count() > 0);
            siblings.push(Arc::downgrade(&inner));
        }
        Ok(Self { inner })
    }

    /// A client of its own, for a consumer that blocks (BLPOP): a blocked connection delays every
    /// other command sent on it. Its command timeout is left to the blocking call.
    pub async fn dedicated_client(&self) -> Result<Client> {
        let mut builder = self.inner.common.builder.clone();
        builder.with_performance_config(|p| p.default_command_timeout = Duration::ZERO);
        let client = builder.build()?;
        connect_and_wait(&client).await;
        Ok(client)
    }

    /// A client for pub/sub that re-subscribes by itself after a reconnect.
    pub async fn subscriber(&self) -> Result<SubscriberClient> {
        let client = self.inner.common.builder.build_subscriber_client()?;
        connect_and_wait(&client).await;
        Ok(client)
    }

    /// On a cluster, the primaries as this process's routing table has them now (fred follows
    /// a failover or a resharding by itself and updates it); on a single Redis, that one.
    pub fn primaries(&self) -> Result<Vec<Server>> {
        let client = self.client()?;
        if !self.clustered() {
            return Ok(client.client_config().server.hosts());
        }
        Ok(client
            .split_cluster()?
            .iter()
            .flat_map(|node| node.client_config().server.hosts())
            .collect())
    }

    /// The settings of the pools, for one node only (a primary of a cluster, whose keyspace
    /// notifications and `INFO` are its own).
    fn node_builder(&self, node: &Server) -> Builder {
        let mut builder = self.inner.common.builder.clone();
        builder.with_config(|c| {
            c.server = ServerConfig::Centralized {
                server: node.clone(),
            }
        });
        builder
    }

    /// A client of one node, connected.
    pub async fn node_client(&self, node: &Server) -> Result<Client> {
        let client = self.node_builder(node).build()?;
        connect_and_wait(&client).await;
        Ok(client)
    }

    /// A pub/sub client of one node (keyspace notifications are per node), re-subscribing by
    /// itself after a reconnect.
    pub async fn node_subscriber(&self, node: &Server) -> Result<SubscriberClient> {
        let client = self.node_builder(node).build_subscriber_client()?;
        connect_and_wait(&client).await;
        Ok(client)
    }

    /// The database number of REDIS_URL (keyspace notifications are per database).
    pub fn database(&self) -> u8 {
        self.inner.common.db
    }

    /// The rules of holding and reserving.
    pub(crate) fn rules(&self) -> &ReservationSettings {
        &self.inner.common.rules
    }

    pub(crate) fn queue(&self) -> &QueueSettings {
        &self.inner.common.queue
    }

    pub(crate) fn workers(&self) -> &WorkerSettings {
        &self.inner.common.workers
    }

    /// Whether writes wait for replicas (REDIS_REPLICA_ACKS > 0) before they are told.
    pub(crate) fn waits_for_replicas(&self) -> bool {
        self.inner.common.replica_acks > 0
    }

    /// After a write on `client` to a key of `slot`: waits until REDIS_REPLICA_ACKS replicas
    /// have it (WAIT, on the connection the write went out on: the one to the slot's primary),
    /// at once when that is 0. Fewer acknowledgements within the timeout is an error: the write
    /// is on the primary only, and a failover could undo it.
    pub(crate) async fn replicated(&self, client: &Client, slot: u16) -> Result<()> {
        let (acks, timeout) = (
            self.inner.common.replica_acks,
            self.inner.common.replica_ack_timeout_ms,
        );
        if acks == 0 {
            return Ok(());
        }
        let wait = CustomCommand::new_static("WAIT", ClusterHash::Custom(slot), false);
        let got: i64 = client
            .custom(wait, vec![acks.to_string(), timeout.to_string()])
            .await?;
        if got < i64::from(acks) {
            return Err(Error::Unavailable(fred::error::Error::new(
                ErrorKind::Unknown,
                format!(
                    "NOREPLICAS {got} of the {acks} replicas REDIS_REPLICA_ACKS asks for \
                     acknowledged the write within {timeout} ms"
                ),
            )));
        }
        Ok(())
    }

    /// Whether REDIS_URL names a Redis Cluster.
    pub fn clustered(&self) -> bool {
        self.inner.common.clustered
    }

    /// A client whose connection is up, or at once the error of Redis being down: a command sent
    /// on a dropped connection would wait out the command timeout, and the API must answer 503
    /// without a hang while the pools reconnect by themselves. The pool's own clients come first;
    /// only while none of them is up is a sibling pool's tried.
    pub(crate) fn client(&self) -> Result<Client> {
        if let Some(client) = self.inner.connected(None) {
            return Ok(client.clone());
        }
        // Only a connection made since this pool saw its own drop: another pool may not have
        // handled the same drop yet, and a command on its dead connection would hang.
        let dropped = self.inner.dropped_at();
        let siblings = self
            .inner
            .common
            .siblings
            .read()
            .map_err(|_| Error::Poisoned("the sibling pools"))?;
        siblings
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|sibling| !Arc::ptr_eq(sibling, &self.inner))
            .find_map(|sibling| sibling.connected(dropped).cloned())
            .ok_or_else(Error::not_connected)
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

impl Inner {
    /// One of this pool's clients whose connection is up, round-robin; with `made_after`, only
    /// one whose connection was made (or found answering) after that.
    fn connected(&self, made_after: Option<Instant>) -> Option<&Client> {
        let clients = self.pool.clients();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..clients.len())
            .map(|i| (start + i) % clients.len())
            .filter(|&n| made_after.is_none_or(|at| self.links[n].up_after(at)))
            .find(|&n| clients[n].is_connected() && self.links[n].is_up(&clients[n]))
            .map(|n| &clients[n])
    }

    /// When this pool last saw one of its connections drop.
    fn dropped_at(&self) -> Option<Instant> {
        self.links
            .iter()
            .filter_map(|link| read(&link.down_since))
            .max()
    }
}

/// How long the startup check of the server's mode waits for one seed to answer.
const MODE_CHECK_WAIT: Duration = Duration::from_secs(3);

/// Checks that REDIS_URL's kind (one Redis, or a cluster) is the server's (`INFO cluster`:
/// `cluster_enabled`), asking the seeds in turn until one answers: a cluster client would only
/// keep retrying against a lone server, and a plain client meets a MOVED for most keys of a
/// cluster. A mismatch stops startup with the URL to write instead. When no seed answers the
/// check is skipped (the service starts without Redis and reconnects), saying so.
async fn check_mode(builder: &Builder, settings: &RedisSettings) -> Result<()> {
    let Some(config) = builder.get_config() else {
        return Ok(());
    };
    let clustered = config.server.is_clustered();
    for seed in config.server.hosts() {
        let mut probe = config.clone();
        probe.server = ServerConfig::Centralized {
            server: seed.clone(),
        };
        probe.fail_fast = true;
        let client = Builder::from_config(probe)
            .with_connection_config(|c| c.connection_timeout = MODE_CHECK_WAIT)
            .with_performance_config(|p| p.default_command_timeout = MODE_CHECK_WAIT)
            .build()?;
        client.connect();
        let answered = tokio::time::timeout(MODE_CHECK_WAIT, client.wait_for_connect()).await;
        if !matches!(answered, Ok(Ok(()))) {
            let _ = client.quit().await;
            continue;
        }
        let info: std::result::Result<String, _> = client
            .custom(
                CustomCommand::new_static("INFO", ClusterHash::Random, false),
                vec!["cluster"],
            )
            .await;
        let nodes: Option<String> = client
            .custom(
                CustomCommand::new_static("CLUSTER", ClusterHash::Random, false),
                vec!["NODES"],
            )
            .await
            .ok();
        let _ = client.quit().await;
        let Ok(info) = info else {
            continue;
        };
        let enabled = info
            .lines()
            .any(|line| line.trim_end() == "cluster_enabled:1");
        let at = format!("{}:{}", seed.host, seed.port);
        return match (clustered, enabled) {
            (false, true) => Err(Error::Misconfigured(format!(
                "REDIS_URL is {}:// but the server at {at} is a Redis Cluster node \
                 (INFO cluster: cluster_enabled:1): write {}",
                scheme_of(&settings.url),
                cluster_url_from(&settings.url, &at, nodes.as_deref())
            ))),
            (true, false) => Err(Error::Misconfigured(format!(
                "REDIS_URL is {}:// but the server at {at} is not a Redis Cluster node \
                 (INFO cluster: cluster_enabled:0): write {}://{at} (or point REDIS_URL at \
                 a cluster's nodes)",
                scheme_of(&settings.url),
                scheme_of(&settings.url).trim_end_matches("-cluster")
            ))),
            _ => Ok(()),
        };
    }
    tracing::warn!(
        "no Redis answers at REDIS_URL yet: whether it is a cluster is not checked; carrying on"
    );
    Ok(())
}

/// The scheme of a URL (`redis`, `rediss-cluster`).
fn scheme_of(url: &str) -> &str {
    url.split_once("://").map_or(url, |(scheme, _)| scheme)
}

/// The cluster URL to write for a plain URL that named a cluster node at `at`: the cluster's
/// primaries (from `CLUSTER NODES`) as seeds, or only `at` when they are not known.
fn cluster_url_from(url: &str, at: &str, nodes: Option<&str>) -> String {
    let mut primaries: Vec<String> = nodes
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            let address = address.split('@').next()?;
            (flags.contains("master") && !flags.contains("fail")).then(|| address.to_owned())
        })
        .collect();
    primaries.sort();
    primaries.retain(|p| p != at);
    let seeds: Vec<String> = primaries.iter().map(|p| format!("node={p}")).collect();
    let query = if seeds.is_empty() {
        String::new()
    } else {
        format!("?{}", seeds.join("&"))
    };
    format!("{}-cluster://{at}{query}", scheme_of(url))
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
    /// When fred last announced a new connection, or a PING found a link marked down answering.
    up_since: Mutex<Option<Instant>>,
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
            on_reconnect.mark_up();
            async { Ok(()) }
        });
    }

    fn mark_up(&self) {
        if let Ok(mut since) = self.up_since.lock() {
            *since = Some(Instant::now());
        }
        self.down.store(false, Ordering::Release);
    }

    /// Whether this link came up after `at`.
    fn up_after(&self, at: Instant) -> bool {
        read(&self.up_since).is_some_and(|up| up > at)
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
        let stale = read(&self.down_since).is_some_and(|at| at.elapsed() > RECHECK_AFTER);
        if stale && !self.probing.swap(true, Ordering::AcqRel) {
            let (link, client) = (self.clone(), client.clone());
            tokio::spawn(async move {
                let answer = tokio::time::timeout(PING_WITHIN, client.ping::<()>(None)).await;
                if matches!(answer, Ok(Ok(()))) {
                    link.mark_up();
                } else {
                    link.mark_down();
                }
                link.probing.store(false, Ordering::Release);
            });
        }
        false
    }
}

fn read(at: &Mutex<Option<Instant>>) -> Option<Instant> {
    at.lock().ok().and_then(|at| *at)
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
