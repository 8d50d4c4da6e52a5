//! The connections to Redis: the handle every operation hangs off, with the settings the
//! operations call the scripts with. It holds no state of the operations themselves (the enqueue
//! batches are [`crate::Enqueuer`]'s). Which connection a command goes out on is
//! [`crate::routing`]'s.

use std::future::Future;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use fred::clients::{Client, SubscriberClient};
use fred::error::ErrorKind;
use fred::interfaces::ClientLike;
use fred::types::config::{Config, ReconnectPolicy, Server, ServerConfig};
use fred::types::scripts::Script;
use fred::types::{Builder, ClusterHash, CustomCommand, Value};

use crate::error::{ClusterError, Error, Result};
use crate::ids::EventId;
use crate::keys::{self, slot_of, slot_of_event, Shard};
use crate::reply::Reply;
use crate::routing::{
    connect_and_wait, node_builder, unreachable, unrouted, NodePool, Routes, CONNECT_WAIT,
};
use crate::scripts;
use crate::settings::{
    QueueSettings, RedisSettings, ReservationSettings, Settings, WorkerSettings,
};

/// How many `MOVED` redirections one command follows before its caller is answered 503 (a
/// resharding moves a slot once; more means the cluster is changing under the command).
const MAX_REDIRECTIONS: usize = 5;

/// A handle on the service's data in Redis. Cheap to clone; every clone shares one set of
/// connections.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// What this handle shares with its siblings.
    common: Arc<Common>,
    links: Links,
}

/// The connections of one handle.
#[derive(Debug)]
enum Links {
    /// One Redis: one pool.
    One(Arc<NodePool>),
    /// A Redis Cluster: a pool per primary, and the routing of slots to them.
    Cluster(Arc<Routes>),
}

/// The settings and connection recipe of the handles one process holds to one Redis (see
/// [`Store::sibling`]), and on one Redis the handles' pools themselves.
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
    /// One Redis: after an outage each pool reconnects on its own backoff, so one may be back a
    /// step (up to the 1 s cap) before another; a request whose own pool has no connection up
    /// borrows a sibling's rather than answer 503 after another request of the process has
    /// succeeded.
    siblings: RwLock<Vec<Weak<NodePool>>>,
}

impl Store {
    /// Connects to REDIS_URL. Returns once connected, or after a few seconds without Redis
    /// (the connections keep being retried in the background); fails only on a malformed URL
    /// or one of the wrong kind for the server.
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

    /// Another handle with connections of its own (`pool_size` to each node) to the same Redis
    /// with the same settings, for a thread that should send its commands on connections of its
    /// own (the API's HTTP workers). On one Redis, while none of its own connections is up it
    /// sends on a sibling's that has reconnected since.
    pub async fn sibling(&self, pool_size: usize) -> Result<Self> {
        Self::open(self.inner.common.clone(), pool_size).await
    }

    async fn open(common: Arc<Common>, pool_size: usize) -> Result<Self> {
        let links = if common.clustered {
            Links::Cluster(Routes::connect(common.builder.clone(), pool_size).await)
        } else {
            let pool = NodePool::open(&common.builder, pool_size, CONNECT_WAIT).await?;
            if let Ok(mut siblings) = common.siblings.write() {
                siblings.retain(|sibling| sibling.strong_count() > 0);
                siblings.push(Arc::downgrade(&pool));
            }
            Links::One(pool)
        };
        Ok(Self {
            inner: Arc::new(Inner { common, links }),
        })
    }

    /// A client of its own, for a consumer that blocks (BLPOP) on one Redis: a blocked
    /// connection delays every other command sent on it. Its command timeout is left to the
    /// blocking call. On a cluster, see [`Store::dedicated_client_at`].
    pub async fn dedicated_client(&self) -> Result<Client> {
        let mut builder = self.inner.common.builder.clone();
        builder.with_performance_config(|p| p.default_command_timeout = Duration::ZERO);
        let client = builder.build()?;
        connect_and_wait(&client).await;
        Ok(client)
    }

    /// On a cluster, a client of its own to the primary of `slot` as the routing has it now
    /// (see [`Store::primary_of`] to notice that it moved), for a consumer that blocks.
    pub async fn dedicated_client_at(&self, slot: u16) -> Result<(Server, Client)> {
        let Some(node) = self.primary_of(slot) else {
            return Err(unrouted(slot));
        };
        let mut builder = self.node_builder(&node);
        builder.with_performance_config(|p| p.default_command_timeout = Duration::ZERO);
        let client = builder.build()?;
        connect_and_wait(&client).await;
        Ok((node, client))
    }

