//! The test harness: a private `redis-server`, the API in process, workers in process or as real
//! processes, and typed helpers for the endpoints.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::config::Config;
use fred::types::Builder;
use loadgen::api::{Answer, Api, EventCounts, JobKind, JobView, Posted, SeatMessage, SeatView};
use queue_core::Settings;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Which kind of Redis a test runs against: one `redis-server`, or a Redis Cluster of six on
/// loopback (3 primaries, 3 replicas). The default comes from `E2E_REDIS` (`cluster` or
/// `single`, the default), so that the same tests run on either (`scripts/test.sh` runs the
/// guarantee tests a second time with `E2E_REDIS=cluster`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisKind {
    Single,
    Cluster,
}

impl RedisKind {
    /// The kind `E2E_REDIS` asks for.
    pub fn from_env() -> Self {
        match std::env::var("E2E_REDIS").as_deref() {
            Ok("cluster") => Self::Cluster,
            Ok("single") | Ok("") | Err(_) => Self::Single,
            Ok(other) => panic!("E2E_REDIS is `single` or `cluster`, not `{other}`"),
        }
    }
}

/// The primaries and replicas of a test cluster.
pub const CLUSTER_PRIMARIES: usize = 3;
pub const CLUSTER_NODES: usize = 2 * CLUSTER_PRIMARIES;

/// One `redis-server` process of a test Redis.
struct Node {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// A `redis-server` of the test's own on a free port, or a cluster of them, killed when dropped.
pub struct TestRedis {
    nodes: Vec<Node>,
    /// The port of the (first) node.
    pub port: u16,
    extra: Vec<String>,
    kind: RedisKind,
}

impl TestRedis {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        for _ in 0..20 {
            let port = free_port();
            let dir = node_dir(port);
            if let Some(child) = Self::spawn(port, &dir, &extra) {
                return Self {
                    nodes: vec![Node { child, port, dir }],
                    port,
                    extra,
                    kind: RedisKind::Single,
                };
            }
        }
        panic!("could not start a redis-server");
    }

    /// Starts a Redis of `kind`.
    pub fn start_kind(kind: RedisKind, extra: &[&str]) -> Self {
        match kind {
            RedisKind::Single => Self::start_with(extra),
            RedisKind::Cluster => Self::start_cluster(extra),
        }
    }

