//! Which connection a command goes out on: the pool of connections to one Redis node
//! ([`NodePool`]), and on a Redis Cluster the routing of our own over one such pool per primary
//! ([`Routes`]).
//!
//! Why not fred's cluster client: it reconnects as a whole. When one primary dies it stops
//! sending to every node until the dead one leaves `CLUSTER SLOTS` (seconds, until its replica
//! is promoted), so a failover paused every event, not only the dead primary's. And it follows
//! a redirection by writing the command again, which spends the one write attempt the service
//! allows (a command is never replayed after a dropped connection: a script could run twice),
//! so every `MOVED` was a 503. Here each primary has its own centralised pool, whose connections
//! drop and come back on their own; a command for a dead primary's slots is refused at once;
//! the table follows `CLUSTER SLOTS` (every second, and at once when a node is found down), and
//! a `MOVED` is followed by [`Store::routed`](crate::store::Store) (Redis did not run the
//! command, so sending it to the slot's new owner runs it once).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use fred::clients::{Client, Pool};
use fred::error::ErrorKind;
use fred::interfaces::{ClientLike, EventInterface};
use fred::types::cluster::ClusterRouting;
use fred::types::config::{Server, ServerConfig};
use fred::types::{Builder, ClusterHash, CustomCommand, Value};
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::keys::Shard;

/// How long startup waits for a first connection before going on without one (requests then get
/// 503 until Redis answers).
pub(crate) const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// How long a refresh of the routing waits for a new primary's pool to connect before it
/// publishes the table anyway (its commands are refused until it is up).
const NEW_NODE_WAIT: Duration = Duration::from_secs(1);
/// How often the routing is read again without being asked to (a resharding or a new primary
/// that no command has run into yet).
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// The least time between two reads of the routing (a dead primary asks for one on every
/// refused command).
const REFRESH_GAP: Duration = Duration::from_millis(100);
/// How long the pool of a node that is no longer a primary is kept (a command may still be on
/// its way on it, and a stale `CLUSTER SLOTS` may name it again) before it is closed.
const RETIRE_AFTER: Duration = Duration::from_secs(10);
/// Hash slots of a Redis Cluster.
const SLOTS: usize = 16_384;
/// An unowned slot in [`Table::owner`].
const UNOWNED: u16 = u16::MAX;

/// The pool of connections to one Redis node, with what it knows of each connection's state.
#[derive(Debug)]
pub(crate) struct NodePool {
    pool: Pool,
    /// Per client of the pool, whether its connection dropped (see [`Link`]).
    links: Vec<Arc<Link>>,
    /// Round-robin position over the pool.
    next: AtomicUsize,
}

impl NodePool {
    /// Connects a pool of `size` clients with `builder`, waiting up to `wait` for it to be up
    /// (it keeps reconnecting in the background after that).
    pub(crate) async fn open(builder: &Builder, size: usize, wait: Duration) -> Result<Arc<Self>> {
        let pool = builder.build_pool(size.max(1))?;
        let links: Vec<Arc<Link>> = pool.clients().iter().map(|_| Arc::default()).collect();
        for (client, link) in pool.clients().iter().zip(&links) {
            Link::watch(client, link, &links);
        }
        pool.connect();
        if tokio::time::timeout(wait, pool.wait_for_connect())
            .await
            .is_err()
        {
            tracing::warn!(
                node = %hosts(builder),
                "Redis does not answer yet; carrying on and reconnecting in the background"
            );
        }
        Ok(Arc::new(Self {
            pool,
            links,
            next: AtomicUsize::new(0),
        }))
    }

    /// One of this pool's clients whose connection is up, round-robin; with `made_after`, only
    /// one whose connection was made (or found answering) after that.
    pub(crate) fn connected(&self, made_after: Option<Instant>) -> Option<&Client> {
        let clients = self.pool.clients();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..clients.len())
            .map(|i| (start + i) % clients.len())
            .filter(|&n| made_after.is_none_or(|at| self.links[n].up_after(at)))
            .find(|&n| clients[n].is_connected() && self.links[n].is_up(&clients[n]))
            .map(|n| &clients[n])
    }

    /// When this pool last saw one of its connections drop.
    pub(crate) fn dropped_at(&self) -> Option<Instant> {
        self.links
            .iter()
            .filter_map(|link| read(&link.down_since))
            .max()
    }

    /// Closes the pool's connections (waiting at most a second: a node that is gone never
    /// answers QUIT).
    pub(crate) async fn quit(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.pool.quit()).await;
    }
}