    /// On a cluster, the primary that owns `slot` now; on one Redis, that one.
    pub fn primary_of(&self, slot: u16) -> Option<Server> {
        match &self.inner.links {
            Links::One(_) => self
                .inner
                .common
                .builder
                .get_config()?
                .server
                .hosts()
                .into_iter()
                .next(),
            Links::Cluster(routes) => routes.server(slot),
        }
    }

    /// The shard that `event`'s bookkeeping (ready tokens, hints, sweep schedule) goes to: on one
    /// Redis its slot range's ([`Shard::of`]); on a cluster one whose keys sit on the event's own
    /// primary as the routing has it now, so that a primary that is down holds up its own events
    /// alone. Processes whose tables differ for a moment may pick different shards for one
    /// event: every reader takes every shard, and a token means the same in any list.
    pub fn shard_of(&self, event: EventId) -> Shard {
        match &self.inner.links {
            Links::One(_) => Shard::of(event),
            Links::Cluster(routes) => routes.shard_for(slot_of(&event.to_string())),
        }
    }

    /// A client for pub/sub that re-subscribes by itself after a reconnect.
    pub async fn subscriber(&self) -> Result<SubscriberClient> {
        let client = self.inner.common.builder.build_subscriber_client()?;
        connect_and_wait(&client).await;
        Ok(client)
    }

    /// On a cluster, the primaries as this process's routing has them now (it follows a
    /// failover or a resharding by itself); on a single Redis, that one.
    pub fn primaries(&self) -> Result<Vec<Server>> {
        Ok(match &self.inner.links {
            Links::One(_) => self
                .inner
                .common
                .builder
                .get_config()
                .map(|c| c.server.hosts())
                .unwrap_or_default(),
            Links::Cluster(routes) => routes.primaries().into_iter().map(|(s, _)| s).collect(),
        })
    }

    /// A connected client of each primary (on one Redis, of that one), for what is per node
    /// (`INFO`, `CONFIG`). A primary with no connection up is an error.
    pub(crate) fn primary_clients(&self) -> Result<Vec<Client>> {
        match &self.inner.links {
            Links::One(_) => Ok(vec![self.client_at(0)?]),
            Links::Cluster(routes) => routes
                .primaries()
                .iter()
                .map(|(server, pool)| {
                    pool.connected(None).cloned().ok_or_else(|| {
                        routes.wake();
                        unreachable(server)
                    })
                })
                .collect(),
        }
    }

    /// The settings of the connections, for one node only (a primary of a cluster, whose
    /// keyspace notifications and `INFO` are its own).
    fn node_builder(&self, node: &Server) -> Builder {
        node_builder(&self.inner.common.builder, node)
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
    pub fn waits_for_replicas(&self) -> bool {
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

    /// REDIS_REPLICA_ACKS: before what a read on `client` found is told, makes sure the
    /// replicas have it, at once when acks are off. A worker's write is on the primary a moment
    /// before its own WAIT; read in between, a result or a seat change could be told that a
    /// failover would undo. So the read's connection writes a key of its own (`fence`, of the
    /// read's slot, expiring in a second, `lua/fence.lua`, which Redis takes even when full) and
    /// WAITs for it: replicas acknowledge the primary's
    /// writes in order, so once they have the fence they have everything written before it.
    /// Too few acknowledgements is an error, as for a write (the caller answers 503).
    pub(crate) async fn fenced(&self, client: &Client, event: EventId) -> Result<()> {
        if !self.waits_for_replicas() {
            return Ok(());
        }
        let fence = keys::fence(event);
        let slot = slot_of(&fence);
        scripts::run(&scripts::FENCE, client, vec![fence], Vec::new()).await?;
        self.replicated(client, slot).await
    }

    /// Whether REDIS_URL names a Redis Cluster.
    pub fn clustered(&self) -> bool {
        self.inner.common.clustered
    }

    /// A client for a command on `key`: see [`Store::client_at`].
    pub(crate) fn client_for(&self, key: &str) -> Result<Client> {
        match &self.inner.links {
            Links::One(_) => self.client_at(0),
            Links::Cluster(_) => self.client_at(slot_of(key)),
        }
    }

    /// A client for a command on `event`'s keys: see [`Store::client_at`]. On one Redis the
    /// event's slot, a CRC16 of its id, is not worked out: it would not be used.
    pub(crate) fn client_for_event(&self, event: EventId) -> Result<Client> {
        match &self.inner.links {
            Links::One(_) => self.client_at(0),
            Links::Cluster(_) => self.client_at(slot_of_event(event)),
        }
    }

    /// A client whose connection is up, to the node of hash `slot` (on one Redis, the one), or
    /// at once the error of that node being unreachable: a command sent on a dropped connection
    /// would wait out the command timeout, and the API must answer 503 without a hang while the
    /// connections come back by themselves. On one Redis the handle's own pool comes first; only
    /// while none of its connections is up is a sibling pool's tried.
    pub(crate) fn client_at(&self, slot: u16) -> Result<Client> {
        let pool = match &self.inner.links {
            Links::Cluster(routes) => return routes.client(slot),
            Links::One(pool) => pool,
        };
        if let Some(client) = pool.connected(None) {
            return Ok(client.clone());
        }
        // Only a connection made since this pool saw its own drop: another pool may not have
        // handled the same drop yet, and a command on its dead connection would hang.
        let dropped = pool.dropped_at();
        let siblings = self
            .inner
            .common
            .siblings
            .read()
            .map_err(|_| Error::Poisoned("the sibling pools"))?;
        siblings
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|sibling| !Arc::ptr_eq(sibling, pool))
            .find_map(|sibling| sibling.connected(dropped).cloned())
            .ok_or_else(Error::not_connected)
    }

    /// Runs `command` on a client for `key`, following the cluster's `MOVED` redirections (Redis
    /// ran nothing, so the command goes to the slot's new owner and runs there once). Any other
    /// error is the caller's: nothing is sent twice.
    pub(crate) async fn routed<T, F, Fut>(&self, key: &str, command: F) -> Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let Links::Cluster(routes) = &self.inner.links else {
            return command(self.client_at(0)?).await;
        };
        let slot = slot_of(key);
        let mut redirections = 0;
        loop {
            let error = match command(routes.client(slot)?).await {
                Err(Error::Unavailable(e)) => e,
                done => return done,
            };
            match ClusterError::of(&error) {
                Some(ClusterError::Moved) if redirections < MAX_REDIRECTIONS => {
                    redirections += 1;
                    let to = moved_to(error.details()).unwrap_or_default();
                    routes.moved(slot, to).await?;
                }
                Some(ClusterError::Moved | ClusterError::ClusterDown) => {
                    routes.wake();
                    return Err(Error::Unavailable(error));
                }
                _ => return Err(Error::Unavailable(error)),
            }
        }
    }