    /// Starts six `redis-server`s in cluster mode on loopback (`cluster-node-timeout 2000`, and
    /// `cluster-require-full-coverage no` as the README asks: with Redis's default every primary
    /// refuses every command while one slot has no primary, so one failover pauses every event),
    /// joins them with `redis-cli --cluster create ... --cluster-replicas 1`, and returns once
    /// every node says `cluster_state:ok` and every replica is in sync.
    pub fn start_cluster(extra: &[&str]) -> Self {
        let mut extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        extra.extend(
            [
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                "2000",
                "--cluster-require-full-coverage",
                "no",
                "--cluster-config-file",
                "nodes.conf",
            ]
            .map(str::to_owned),
        );
        'attempt: for _ in 0..10 {
            let mut nodes = Vec::with_capacity(CLUSTER_NODES);
            for port in cluster_ports(CLUSTER_NODES) {
                let dir = node_dir(port);
                match Self::spawn(port, &dir, &extra) {
                    Some(child) => nodes.push(Node { child, port, dir }),
                    // Kills and removes the nodes started so far.
                    None => continue 'attempt,
                }
            }
            let redis = Self {
                port: nodes[0].port,
                nodes,
                extra: extra.clone(),
                kind: RedisKind::Cluster,
            };
            let created = Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(redis.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
                .args(["--cluster-replicas", "1", "--cluster-yes"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("redis-cli runs (it comes with redis-server)");
            assert!(created.success(), "redis-cli --cluster create succeeds");
            redis.wait_cluster_ok(Duration::from_secs(20));
            return redis;
        }
        panic!("could not start a Redis Cluster");
    }

    /// Waits until every live node says `cluster_state:ok` with all 16384 slots served, and
    /// every replica's link to its primary is up.
    pub fn wait_cluster_ok(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ok = self.live_ports().into_iter().all(|port| {
                let info = command(port, "CLUSTER INFO").unwrap_or_default();
                let replication = command(port, "INFO replication").unwrap_or_default();
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && !replication.contains("master_link_status:down")
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the test cluster is not ok within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The ports of the nodes that answer.
    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .map(|n| n.port)
            .filter(|port| redis_answers(*port))
            .collect()
    }

    /// The ports of the nodes that are primaries now (the one node of a single Redis).
    pub fn primary_ports(&self) -> Vec<u16> {
        if self.kind == RedisKind::Single {
            return vec![self.port];
        }
        self.nodes
            .iter()
            .map(|n| n.port)
            .filter(|port| command(*port, "ROLE").is_some_and(|role| role.contains("master")))
            .collect()
    }

    /// Starts redis-server on `port`; `None` when it does not answer (the port was taken).
    fn spawn(port: u16, dir: &std::path::Path, extra: &[String]) -> Option<Child> {
        std::fs::create_dir_all(dir).expect("a temporary directory");
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--notify-keyspace-events", "Ex"])
            .args(["--enable-debug-command", "yes", "--dir"])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return None;
            }
            if redis_answers(port) {
                return Some(child);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    fn single(&mut self, what: &str) -> &mut Node {
        assert_eq!(
            self.kind,
            RedisKind::Single,
            "{what} is for a single redis-server; a test of a cluster kills or restarts a node"
        );
        &mut self.nodes[0]
    }

    /// Starts the server again on the same port and data directory (after `kill` or a
    /// SHUTDOWN), returning once it answers.
    pub fn restart(&mut self) {
        let extra = self.extra.clone();
        let node = self.single("restart");
        let _ = node.child.wait();
        node.child =
            Self::spawn(node.port, &node.dir, &extra).expect("redis-server restarts on its port");
    }

    /// Asks the server to shut down (SHUTDOWN: it saves what its persistence settings say) and
    /// waits for it to exit.
    pub async fn shutdown(&mut self) {
        self.single("shutdown");
        let client = self.client().await;
        let _ = client
            .custom::<(), _>(fred::cmd!("SHUTDOWN"), Vec::<String>::new())
            .await;
        let _ = self.nodes[0].child.wait();
    }

    /// REDIS_URL for this Redis: `redis://` for one server, `redis-cluster://` with every
    /// node as a seed for a cluster.
    pub fn url(&self) -> String {
        match self.kind {
            RedisKind::Single => format!("redis://127.0.0.1:{}", self.port),
            RedisKind::Cluster => {
                let seeds: Vec<String> = self.nodes[1..]
                    .iter()
                    .map(|n| format!("node=127.0.0.1:{}", n.port))
                    .collect();
                format!(
                    "redis-cluster://127.0.0.1:{}?{}",
                    self.port,
                    seeds.join("&")
                )
            }
        }
    }

    /// A plain client, for looking at the data directly (on a cluster, one that routes each
    /// key to its node).
    pub async fn client(&self) -> Client {
        let config = Config::from_url(&self.url()).expect("a valid URL");
        let client = Builder::from_config(config).build().expect("a client");
        client.init().await.expect("the test Redis answers");
        client
    }

    /// A client of one node only (`redis://` to its port), for per-node commands.
    pub async fn node_client(port: u16) -> Client {
        let config = Config::from_url(&format!("redis://127.0.0.1:{port}")).expect("a valid URL");
        let client = Builder::from_config(config).build().expect("a client");
        client.init().await.expect("the test Redis node answers");
        client
    }

    /// The port of the primary that serves the event's slot now (the one node of a single
    /// Redis), from `CLUSTER NODES`.
    pub fn primary_of(&self, event: &str) -> u16 {
        self.primary_of_slot(queue_core::keys::slot_of(&keys_of(event).event))
    }

    /// The port of the primary that owns hash `slot` (on one server, its port).
    pub fn primary_of_slot(&self, slot: u16) -> u16 {
        if self.kind == RedisKind::Single {
            return self.port;
        }
        let nodes = self
            .live_ports()
            .into_iter()
            .find_map(|port| command(port, "CLUSTER NODES"))
            .expect("a node answers CLUSTER NODES");
        nodes
            .lines()
            .filter(|line| line.contains("master") && !line.contains("fail"))
            .find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let port: u16 = fields.get(1)?.split('@').next()?.rsplit(':').next()?.parse().ok()?;
                fields.get(8..)?.iter().any(|range| {
                    let (from, to) = range.split_once('-').unwrap_or((range, range));
                    matches!((from.parse::<u16>(), to.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
                }).then_some(port)
            })
            .unwrap_or_else(|| panic!("no primary serves slot {slot}: {nodes}"))
    }

    /// The keys matching `pattern` (KEYS) on every primary, sorted.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for port in self.primary_ports() {
            let client = Self::node_client(port).await;
            let found: Vec<String> = client
                .custom(fred::cmd!("KEYS"), vec![pattern.to_owned()])
                .await
                .expect("KEYS");
            keys.extend(found);
            let _ = client.quit().await;
        }
        keys.sort();
        keys
    }

    /// CONFIG SET on every node (CONFIG is per node; on a cluster, replicas too, so that a
    /// promoted one keeps the setting).
    pub async fn config_set(&self, name: &str, value: &str) {
        for node in &self.nodes {
            let client = Self::node_client(node.port).await;
            let _: () = fred::interfaces::ConfigInterface::config_set(&client, name, value)
                .await
                .expect("CONFIG SET");
            let _ = client.quit().await;
        }
    }

    /// CONFIG GET of one setting on every primary, in port order.
    pub async fn config_on_primaries(&self, name: &str) -> Vec<String> {
        let mut values = Vec::new();
        for port in self.primary_ports() {
            let client = Self::node_client(port).await;
            let value: HashMap<String, String> =
                fred::interfaces::ConfigInterface::config_get(&client, name)
                    .await
                    .expect("CONFIG GET");
            values.push(value.get(name).cloned().unwrap_or_default());
            let _ = client.quit().await;
        }
        values
    }

    /// A digest of the whole dataset: equal digests mean nothing was written (on a cluster,
    /// the digests of the primaries, in port order).
    pub async fn digest(&self) -> String {
        let mut digests = Vec::new();
        for port in self.primary_ports() {
            let client = Self::node_client(port).await;
            let digest: String = client
                .custom(fred::cmd!("DEBUG"), vec!["DIGEST".to_owned()])
                .await
                .expect("DEBUG DIGEST is enabled on test servers");
            digests.push(format!("{port}:{digest}"));
            let _ = client.quit().await;
        }
        digests.join(" ")
    }

    /// SIGKILL: no chance to save anything.
    pub fn kill(&mut self) {
        let node = self.single("kill");
        let _ = node.child.kill();
        let _ = node.child.wait();
    }

    /// Starts the killed node on `port` again, with its directory (and so its `nodes.conf`): it
    /// rejoins the cluster, as a replica of whoever took its slots.
    pub fn restart_node(&mut self, port: u16) {
        let extra = self.extra.clone();
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"));
        node.child = Self::spawn(port, &node.dir, &extra)
            .unwrap_or_else(|| panic!("the node on port {port} starts again"));
    }
}

impl TestRedis {
    /// The port of the replica of the primary on `port`, from `CLUSTER NODES`.
    pub fn replica_of(&self, primary: u16) -> u16 {
        let nodes = command(primary, "CLUSTER NODES").expect("the primary answers CLUSTER NODES");
        let lines: Vec<Vec<&str>> = nodes
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let port_of = |fields: &Vec<&str>| -> Option<u16> {
            fields
                .get(1)?
                .split('@')
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        };
        let id = lines
            .iter()
            .find(|f| port_of(f) == Some(primary))
            .and_then(|f| f.first().copied())
            .expect("the primary is listed");
        lines
            .iter()
            .find(|f| f.get(3) == Some(&id))
            .and_then(port_of)
            .unwrap_or_else(|| panic!("no replica of {primary}: {nodes}"))
    }

    /// Sends a signal (`STOP`, `CONT`) to the node on `port`.
    pub fn signal_node(&self, port: u16, signal: &str) {
        let node = self
            .nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"));
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &node.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIG{signal} was delivered to {port}");
    }

    /// SIGKILL of the node on `port` (a cluster's primary, say): its replica takes over after
    /// the cluster node timeout.
    pub fn kill_node(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"));
        let _ = node.child.kill();
        let _ = node.child.wait();
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
        }
        for node in &mut self.nodes {
            let _ = node.child.wait();
            let _ = std::fs::remove_dir_all(&node.dir);
        }
    }
}

fn node_dir(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("e2e-redis-{}-{port}", std::process::id()))
}

/// `n` distinct ports on loopback that are free, as are their cluster bus ports (port + 10000):
/// picked below 45536 (random, not from the kernel's ephemeral range, whose ports plus 10000
/// can pass 65535).
fn cluster_ports(n: usize) -> Vec<u16> {
    use std::hash::BuildHasher;
    let mut ports: Vec<u16> = Vec::with_capacity(n);
    let mut seed = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    while ports.len() < n {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let port = 20_000 + ((seed >> 33) % 25_000) as u16;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if !ports.contains(&port) && free(port) && free(port + 10_000) {
            ports.push(port);
        }
    }
    ports
}

/// One command, in Redis's inline form, to the node on `port`: its reply as text (a bulk
/// string's contents, or a simple reply's line; for an array, the raw reply), `None` when the
/// node does not answer within a second.
pub fn command(port: u16, command: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(1000))).ok()?;
    s.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        let Some((head, body)) = text.split_once("\r\n") else {
            continue;
        };
        match head.as_bytes().first() {
            Some(b'$') => {
                let len: usize = head[1..].parse().ok()?;
                if body.len() >= len {
                    return Some(body[..len].to_owned());
                }
            }
            Some(b'*') => {
                // Enough for ROLE: its first element says the role.
                if body.contains("\r\n") {
                    return Some(text.into_owned());
                }
            }
            _ => return Some(head.to_owned()),
        }
    }
}