/// The server(s) a builder connects to, for a log line.
fn hosts(builder: &Builder) -> String {
    builder
        .get_config()
        .map(|c| {
            c.server
                .hosts()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// `base`'s settings, for one node only.
pub(crate) fn node_builder(base: &Builder, node: &Server) -> Builder {
    let mut builder = base.clone();
    builder.with_config(|c| {
        c.server = ServerConfig::Centralized {
            server: node.clone(),
        }
    });
    builder
}

/// The routing of one process's commands over a Redis Cluster: which primary owns each hash
/// slot, and a pool per primary.
#[derive(Debug)]
pub(crate) struct Routes {
    /// The cluster's settings (REDIS_URL's seeds); each node's pool is built from them.
    builder: Builder,
    pool_size: usize,
    table: RwLock<Arc<Table>>,
    /// Pools of nodes that left the table, closed [`RETIRE_AFTER`] they left.
    retired: Mutex<Vec<(Instant, Server, Arc<NodePool>)>>,
    /// Asks the background task for a read of the routing.
    wake: Arc<Notify>,
    /// One change of the table at a time.
    changing: tokio::sync::Mutex<()>,
}

/// The owner of each slot, as an index into `nodes`.
#[derive(Debug, Default)]
pub(crate) struct Table {
    owner: Vec<u16>,
    nodes: Vec<(Server, Arc<NodePool>)>,
}

impl Table {
    fn node(&self, slot: u16) -> Option<&(Server, Arc<NodePool>)> {
        let owner = *self.owner.get(usize::from(slot))?;
        self.nodes.get(usize::from(owner))
    }

    fn pool_of(&self, server: &Server) -> Option<&Arc<NodePool>> {
        self.nodes
            .iter()
            .find(|(s, _)| same(s, server))
            .map(|(_, pool)| pool)
    }

    /// Whether the two tables route every slot to the same pool.
    fn routes_as(&self, other: &Self) -> bool {
        self.owner.len() == other.owner.len()
            && (0..self.owner.len()).all(|slot| {
                let slot = slot as u16;
                match (self.node(slot), other.node(slot)) {
                    (Some((_, a)), Some((_, b))) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                }
            })
    }
}

fn same(a: &Server, b: &Server) -> bool {
    a.host == b.host && a.port == b.port
}

/// The shard that the bookkeeping of an event in hash slot `slot` goes to, given each slot's
/// owner: its own range's ([`Shard::of_slot`]) if that shard's keys sit on the event's primary,
/// else one of the shards whose keys do (picked by the slot, so that the events spread over
/// them), else its own range's. Ranges of slots rarely end where a primary's do: with 3
/// primaries about one event in twelve has its range's shard on another primary, and a token or
/// hint written there would stall the event while that other primary is down, though its own is
/// up.
fn shard_for(owner: &[u16], slot: u16) -> Shard {
    let own = Shard::of_slot(slot);
    let primary = match owner.get(usize::from(slot)) {
        Some(primary) if *primary != UNOWNED => *primary,
        _ => return own,
    };
    let on = |shard: Shard| owner.get(usize::from(shard.slot())) == Some(&primary);
    if on(own) {
        return own;
    }
    // No allocation: this runs for every token push and hint of such an event.
    match Shard::all().filter(|s| on(*s)).count() {
        0 => own,
        n => Shard::all()
            .filter(|s| on(*s))
            .nth(usize::from(slot) % n)
            .unwrap_or(own),
    }
}

impl Routes {
    /// Reads the cluster's routing from REDIS_URL's seeds and connects a pool to each primary,
    /// waiting up to a few seconds; then follows the cluster in the background for as long as
    /// the routes are in use.
    pub(crate) async fn connect(builder: Builder, pool_size: usize) -> Arc<Self> {
        let routes = Arc::new(Self {
            builder,
            pool_size,
            table: RwLock::default(),
            retired: Mutex::default(),
            wake: Arc::default(),
            changing: tokio::sync::Mutex::new(()),
        });
        let started = Instant::now();
        loop {
            match routes.refresh(CONNECT_WAIT).await {
                Ok(()) => break,
                Err(e) if started.elapsed() >= CONNECT_WAIT => {
                    tracing::warn!(error = %e, "no Redis Cluster node answers yet; carrying on and retrying in the background");
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Self::follow(Arc::downgrade(&routes), routes.wake.clone());
        routes
    }

    /// The background task: reads the routing every [`REFRESH_EVERY`], and when asked.
    fn follow(routes: Weak<Self>, wake: Arc<Notify>) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(REFRESH_EVERY) => {}
                }
                let Some(routes) = routes.upgrade() else {
                    break;
                };
                if let Err(e) = routes.refresh(NEW_NODE_WAIT).await {
                    tracing::debug!(error = %e, "cannot read the cluster's routing");
                }
                routes.close_retired().await;
                drop(routes);
                tokio::time::sleep(REFRESH_GAP).await;
            }
        });
    }

    /// Asks for a read of the routing soon (a node was found down, or the cluster said it is
    /// changing).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    fn current(&self) -> Arc<Table> {
        match self.table.read() {
            Ok(table) => table.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn publish(&self, table: Table) {
        let old = match self.table.write() {
            Ok(mut current) => std::mem::replace(&mut *current, Arc::new(table)),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), Arc::new(table)),
        };
        let now = self.current();
        let gone: Vec<(Instant, Server, Arc<NodePool>)> = old
            .nodes
            .iter()
            .filter(|(server, _)| now.pool_of(server).is_none())
            .map(|(server, pool)| (Instant::now(), server.clone(), pool.clone()))
            .collect();
        if let Ok(mut retired) = self.retired.lock() {
            retired.retain(|(_, server, _)| now.pool_of(server).is_none());
            retired.extend(gone);
        }
    }

    /// A client of the primary of `slot` whose connection is up, or at once the error of that
    /// primary being unreachable (asking for a fresh read of the routing: it may have failed
    /// over).
    pub(crate) fn client(&self, slot: u16) -> Result<Client> {
        let table = self.current();
        let Some((server, pool)) = table.node(slot) else {
            self.wake();
            return Err(unrouted(slot));
        };
        match pool.connected(None) {
            Some(client) => Ok(client.clone()),
            None => {
                self.wake();
                Err(unreachable(server))
            }
        }
    }

    /// The primary of `slot` now, if known.
    pub(crate) fn server(&self, slot: u16) -> Option<Server> {
        self.current().node(slot).map(|(server, _)| server.clone())
    }

    /// The shard of the event in hash slot `slot` now (see [`shard_for`]).
    pub(crate) fn shard_for(&self, slot: u16) -> Shard {
        shard_for(&self.current().owner, slot)
    }

    /// The primaries and their pools.
    pub(crate) fn primaries(&self) -> Vec<(Server, Arc<NodePool>)> {
        self.current().nodes.clone()
    }

    /// After Redis answered `MOVED <slot> <host:port>`: routes the slot there at once (the
    /// other slots follow with the read of the routing this asks for).
    pub(crate) async fn moved(&self, slot: u16, to: &str) -> Result<()> {
        let Some((host, port)) = to
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        else {
            return Err(Error::Corrupt(format!("a MOVED to `{to}`")));
        };
        let server = Server::new(host, port);
        let _one = self.changing.lock().await;
        let table = self.current();
        if table.node(slot).is_some_and(|(s, _)| same(s, &server)) {
            return Ok(());
        }
        let mut nodes = table.nodes.clone();
        let index = match nodes.iter().position(|(s, _)| same(s, &server)) {
            Some(index) => index,
            None => {
                let pool = self.pool_for(&table, &server, NEW_NODE_WAIT).await?;
                nodes.push((server.clone(), pool));
                nodes.len() - 1
            }
        };
        let mut owner = table.owner.clone();
        owner.resize(SLOTS, UNOWNED);
        owner[usize::from(slot)] = index as u16;
        tracing::debug!(slot, to = %server, "a slot moved");
        self.publish(Table { owner, nodes });
        self.wake();
        Ok(())
    }

    /// The pool of `server`: the table's, a retired one, or a new one.
    async fn pool_for(
        &self,
        table: &Table,
        server: &Server,
        wait: Duration,
    ) -> Result<Arc<NodePool>> {
        if let Some(pool) = table.pool_of(server) {
            return Ok(pool.clone());
        }
        // Taken back out of the retired ones, so that it is not closed under the table.
        let retired = self.retired.lock().ok().and_then(|mut retired| {
            let at = retired.iter().position(|(_, s, _)| same(s, server))?;
            Some(retired.remove(at).2)
        });
        if let Some(pool) = retired {
            return Ok(pool);
        }
        NodePool::open(&node_builder(&self.builder, server), self.pool_size, wait).await
    }

    /// Reads `CLUSTER SLOTS` from a primary this process is connected to (or else from a seed)
    /// and publishes the table it gives, connecting pools to new primaries.
    pub(crate) async fn refresh(&self, wait: Duration) -> Result<()> {
        let _one = self.changing.lock().await;
        let table = self.current();
        let routing = self.read_slots(&table).await?;
        let mut nodes: Vec<(Server, Arc<NodePool>)> = Vec::new();
        let mut owner = vec![UNOWNED; SLOTS];
        for range in routing.slots() {
            let index = match nodes.iter().position(|(s, _)| same(s, &range.primary)) {
                Some(index) => index,
                None => {
                    let pool = self.pool_for(&table, &range.primary, wait).await?;
                    nodes.push((range.primary.clone(), pool));
                    nodes.len() - 1
                }
            };
            let (start, end) = (usize::from(range.start), usize::from(range.end));
            if start <= end && end < SLOTS {
                owner[start..=end].fill(index as u16);
            }
        }
        let new = Table { owner, nodes };
        if new.routes_as(&table) {
            return Ok(());
        }
        if !table.nodes.is_empty() {
            tracing::info!(
                primaries = %new.nodes.iter().map(|(s, _)| s.to_string()).collect::<Vec<_>>().join(","),
                "the cluster's routing changed"
            );
        }
        self.publish(new);
        Ok(())
    }

    /// `CLUSTER SLOTS` from the first node that answers: the table's primaries, then the seeds.
    async fn read_slots(&self, table: &Table) -> Result<ClusterRouting> {
        let slots = || CustomCommand::new_static("CLUSTER", ClusterHash::Random, false);
        let mut last = Error::not_connected();
        for (server, pool) in &table.nodes {
            let Some(client) = pool.connected(None) else {
                continue;
            };
            match client.custom::<Value, _>(slots(), vec!["SLOTS"]).await {
                Ok(value) => return parse_slots(value, server),
                Err(e) => last = e.into(),
            }
        }
        let seeds = self
            .builder
            .get_config()
            .map(|c| c.server.hosts())
            .unwrap_or_default();
        for seed in seeds {
            let mut probe = node_builder(&self.builder, &seed);
            probe.with_config(|c| c.fail_fast = true);
            let client = probe.build()?;
            client.connect();
            let up = tokio::time::timeout(NEW_NODE_WAIT, client.wait_for_connect()).await;
            let answer = match up {
                Ok(Ok(())) => Some(client.custom::<Value, _>(slots(), vec!["SLOTS"]).await),
                _ => None,
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), client.quit()).await;
            match answer {
                Some(Ok(value)) => return parse_slots(value, &seed),
                Some(Err(e)) => last = e.into(),
                None => {}
            }
        }
        Err(last)
    }

    /// Closes the pools retired [`RETIRE_AFTER`] ago. Each leaves the retired list under its lock
    /// either here or in [`Routes::pool_for`], never both: a pool taken back is not closed.
    async fn close_retired(&self) {
        let due: Vec<Arc<NodePool>> = match self.retired.lock() {
            Ok(mut retired) => {
                let (due, keep) = std::mem::take(&mut *retired)
                    .into_iter()
                    .partition(|(at, _, _)| at.elapsed() >= RETIRE_AFTER);
                *retired = keep;
                due.into_iter().map(|(_, _, pool)| pool).collect()
            }
            Err(_) => Vec::new(),
        };
        for pool in due {
            pool.quit().await;
        }
    }

    /// Closes every pool.
    pub(crate) async fn quit(&self) {
        for (_, pool) in self.primaries() {
            pool.quit().await;
        }
    }
}