    /// Runs a script over `keys` (the first decides the node; all are of one slot), following
    /// redirections: see [`Store::routed`].
    pub(crate) async fn script(
        &self,
        script: &Script,
        keys: impl IntoIterator<Item = impl AsRef<str>>,
        args: Vec<Value>,
    ) -> Result<Reply> {
        Ok(self.script_on(script, keys, args).await?.0)
    }

    /// [`Store::script`], with the client it ran on (a WAIT for its write must go out on the
    /// same connection).
    pub(crate) async fn script_on(
        &self,
        script: &Script,
        keys: impl IntoIterator<Item = impl AsRef<str>>,
        args: Vec<Value>,
    ) -> Result<(Reply, Client)> {
        let keys: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_owned()).collect();
        if !self.clustered() {
            let client = self.client_at(0)?;
            let reply = scripts::run(script, &client, keys, args).await?;
            return Ok((reply, client));
        }
        let first = keys.first().cloned().unwrap_or_default();
        self.routed(&first, |client| {
            let (keys, args) = (keys.clone(), args.clone());
            async move {
                let reply = scripts::run(script, &client, keys, args).await?;
                Ok((reply, client))
            }
        })
        .await
    }

    /// [`Store::script_on`] with its keys and arguments made by `build` (see
    /// [`scripts::run_built`]): on one Redis they are made once, unless Redis has to be given the
    /// script first; on a cluster once per attempt.
    pub(crate) async fn script_built(
        &self,
        script: &Script,
        build: impl Fn() -> (Vec<String>, Vec<Value>),
    ) -> Result<(Reply, Client)> {
        if !self.clustered() {
            let client = self.client_at(0)?;
            let reply = scripts::run_built(script, &client, &build).await?;
            return Ok((reply, client));
        }
        let first = build().0.first().cloned().unwrap_or_default();
        self.routed(&first, |client| {
            let build = &build;
            async move {
                let reply = scripts::run_built(script, &client, build).await?;
                Ok((reply, client))
            }
        })
        .await
    }

    /// Whether Redis answers a PING now (on a cluster, every primary).
    pub async fn ping(&self) -> Result<()> {
        for client in self.primary_clients()? {
            client.ping::<()>(None).await?;
        }
        Ok(())
    }

    /// Closes the handle's connections.
    pub async fn quit(&self) {
        match &self.inner.links {
            Links::One(pool) => pool.quit().await,
            Links::Cluster(routes) => routes.quit().await,
        }
    }
}

/// The `host:port` of a `MOVED <slot> <host:port>` reply (or of a script error that wraps one).
fn moved_to(details: &str) -> Option<&str> {
    let at = details.find("MOVED ")?;
    details[at..].split_whitespace().nth(2)
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