fn redis_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// How a test wants the service set up.
pub struct Options {
    /// Environment-style settings (docs/CONTRACT.md §4 names), on top of config/default.toml.
    pub env: Vec<(&'static str, String)>,
    /// Worker instances to run inside the test process.
    pub workers: usize,
    /// API instances (each with its own connection pool, as separate processes would have).
    pub apis: usize,
    /// A change to settings that have no environment variable.
    pub tweak: Option<fn(&mut Settings)>,
    /// Extra `redis-server` arguments (persistence, say).
    pub redis_args: Vec<&'static str>,
    /// One server or a cluster (default: `E2E_REDIS`).
    pub redis: RedisKind,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            workers: 1,
            apis: 1,
            tweak: None,
            redis_args: Vec::new(),
            redis: RedisKind::from_env(),
        }
    }
}

impl Options {
    pub fn env(mut self, name: &'static str, value: impl ToString) -> Self {
        self.env.push((name, value.to_string()));
        self
    }

    pub fn redis_args(mut self, args: &[&'static str]) -> Self {
        self.redis_args.extend_from_slice(args);
        self
    }

    /// Runs the test on one server or on a cluster, whatever `E2E_REDIS` says.
    pub fn redis(mut self, kind: RedisKind) -> Self {
        self.redis = kind;
        self
    }

    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    pub fn apis(mut self, n: usize) -> Self {
        self.apis = n;
        self
    }

    pub fn tweak(mut self, tweak: fn(&mut Settings)) -> Self {
        self.tweak = Some(tweak);
        self
    }
}

/// The running service.
pub struct TestApp {
    pub redis: TestRedis,
    pub settings: Settings,
    env: HashMap<String, String>,
    /// The base URL of the first API instance.
    pub address: String,
    /// The typed client of each API instance, on `http`.
    pub apis: Vec<Api>,
    /// For requests whose exact wire shape a test checks (`post`, `get`).
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Per in-process worker: its own shutdown token.
    workers: Vec<(CancellationToken, tokio::task::JoinHandle<()>)>,
    /// The counters of every in-process worker started so far.
    counters: Vec<Arc<worker::Counters>>,
    log_dir: PathBuf,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    // The in-process API and workers log nowhere unless E2E_LOG names a filter
    // (`E2E_LOG=queue_core=debug,warn`): then to stderr, for a test run with --nocapture.
    if let Ok(filter) = std::env::var("E2E_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let redis = TestRedis::start_kind(options.redis, &options.redis_args);
    let log_dir =
        std::env::temp_dir().join(format!("e2e-logs-{}-{}", std::process::id(), redis.port));
    let mut env: HashMap<String, String> = HashMap::from([
        ("REDIS_URL".to_owned(), redis.url()),
        ("PORT".to_owned(), "0".to_owned()),
        ("API_HTTP_WORKERS".to_owned(), "2".to_owned()),
        ("LOG_DIR".to_owned(), log_dir.display().to_string()),
        ("LOG_LEVEL".to_owned(), "warn".to_owned()),
        // The tests send thousands of requests a second from 127.0.0.1: rate limits off unless
        // a test turns them on (`Options::env("RATE_LIMITS", "on")`).
        ("RATE_LIMITS".to_owned(), "off".to_owned()),
    ]);
    for (name, value) in options.env {
        env.insert(name.to_owned(), value);
    }
    let mut settings = Settings::load_with(&config_dir(), |name| env.get(name).cloned())
        .expect("test settings are valid");
    if let Some(tweak) = options.tweak {
        tweak(&mut settings);
    }

    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut addresses = Vec::new();
    for _ in 0..options.apis {
        let app = api::Application::build(&settings)
            .await
            .expect("the API starts");
        addresses.push(format!("http://127.0.0.1:{}", app.port()));
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            app.run_until_stopped(stop).await.expect("the API runs");
        }));
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        // Below the API's keep-alive (5 s): a connection idle that long may be closing on the
        // server's side just as it is reused, and the request then fails (IncompleteMessage).
        .pool_idle_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let auth = client_auth(&settings);
    let mut app = TestApp {
        redis,
        address: addresses[0].clone(),
        apis: addresses
            .iter()
            .map(|base| Api::with_client(http.clone(), base).with_auth(auth.clone()))
            .collect(),
        settings,
        env,
        http,
        shutdown,
        tasks,
        workers: Vec::new(),
        counters: Vec::new(),
        log_dir,
    };
    for _ in 0..options.workers {
        app.start_worker().await;
    }
    app
}