/// The error of a slot that no primary is known for yet (503).
pub(crate) fn unrouted(slot: u16) -> Error {
    Error::Unavailable(fred::error::Error::new(
        ErrorKind::Cluster,
        format!("no primary is known for hash slot {slot} yet"),
    ))
}

/// The error of a primary with no connection up (503).
pub(crate) fn unreachable(server: &Server) -> Error {
    Error::Unavailable(fred::error::Error::new(
        ErrorKind::IO,
        format!("not connected to the Redis primary at {server}"),
    ))
}

fn parse_slots(value: Value, from: &Server) -> Result<ClusterRouting> {
    Ok(ClusterRouting::from_cluster_slots(
        value,
        from.host.clone(),
    )?)
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
    /// not just its own: when the node goes away they all drop, and the others' announcements
    /// may come a little later than the next request. Each link is up again on its own
    /// reconnect, or when a PING finds it answering (a single dropped connection costs the
    /// others at most [`RECHECK_AFTER`] of 503s).
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

/// Connects `client` and waits up to [`CONNECT_WAIT`] for it.
pub(crate) async fn connect_and_wait<C: ClientLike>(client: &C) {
    client.connect();
    if tokio::time::timeout(CONNECT_WAIT, client.wait_for_connect())
        .await
        .is_err()
    {
        tracing::warn!("Redis does not answer yet; carrying on and reconnecting in the background");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `redis-cli --cluster create` makes of 3 primaries: 0-5460, 5461-10922, 10923-16383.
    fn three_primaries() -> Vec<u16> {
        (0..SLOTS)
            .map(|slot| match slot {
                0..=5460 => 0,
                5461..=10922 => 1,
                _ => 2,
            })
            .collect()
    }

    #[test]
    fn every_events_bookkeeping_goes_to_a_shard_on_its_own_primary_its_ranges_when_it_is() {
        let owner = three_primaries();
        let mut moved = 0;
        for slot in 0..SLOTS as u16 {
            let shard = shard_for(&owner, slot);
            assert_eq!(
                owner[usize::from(shard.slot())],
                owner[usize::from(slot)],
                "slot {slot}'s bookkeeping is on its own primary"
            );
            if owner[usize::from(Shard::of_slot(slot).slot())] == owner[usize::from(slot)] {
                assert_eq!(
                    shard,
                    Shard::of_slot(slot),
                    "slot {slot} keeps its range's shard"
                );
            } else {
                moved += 1;
            }
        }
        // Shards 5 (5120-6143) and 10 (10240-11263) straddle two primaries each, and their
        // tags' slots (5642, 11066) lie on the upper one: slots 5120-5460 and 10240-10922 move.
        assert_eq!(
            moved,
            341 + 683,
            "only the straddling ranges' lower ends move"
        );
    }

    #[test]
    fn a_primary_with_no_shard_or_an_unowned_slot_keeps_its_ranges_shard() {
        // Slots 0-99 on a primary of their own, whose range holds no shard's tag (shard 0's
        // lies at 233); slot 100 unowned.
        let mut owner = three_primaries();
        owner[..100].fill(3);
        owner[100] = UNOWNED;
        for slot in [0u16, 42, 99, 100] {
            assert_eq!(shard_for(&owner, slot), Shard::of_slot(slot), "slot {slot}");
        }
        assert_eq!(shard_for(&[], 7), Shard::of_slot(7), "no table yet");
    }
}