/// How the typed clients identify users to this service: with tokens signed by its secret when
/// it runs in jwt mode with one.
pub fn client_auth(settings: &Settings) -> loadgen::api::Auth {
    let auth = &settings.auth;
    if auth.mode != queue_core::settings::AuthMode::Jwt || auth.jwt_secret.is_empty() {
        return loadgen::api::Auth::None;
    }
    let set = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    loadgen::api::Auth::jwt(
        &auth.jwt_secret,
        set(&auth.jwt_issuer),
        set(&auth.jwt_audience),
    )
    .expect("a client for the test's JWT secret")
}

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

impl TestApp {
    /// Starts one more worker inside the test process.
    pub async fn start_worker(&mut self) {
        let name = format!("test-worker-{}", self.workers.len() + 1);
        let worker = worker::Application::build(&self.settings, name)
            .await
            .expect("the worker starts");
        self.counters.push(worker.counters());
        let stop = CancellationToken::new();
        let token = stop.clone();
        let handle = tokio::spawn(async move {
            worker
                .run_until_stopped(token)
                .await
                .expect("the worker runs");
        });
        self.workers.push((stop, handle));
    }

    /// Starts one more API instance in process, on this app's Redis, with its settings changed by
    /// `tweak`; returns its typed client (it stops with the app).
    pub async fn start_api(&mut self, tweak: impl FnOnce(&mut Settings)) -> Api {
        let mut settings = self.settings.clone();
        tweak(&mut settings);
        let app = api::Application::build(&settings)
            .await
            .expect("the API starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        let stop = self.shutdown.clone();
        self.tasks.push(tokio::spawn(async move {
            app.run_until_stopped(stop).await.expect("the API runs");
        }));
        Api::with_client(self.http.clone(), &base)
    }

    /// The job ids of this deployment, as its API processes make them (from JOB_ID_SECRET, or
    /// from the key in Redis), for jobs a test queued behind the API's back.
    pub async fn job_ids(&self) -> api::job_ids::JobIds {
        let store = queue_core::Store::connect(&self.settings)
            .await
            .expect("a store");
        let key = api::job_ids::JobIdKey::new(&self.settings.api).expect("a job-id key");
        let ids = key.get(&store).await.expect("the job-id key").clone();
        store.quit().await;
        ids
    }

    /// The id the API hands out for job `seq` of `event`.
    pub async fn public_job_id(&self, event: &str, seq: u64) -> String {
        let job = queue_core::JobId::new(event.parse().expect("an event id"), seq)
            .expect("a job sequence number");
        self.job_ids().await.public(job)
    }

    /// Where an event's work stands, for a failing test's message: its hash (`enq`, `deq`,
    /// `lease`), its queue's length, the ready tokens waiting in every shard, the jobs the
    /// in-process workers applied, and the clock.
    pub async fn work_of(&self, event: &str) -> String {
        use fred::interfaces::{HashesInterface, ListInterface};
        let redis = self.redis.client().await;
        let keys = keys_of(event);
        let hash: HashMap<String, String> = redis.hgetall(&keys.event).await.unwrap_or_default();
        let queued: i64 = redis.llen(&keys.queue).await.unwrap_or(-1);
        let mut ready = Vec::new();
        for shard in queue_core::keys::Shard::all() {
            let tokens: Vec<String> = redis.lrange(shard.ready(), 0, -1).await.unwrap_or_default();
            if !tokens.is_empty() {
                ready.push((shard.index(), tokens));
            }
        }
        let applied: u64 = self
            .counters
            .iter()
            .map(|c| c.applied.load(Ordering::Relaxed))
            .sum();
        format!(
            "event {hash:?}, queue length {queued}, ready tokens {ready:?}, applied by the \
             in-process workers {applied}, now {} ms",
            now_ms()
        )
    }

    /// Holds the in-process workers found lapsed: (by keyspace notification, by sweep).
    pub fn holds_lapsed(&self) -> (u64, u64) {
        self.counters.iter().fold((0, 0), |(n, s), c| {
            (
                n + c.holds_lapsed_by_notification.load(Ordering::Relaxed),
                s + c.holds_lapsed_by_sweep.load(Ordering::Relaxed),
            )
        })
    }

    /// Stops the in-process workers gracefully and waits for them.
    pub async fn stop_workers(&mut self) {
        for (stop, handle) in self.workers.drain(..) {
            stop.cancel();
            handle.await.expect("the worker stops cleanly");
        }
    }

    /// Starts a real worker process (`e2e-worker`) with this app's settings.
    pub fn spawn_worker_process(&self, name: &str) -> ChildProcess {
        self.spawn_process(env!("CARGO_BIN_EXE_e2e-worker"), &[("WORKER_NAME", name)])
    }

    /// Starts a real API process (`e2e-api`) with this app's settings, on `port`.
    pub fn spawn_api_process(&self, port: u16) -> ChildProcess {
        self.spawn_process(
            env!("CARGO_BIN_EXE_e2e-api"),
            &[("PORT", &port.to_string())],
        )
    }

    /// Like [`TestApp::spawn_api_process`], started with its open-files soft limit lowered to
    /// `soft` (through `sh -c 'ulimit -Sn'`), to see that the API raises it.
    pub fn spawn_api_process_with_soft_open_files(&self, port: u16, soft: u32) -> ChildProcess {
        let script = format!("ulimit -Sn {soft} && exec \"$0\"");
        let child = Command::new("sh")
            .args(["-c", &script, env!("CARGO_BIN_EXE_e2e-api")])
            .env_clear()
            .envs(&self.env)
            .env("CONFIG_DIR", config_dir())
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("e2e-api starts under sh: {e}"));
        ChildProcess { child }
    }

    fn spawn_process(&self, binary: &str, extra: &[(&str, &str)]) -> ChildProcess {
        let child = Command::new(binary)
            .env_clear()
            .envs(&self.env)
            .env("CONFIG_DIR", config_dir())
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{binary} starts: {e}"));
        ChildProcess { child }
    }

    /// Where the processes of this app write their log files.
    pub fn log_dir(&self) -> &std::path::Path {
        &self.log_dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("the API answers");
        read(response).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("the API answers");
        read(response).await
    }

    /// The typed client of the first API instance.
    pub fn api(&self) -> &Api {
        &self.apis[0]
    }

    /// Creates an event and returns its id.
    pub async fn create_event(&self, seats: u32) -> String {
        self.api()
            .create_event("Test event", seats)
            .await
            .unwrap_or_else(|e| panic!("event creation: {e:#}"))
    }

    /// POST /seats/hold or /seats/reserve on API instance `i` (round robin over `apis`).
    pub async fn post_job_at(&self, i: usize, kind: JobKind, seat: &str, user: &str) -> Posted {
        answered(
            self.apis[i % self.apis.len()]
                .post_job(kind, seat, user)
                .await,
        )
    }

    /// POST /seats/hold.
    pub async fn hold(&self, seat: &str, user: &str) -> Posted {
        self.post_job_at(0, JobKind::Hold, seat, user).await
    }

    pub async fn reserve(&self, seat: &str, user: &str) -> Posted {
        self.post_job_at(0, JobKind::Reserve, seat, user).await
    }

    pub async fn refresh(&self, seat: &str, user: &str) -> Answer<SeatMessage> {
        answered(self.api().refresh(seat, user).await)
    }

    pub async fn release(&self, seat: &str, user: &str) -> Answer<SeatMessage> {
        answered(self.api().release(seat, user).await)
    }

    /// GET /seats/job/{id}/status as the wire has it, for tests of its exact shape.
    pub async fn job_json(&self, job: &str) -> (u16, Value) {
        self.get(&format!("/seats/job/{job}/status")).await
    }

    /// The job as it stands; `None` when the API does not know it (404).
    pub async fn job_status(&self, job: &str) -> Option<JobView> {
        self.api()
            .job_status(job, None)
            .await
            .unwrap_or_else(|e| panic!("job {job}: {e:#}"))
    }

    /// Polls a job until it is completed or failed; panics after `within`.
    pub async fn wait_job(&self, job: &str, within: Duration) -> JobView {
        let deadline = Instant::now() + within;
        loop {
            let view = self
                .job_status(job)
                .await
                .unwrap_or_else(|| panic!("job {job} must stay readable: it answered 404"));
            if view.status.is_finished() {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "job {job} did not finish within {within:?}: {view}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Holds a seat through the queue and waits for the result.
    pub async fn hold_and_wait(&self, seat: &str, user: &str) -> JobView {
        let posted = self.hold(seat, user).await;
        assert_eq!(posted.status(), 202, "hold of {seat}: {posted}");
        self.wait_job(posted.job_id().expect("a job id"), Duration::from_secs(10))
            .await
    }

    /// The seat as anyone sees it: its status, and nobody's id.
    pub async fn seat(&self, seat: &str) -> SeatView {
        self.api()
            .seat(seat)
            .await
            .unwrap_or_else(|e| panic!("seat {seat}: {e:#}"))
    }

    /// The seat with its holder found among `candidates`: no answer shows a user's id to anyone
    /// else, so a seat that is not Available is read as each candidate until one sees its own
    /// id on it. The latest read is the answer (a hold may lapse meanwhile); its `user` is `""`
    /// when no candidate holds the seat.
    pub async fn seat_held_by_one_of(&self, seat: &str, candidates: &[String]) -> SeatView {
        let mut view = self.seat(seat).await;
        for user in candidates {
            if view.status == loadgen::api::SeatStatus::Available || !view.user.is_empty() {
                break;
            }
            view = self.seat_as(seat, user).await;
        }
        view
    }

    /// The seat as `user` sees it: the user's id on it when the user holds or reserved it.
    pub async fn seat_as(&self, seat: &str, user: &str) -> SeatView {
        self.api()
            .seat_as(seat, user)
            .await
            .unwrap_or_else(|e| panic!("seat {seat} as {user}: {e:#}"))
    }

    pub async fn event(&self, event: &str) -> EventCounts {
        self.api()
            .event(event)
            .await
            .unwrap_or_else(|e| panic!("event {event}: {e:#}"))
    }

    /// The ids of the seats listed Available.
    pub async fn available(&self, event: &str) -> Vec<String> {
        self.api()
            .seat_list(event)
            .await
            .unwrap_or_else(|e| panic!("seat list of {event}: {e:#}"))
            .seats
            .into_iter()
            .map(|s| s.id)
            .collect()
    }
}

/// The answer the API gave; panics when it gave none, or refused without a JSON error body.
fn answered<T>(answer: anyhow::Result<Answer<T>>) -> Answer<T> {
    let answer = answer.unwrap_or_else(|e| panic!("the API answers: {e:#}"));
    if let Answer::Refused {
        status,
        error: None,
    } = &answer
    {
        panic!("status {status}: the body is not a JSON error");
    }
    answer
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for (stop, _) in &self.workers {
            stop.cancel();
        }
        for task in &self.tasks {
            task.abort();
        }
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}

async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: the body is not JSON ({e}): {text}"));
    (status, body)
}

/// A real API or worker process; killed when dropped.
pub struct ChildProcess {
    child: Child,
}

impl ChildProcess {
    /// Resident memory of the process now, in KiB (VmRSS).
    /// The process's limit of open files: (soft, hard), from /proc.
    pub fn open_files_limit(&self) -> (String, String) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id()))
            .unwrap_or_default();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap_or_default()
            .to_owned();
        let mut fields = line.split_whitespace().skip(3);
        (
            fields.next().unwrap_or_default().to_owned(),
            fields.next().unwrap_or_default().to_owned(),
        )
    }

    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit, at most `within`.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.stop_with("TERM", within)
    }

    /// Sends a signal (`STOP`, `CONT`, ...) and returns at once.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIG{signal} was delivered");
    }

    /// Sends a signal (`TERM`, `INT`) and waits for the exit, at most `within`.
    pub fn stop_with(&mut self, signal: &str, within: Duration) -> ExitStatus {
        self.signal(signal);
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited on") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// A client machine: HTTP requests from source address `ip` (all of 127/8 is loopback, so each
/// 127.0.0.x stands for a machine of its own).
pub fn machine(ip: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip)
        .pool_max_idle_per_host(64)
        .pool_idle_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

pub fn new_user() -> String {
    Uuid::new_v4().to_string()
}

pub fn seat_of(event: &str, n: u32) -> String {
    format!("{event}:{n}")
}

/// The acceptance order of a job: the sequence number in its id (`<event>:j<seq>.<tag>`).
pub fn job_seq(job: &str) -> u64 {
    loadgen::api::job_seq(job).expect("a job id ends with :j<seq>.<tag>")
}

/// `expiresAt` of the seat a successful hold left, in ms since the epoch.
pub fn expires_at(done: &JobView) -> i64 {
    done.seat().and_then(|s| s.expires_at).expect("expiresAt")
}

/// Milliseconds since the epoch of an RFC 3339 time as the API writes it.
pub fn rfc3339_ms(s: &str) -> i64 {
    loadgen::api::rfc3339_ms(s).expect("an RFC 3339 time after the epoch")
}

/// The Redis keys of an event, for tests that look at the data directly.
pub fn keys_of(event: &str) -> queue_core::keys::EventKeys {
    queue_core::keys::EventKeys::new(event.parse().expect("an event id"))
}

/// This machine's clock in ms since the epoch (the test Redis runs on the same machine).
pub use loadgen::api::now_ms;

/// The entries of an event's changes stream after entry id `after` (`0-0` for all), straight from
/// Redis: each entry's id and its fields (values as text, lossily for the raw user id).
pub async fn change_entries(
    app: &TestApp,
    event: &str,
    after: &str,
) -> Vec<(String, HashMap<String, String>)> {
    let redis = app.redis.client().await;
    let entries: fred::types::Value = fred::interfaces::StreamsInterface::xrange(
        &redis,
        keys_of(event).changes,
        format!("({after}"),
        "+",
        None,
    )
    .await
    .expect("XRANGE");
    let text = |v: fred::types::Value| {
        v.as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    entries
        .into_array()
        .into_iter()
        .map(|entry| {
            let mut parts = entry.into_array().into_iter();
            let id = parts.next().map(text).expect("an entry id");
            let values: Vec<String> = parts
                .next()
                .map(|f| f.into_array().into_iter().map(text).collect())
                .unwrap_or_default();
            let fields = values
                .chunks(2)
                .filter_map(|pair| Some((pair.first()?.clone(), pair.get(1)?.clone())))
                .collect();
            (id, fields)
        })
        .collect()
}

/// Where an event's queue stands, read straight from Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueState {
    /// The sequence numbers of the last job accepted (`enq`) and the last taken off the queue
    /// (`deq`).
    pub enq: u64,
    pub deq: u64,
    /// Until when (ms) a worker holds the event's lease; 0 when none does.
    pub lease: i64,
    /// Jobs in the list.
    pub queued: u64,
}

impl QueueState {
    /// Jobs accepted and not yet taken off the queue.
    pub fn left(&self) -> u64 {
        self.enq.saturating_sub(self.deq)
    }

    /// Every accepted job was taken off the queue.
    pub fn drained(&self) -> bool {
        self.queued == 0 && self.deq == self.enq
    }
}

pub async fn queue_state(redis: &Client, event: &str) -> QueueState {
    use fred::interfaces::{HashesInterface, ListInterface};
    let keys = keys_of(event);
    let (enq, deq, lease): (Option<u64>, Option<u64>, Option<i64>) = redis
        .hmget(&keys.event, vec!["enq", "deq", "lease"])
        .await
        .expect("HMGET");
    let queued: u64 = redis.llen(&keys.queue).await.expect("LLEN");
    QueueState {
        enq: enq.unwrap_or(0),
        deq: deq.unwrap_or(0),
        lease: lease.unwrap_or(0),
        queued,
    }
}

/// How often the worker holding the housekeeping turn reconciles stalled queues
/// (`RECONCILE_EVERY` in worker/src/housekeeping.rs, "every second" in docs/ARCHITECTURE.md, the
/// queue); no setting names it.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(1);

/// How soon an event whose worker was killed holding its lease is taken over by another: the
/// lease lapses within `lease_ms` of the kill, then the next reconcile, on a housekeeping tick at
/// least RECONCILE_EVERY after the one before, hands the event to a live worker. Plus 750 ms for
/// this 2-core machine, shared with other engineers' builds and tests (measured: 2.7-3.0 s after
/// the kill, against 3.25 s for those three).
pub fn taken_over_within(workers: &queue_core::settings::WorkerSettings) -> Duration {
    Duration::from_millis(workers.lease_ms + workers.housekeeping_ms + 750) + RECONCILE_EVERY
}

/// How long a worker may take to apply the 10,000 jobs or so of a backlog it took over: 0.2-0.4 s
/// measured alone, 0.9 s beside other tests; three times the latter.
pub const BACKLOG_APPLIED_WITHIN: Duration = Duration::from_secs(3);

/// Polls until every job accepted on `event` was taken off its queue; panics after `within`.
pub async fn wait_drained(redis: &Client, event: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let state = queue_state(redis, event).await;
        if state.drained() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the queue of {event} was not drained within {within:?}: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Queues holds (seat id, user id) the way `POST /seats/hold` does, through
/// `Enqueuer::enqueue`, the one call its handler makes, 256 at a time: a backlog of thousands of
/// jobs in a moment, where HTTP would take seconds. Each must be accepted; returns the job ids in
/// the order of `holds`, as the API would have handed them out (`job_ids`: [`TestApp::job_ids`]).
pub async fn queue_holds(
    enqueuer: &queue_core::Enqueuer,
    job_ids: &api::job_ids::JobIds,
    holds: &[(String, String)],
) -> Vec<String> {
    use futures::stream::{self, StreamExt};
    use queue_core::{Enqueued, JobKind as Kind};
    stream::iter(holds)
        .map(|(seat, user)| async move {
            let answer = enqueuer
                .enqueue(
                    Kind::Hold,
                    seat.parse().expect("a seat id"),
                    user.parse().expect("a user id"),
                )
                .await;
            match answer {
                Ok(Enqueued::Accepted { job, .. }) => job_ids.public(job),
                other => panic!("the hold of {seat} is accepted: {other:?}"),
            }
        })
        .buffered(256)
        .collect()
        .await
}

/// Every job of `event` with a record in its results hash (finished, or waiting for a retry), by
/// sequence number, decoded as the API decodes them: read straight from Redis, for checks over
/// thousands of jobs.
pub async fn job_records(
    app: &TestApp,
    redis: &Client,
    event: &str,
) -> HashMap<u64, queue_core::JobView> {
    let records: HashMap<u64, fred::bytes::Bytes> =
        fred::interfaces::HashesInterface::hgetall(redis, keys_of(event).results)
            .await
            .expect("HGETALL");
    let id = event.parse().expect("an event id");
    let limit = app.settings.reservations.max_held_seats;
    records
        .into_iter()
        .map(|(seq, record)| {
            let view = queue_core::wire::decode_record(id, &record, limit)
                .unwrap_or_else(|e| panic!("job {seq}: {e}"));
            (seq, view)
        })
        .collect()
}

/// G4 over holds queued as (seat id, user id, job id): each one ended `completed`, and its effect
/// was applied once. On every seat the earliest accepted hold won (200, the seat held by its
/// user) and each later one found the seat held (409). A job lost, failed, or applied twice (a
/// second application finds the seat its first one took, and its record says 409) fails this.
pub fn assert_each_seat_went_to_its_first_hold(
    holds: &[(String, String, String)],
    records: &HashMap<u64, queue_core::JobView>,
) {
    use queue_core::{JobState, Refusal, SeatStatus as Status};
    let mut by_seat: HashMap<&str, Vec<(u64, &str)>> = HashMap::new();
    for (seat, user, job) in holds {
        by_seat
            .entry(seat)
            .or_default()
            .push((job_seq(job), user.as_str()));
    }
    for (seat, mut jobs) in by_seat {
        jobs.sort_unstable();
        for (i, (seq, user)) in jobs.iter().enumerate() {
            let record = records
                .get(seq)
                .unwrap_or_else(|| panic!("job {seq} on {seat} has a record: it was applied"));
            let JobState::Completed {
                result, seat: left, ..
            } = &record.state
            else {
                panic!("job {seq} on {seat} completed: {record:?}");
            };
            let holder = left.and_then(|s| s.state.user()).map(|u| u.to_string());
            if i == 0 {
                assert_eq!(
                    (result, holder.as_deref()),
                    (&Ok(()), Some(*user)),
                    "job {seq}, the first hold of {seat}, won it: {record:?}"
                );
            } else {
                assert_eq!(
                    result,
                    &Err(Refusal::Conflict {
                        current: Status::OnHold
                    }),
                    "job {seq}, a later hold of {seat}, found it held: {record:?}"
                );
            }
        }
    }
}

/// Jobs each worker reported applied in its last heartbeat, by worker name.
pub async fn applied_by_worker(redis: &Client) -> HashMap<String, u64> {
    let beats: HashMap<String, String> =
        fred::interfaces::HashesInterface::hgetall(redis, queue_core::keys::WORKERS)
            .await
            .expect("HGETALL");
    beats
        .into_iter()
        .filter_map(|(name, raw)| {
            let beat = queue_core::workers::Heartbeat::parse(&raw)?;
            Some((name, beat.applied))
        })
        .collect()
}

/// Every entry of Redis's slow log (`SLOWLOG GET -1`), oldest last: how long the command took,
/// and its arguments as text (the command's name first; Redis keeps at most 32).
pub async fn slowlog(redis: &Client) -> Vec<(Duration, Vec<String>)> {
    let entries: fred::types::Value = redis
        .custom(
            fred::cmd!("SLOWLOG"),
            vec!["GET".to_owned(), "-1".to_owned()],
        )
        .await
        .expect("SLOWLOG GET");
    let fred::types::Value::Array(entries) = entries else {
        panic!("SLOWLOG GET answers an array: {entries:?}");
    };
    entries
        .iter()
        .filter_map(|entry| match entry {
            fred::types::Value::Array(fields) => {
                let micros = fields.get(2).and_then(fred::types::Value::as_i64)?;
                let args = match fields.get(3) {
                    Some(fred::types::Value::Array(args)) => args
                        .iter()
                        .filter_map(|a| a.as_str().map(|s| s.to_string()))
                        .collect(),
                    _ => Vec::new(),
                };
                Some((Duration::from_micros(micros.max(0) as u64), args))
            }
            _ => None,
        })
        .collect()
}

/// How many job status reads (`job_status.lua`, the only script given the event's tombstone key
/// with three others) the slow log holds for `event`; the slow log must record every command,
/// and the script must be loaded already (a first EVALSHA that meets NOSCRIPT is sent again).
pub async fn job_status_reads(redis: &Client, event: &str) -> usize {
    let tombstone = keys_of(event).deleted;
    slowlog(redis)
        .await
        .into_iter()
        .filter(|(_, args)| {
            args.first()
                .is_some_and(|c| c.eq_ignore_ascii_case("evalsha"))
                && args.get(2).is_some_and(|n| n == "4")
                && args.contains(&tombstone)
        })
        .count()
}

/// Makes Redis log every command it runs (SLOWLOG), from an empty log.
pub async fn log_every_command(redis: &Client) {
    for (name, value) in [
        ("slowlog-max-len", 1_000_000),
        ("slowlog-log-slower-than", 0),
    ] {
        let _: () = fred::interfaces::ConfigInterface::config_set(redis, name, value)
            .await
            .expect("CONFIG SET");
    }
    let _: () = redis
        .custom(fred::cmd!("SLOWLOG"), vec!["RESET".to_owned()])
        .await
        .expect("SLOWLOG RESET");
}

/// Waits until `n` connections subscribe to the finished-jobs channel: PUBSUB NUMSUB summed
/// over every node that answers (on a cluster a subscriber is on any one of them).
pub async fn wait_finished_subscribers(redis: &TestRedis, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut nodes = Vec::new();
    for port in redis.live_ports() {
        nodes.push(TestRedis::node_client(port).await);
    }
    loop {
        let mut found = 0;
        for node in &nodes {
            let reply: Vec<fred::types::Value> = node
                .custom(
                    fred::cmd!("PUBSUB"),
                    vec![
                        "NUMSUB".to_owned(),
                        queue_core::keys::FINISHED_CHANNEL.to_owned(),
                    ],
                )
                .await
                .expect("PUBSUB NUMSUB");
            found += reply
                .get(1)
                .and_then(fred::types::Value::as_i64)
                .unwrap_or(0);
        }
        if found == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} finished-jobs subscribers within 10 s, not {found}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
