//! The service's settings: one typed tree, loaded once at startup from `config/default.toml`, an
//! optional `config/local.toml`, then the environment variables of [`ENV_OVERRIDES`], and
//! validated before anything starts. Each component takes only its own part.

use std::path::Path;

use serde::Deserialize;

/// Environment variables and the setting each one overrides. Listed explicitly (rather than by a
/// prefix convention) because docs/CONTRACT.md §4 fixes these exact names.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("PORT", "api.port"),
    ("BIND", "api.bind"),
    ("API_HTTP_WORKERS", "api.http_workers"),
    ("REDIS_URL", "redis.url"),
    ("REDIS_POOL_SIZE", "redis.pool_size"),
    ("REDIS_REPLICA_ACKS", "redis.replica_acks"),
    ("WORKERS", "workers.count"),
    ("WORKER_CONCURRENCY", "workers.concurrency"),
    ("WORKER_CALLS_IN_FLIGHT", "workers.calls_in_flight"),
    ("HOLD_TTL_SECS", "reservations.hold_ttl_secs"),
    (
        "MAX_HOLD_LIFETIME_SECS",
        "reservations.max_hold_lifetime_secs",
    ),
    ("MAX_HELD_SEATS", "reservations.max_held_seats"),
    ("JOB_RESULT_TTL_SECS", "queue.job_result_ttl_secs"),
    ("QUEUE_MAX_DEPTH", "queue.max_depth"),
    ("JOB_RETRY_ATTEMPTS", "queue.retry_attempts"),
    ("JOB_RETRY_BASE_MS", "queue.retry_base_ms"),
    ("EVENT_RETENTION", "queue.event_retention"),
    ("LOG_DIR", "log.dir"),
    ("LOG_LEVEL", "log.level"),
    ("STREAMS_PER_CLIENT", "streams.per_client"),
    ("STREAMS_TOTAL", "streams.total"),
    ("STREAM_MAX_LIFETIME_SECS", "streams.max_lifetime_secs"),
    ("AUTH_MODE", "auth.mode"),
    ("AUTH_JWT_SECRET", "auth.jwt_secret"),
    ("AUTH_JWT_PUBLIC_KEY_FILE", "auth.jwt_public_key_file"),
    ("AUTH_JWT_ISSUER", "auth.jwt_issuer"),
    ("AUTH_JWT_AUDIENCE", "auth.jwt_audience"),
    ("ADMIN_TOKEN", "auth.admin_token"),
    ("JOB_ID_SECRET", "api.job_id_secret"),
    ("RATE_LIMITS", "rate_limits.enabled"),
    ("TRUSTED_PROXIES", "rate_limits.trusted_proxies"),
];

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub api: ApiSettings,
    pub redis: RedisSettings,
    pub workers: WorkerSettings,
    pub reservations: ReservationSettings,
    pub queue: QueueSettings,
    pub log: LogSettings,
    pub auth: AuthSettings,
    pub streams: StreamSettings,
    pub rate_limits: RateLimitSettings,
}

/// The seat streams (`GET /events/{id}/stream`) one API process keeps open (admission, G10).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct StreamSettings {
    /// Streams one client address may have open at once.
    pub per_client: usize,
    /// Streams the process keeps open in all (lowered to fit its file-descriptor limit).
    pub total: usize,
    /// A stream is ended after this long; its client resumes with `Last-Event-ID`.
    pub max_lifetime_secs: u64,
}

/// The API's settings. `Debug` never shows the job-id secret.
#[derive(Clone, Deserialize)]
pub struct ApiSettings {
    pub port: u16,
    pub bind: String,
    pub http_workers: usize,
    pub max_body_bytes: usize,
    pub keep_alive_secs: u64,
    pub client_request_timeout_ms: u64,
    pub shutdown_timeout_secs: u64,
    /// The key the job ids the API hands out are authenticated with: at least
    /// [`MIN_JOB_ID_SECRET_BYTES`] bytes, or empty for the deployment's own random key in Redis
    /// (`keys::JOB_ID_KEY`).
    pub job_id_secret: String,
}

/// The shortest JOB_ID_SECRET accepted: 256 bits of key for a 128-bit tag, so that the key is no
/// easier to guess than a tag.
pub const MIN_JOB_ID_SECRET_BYTES: usize = 32;

impl std::fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = if self.job_id_secret.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("ApiSettings")
            .field("port", &self.port)
            .field("bind", &self.bind)
            .field("http_workers", &self.http_workers)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("keep_alive_secs", &self.keep_alive_secs)
            .field("client_request_timeout_ms", &self.client_request_timeout_ms)
            .field("shutdown_timeout_secs", &self.shutdown_timeout_secs)
            .field("job_id_secret", &secret)
            .finish()
    }
}

/// The schemes REDIS_URL may start with: one Redis, or a Redis Cluster (fred's form,
/// `redis-cluster://host:port?node=host:port&node=...`, every `node` a further seed).
pub const REDIS_SCHEMES: [&str; 4] = [
    "redis://",
    "rediss://",
    "redis-cluster://",
    "rediss-cluster://",
];

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: String,
    pub pool_size: usize,
    pub command_timeout_ms: u64,
    /// Replicas that must have a write (WAIT) before the 202 of a job it accepted, and before
    /// the announcement of the results it stored: 0 (the default) waits for none.
    pub replica_acks: u32,
    /// How long that WAIT waits; fewer acknowledgements by then: the request gets 503.
    pub replica_ack_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    pub count: usize,
    pub concurrency: usize,
    /// `process.lua` calls one worker process has in flight on one Redis primary at once. A
    /// drain task holding a token waits for one meanwhile, and its event's batch fills.
    pub calls_in_flight: usize,
    pub batch_size: usize,
    pub lease_ms: u64,
    pub heartbeat_ms: u64,
    pub housekeeping_ms: u64,
}

/// The rules of holding and reserving.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ReservationSettings {
    pub hold_ttl_secs: u64,
    pub max_hold_lifetime_secs: u64,
    pub max_held_seats: u32,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct QueueSettings {
    pub job_result_ttl_secs: u64,
    pub max_depth: u64,
    /// Attempts a job that cannot be applied gets before it ends `failed` (1: no retry).
    pub retry_attempts: u32,
    /// The first retry's delay; each further one doubles, up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// How long an event is kept after its `endsAt` before the housekeeping deletes it: a
    /// duration such as `"7d"` or `"90s"` (humantime), or a number of seconds.
    #[serde(deserialize_with = "duration")]
    pub event_retention: std::time::Duration,
}

/// A duration written as humantime (`"7d"`, `"1h 30m"`, `"500ms"`) or as whole seconds (`1`,
/// `"1"`: the environment gives strings).
fn duration<'de, D: serde::Deserializer<'de>>(de: D) -> Result<std::time::Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(de)? {
        Raw::Secs(secs) => Ok(std::time::Duration::from_secs(secs)),
        Raw::Text(text) => match text.trim().parse::<u64>() {
            Ok(secs) => Ok(std::time::Duration::from_secs(secs)),
            Err(_) => humantime::parse_duration(text.trim()).map_err(|e| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a duration such as \"7d\" or \"3600\" (seconds): {e}"
                ))
            }),
        },
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub dir: String,
    pub level: String,
}

/// Who is asking (docs/CONTRACT.md §2): how a request names its user, and who is an admin.
/// The API reads it; `Debug` never shows a secret.
#[derive(Clone, Deserialize)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// HS256 secret (jwt mode): at least [`MIN_JWT_SECRET_BYTES`] bytes.
    pub jwt_secret: String,
    /// A PEM public key, RSA (RS256) or EC P-256 (ES256) (jwt mode).
    pub jwt_public_key_file: String,
    /// The `iss` a token must carry, when not empty.
    pub jwt_issuer: String,
    /// The `aud` a token must carry, when not empty.
    pub jwt_audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub jwt_leeway_secs: u64,
    /// The bearer secret of admin operations in none mode; empty: admin operations are refused.
    pub admin_token: String,
}

/// The shortest HS256 secret accepted: 256 bits, the size of the MAC (RFC 7518 §3.2).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// `AUTH_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// The body's `UUID` is the user (the original design).
    None,
    /// The user is the `sub` of a bearer JWT.
    Jwt,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("AuthSettings")
            .field("mode", &self.mode)
            .field("jwt_secret", &secret(&self.jwt_secret))
            .field("jwt_public_key_file", &self.jwt_public_key_file)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_leeway_secs", &self.jwt_leeway_secs)
            .field("admin_token", &secret(&self.admin_token))
            .finish()
    }
}

/// Rate limits (docs/CONTRACT.md §2, admission G10): one GCRA bucket per route class and client
/// (address; in jwt mode user too), kept in Redis so that every API instance shares it.
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    /// `RATE_LIMITS=off` turns every limit off (load tests from one machine).
    pub enabled: bool,
    /// Comma-separated CIDRs (or bare addresses) of the proxies whose `X-Forwarded-For` /
    /// `Forwarded` name the client; empty: the socket peer is the client.
    pub trusted_proxies: String,
    pub holds: Rate,
    pub writes: Rate,
    pub events: Rate,
    pub reads: Rate,
    pub streams: Rate,
}

/// One route class's limit: a full bucket admits `burst` requests at once, and one request's
/// worth comes back every `every_ms` (the sustained rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Rate {
    pub burst: u32,
    pub every_ms: u64,
}

/// The routes that share a limit (README, "Limits", says which is which and why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// `POST /seats/hold`.
    Holds,
    /// The other seat writes: reserve, refresh, release.
    Writes,
    /// `POST /events/create`.
    Events,
    /// Reads: events, seats, seat lists, job status, health, metrics.
    Reads,
    /// Opening `GET /events/{id}/stream`.
    Streams,
}

impl RouteClass {
    pub const ALL: [Self; 5] = [
        Self::Holds,
        Self::Writes,
        Self::Events,
        Self::Reads,
        Self::Streams,
    ];

    /// Its name in limiter keys and in the `RateLimit-Policy` / `RateLimit` headers.
    pub fn name(self) -> &'static str {
        match self {
            Self::Holds => "holds",
            Self::Writes => "writes",
            Self::Events => "events",
            Self::Reads => "reads",
            Self::Streams => "streams",
        }
    }
}

impl RateLimitSettings {
    pub fn rate(&self, class: RouteClass) -> Rate {
        match class {
            RouteClass::Holds => self.holds,
            RouteClass::Writes => self.writes,
            RouteClass::Events => self.events,
            RouteClass::Reads => self.reads,
            RouteClass::Streams => self.streams,
        }
    }

    /// The networks of TRUSTED_PROXIES; `Err` names the entry that is neither a CIDR nor an
    /// address.
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("`{entry}` is neither a CIDR (10.0.0.0/8) nor an address"))
            })
            .collect()
    }
}

/// A setting that is missing, malformed or out of range; the message names it.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting {key}{env}: {problem}")]
    Invalid {
        key: &'static str,
        env: String,
        problem: String,
    },
}

impl Settings {
    /// Loads the settings from `<dir>/default.toml`, `<dir>/local.toml` (optional) and the
    /// process's environment.
    pub fn load(dir: &Path) -> Result<Self, SettingsError> {
        Self::load_with(dir, |name| std::env::var(name).ok())
    }

    /// Like [`Settings::load`], reading "environment variables" from `env` (tests pass a map).
    pub fn load_with(
        dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from(dir.join("default.toml")).required(true))
            .add_source(config::File::from(dir.join("local.toml")).required(false));
        for (name, key) in ENV_OVERRIDES {
            builder = builder.set_override_option(*key, env(name))?;
        }
        let settings: Settings = builder.build()?.try_deserialize().map_err(|e| {
            // Name the environment variable too, since that is where a bad value usually comes from.
            let hint = ENV_OVERRIDES
                .iter()
                .find(|(_, key)| e.to_string().contains(key))
                .map(|(name, _)| format!(" (environment variable {name})"))
                .unwrap_or_default();
            config::ConfigError::Message(format!("{e}{hint}"))
        })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let r = &self.reservations;
        let w = &self.workers;
        let a = &self.auth;
        let jwt = a.mode == AuthMode::Jwt;
        let proxies = self.rate_limits.trusted_proxies();
        let rates_ok = RouteClass::ALL.into_iter().all(|class| {
            let rate = self.rate_limits.rate(class);
            (1..=1_000_000).contains(&rate.burst) && (1..=86_400_000).contains(&rate.every_ms)
        });
        let checks: [(&'static str, bool, String); 27] = [
            (
                "api.bind",
                self.api.bind.parse::<std::net::IpAddr>().is_ok(),
                "must be an IP address".into(),
            ),
            (
                "api.http_workers",
                self.api.http_workers >= 1,
                "must be at least 1".into(),
            ),
            (
                "api.max_body_bytes",
                self.api.max_body_bytes >= 256,
                "must be at least 256".into(),
            ),
            (
                "api.job_id_secret",
                self.api.job_id_secret.is_empty()
                    || self.api.job_id_secret.len() >= MIN_JOB_ID_SECRET_BYTES,
                format!(
                    "must be empty (a random key kept in Redis) or at least \
                     {MIN_JOB_ID_SECRET_BYTES} bytes"
                ),
            ),
            (
                "redis.url",
                REDIS_SCHEMES
                    .iter()
                    .any(|scheme| self.redis.url.starts_with(scheme)),
                "must start with redis:// or rediss:// (one Redis), or redis-cluster:// or \
                 rediss-cluster:// (a Redis Cluster: \
                 redis-cluster://host:port?node=host:port&node=...)"
                    .into(),
            ),
            (
                "redis.pool_size",
                (1..=64).contains(&self.redis.pool_size),
                "must be from 1 to 64".into(),
            ),
            (
                "redis.replica_acks",
                self.redis.replica_acks <= 16,
                "must be from 0 (wait for no replica) to 16".into(),
            ),
            (
                "redis.replica_ack_timeout_ms",
                (1..=60_000).contains(&self.redis.replica_ack_timeout_ms),
                "must be from 1 to 60000".into(),
            ),
            (
                "workers.concurrency",
                (1..=256).contains(&w.concurrency),
                "must be from 1 to 256".into(),
            ),
            (
                "workers.calls_in_flight",
                (1..=256).contains(&w.calls_in_flight),
                "must be from 1 to 256".into(),
            ),
            (
                "workers.batch_size",
                (1..=1000).contains(&w.batch_size),
                "must be from 1 to 1000".into(),
            ),
            (
                "workers.lease_ms",
                w.lease_ms >= 100,
                "must be at least 100".into(),
            ),
            (
                "reservations.hold_ttl_secs",
                r.hold_ttl_secs >= 1,
                "must be at least 1".into(),
            ),
            (
                "reservations.max_hold_lifetime_secs",
                r.max_hold_lifetime_secs >= r.hold_ttl_secs,
                format!("must be at least hold_ttl_secs ({})", r.hold_ttl_secs),
            ),
            (
                "reservations.max_held_seats",
                r.max_held_seats >= 1,
                "must be at least 1".into(),
            ),
            (
                "queue.job_result_ttl_secs",
                self.queue.job_result_ttl_secs >= 1,
                "must be at least 1".into(),
            ),
            (
                "queue.max_depth",
                self.queue.max_depth >= 1,
                "must be at least 1".into(),
            ),
            (
                "queue.retry_attempts",
                (1..=20).contains(&self.queue.retry_attempts),
                "must be from 1 to 20".into(),
            ),
            (
                "queue.event_retention",
                self.queue.event_retention >= std::time::Duration::from_secs(1),
                "must be at least 1 second".into(),
            ),
            (
                "queue.retry_max_ms",
                self.queue.retry_max_ms >= self.queue.retry_base_ms,
                format!(
                    "must be at least retry_base_ms ({})",
                    self.queue.retry_base_ms
                ),
            ),
            (
                "streams.per_client",
                self.streams.per_client >= 1 && self.streams.total >= self.streams.per_client,
                "must be at least 1, and streams.total at least as much".into(),
            ),
            (
                "streams.max_lifetime_secs",
                self.streams.max_lifetime_secs >= 1,
                "must be at least 1".into(),
            ),
            (
                "auth.jwt_secret",
                !jwt || a.jwt_secret.is_empty() != a.jwt_public_key_file.is_empty(),
                "AUTH_MODE=jwt needs exactly one of AUTH_JWT_SECRET (HS256) and \
                 AUTH_JWT_PUBLIC_KEY_FILE (RS256 or ES256)"
                    .into(),
            ),
            (
                "auth.jwt_secret",
                a.jwt_secret.is_empty() || a.jwt_secret.len() >= MIN_JWT_SECRET_BYTES,
                format!("must be at least {MIN_JWT_SECRET_BYTES} bytes (a random 256-bit secret)"),
            ),
            (
                "auth.admin_token",
                a.admin_token.is_empty() || a.admin_token.len() >= 16,
                "must be at least 16 characters (a random secret), or empty to refuse admin \
                 operations"
                    .into(),
            ),
            (
                "rate_limits.trusted_proxies",
                proxies.is_ok(),
                proxies.err().unwrap_or_default(),
            ),
            (
                "rate_limits",
                rates_ok,
                "each class needs a burst from 1 to 1000000 and every_ms from 1 to 86400000".into(),
            ),
        ];
        match checks.into_iter().find(|(_, ok, _)| !ok) {
            None => Ok(()),
            Some((key, _, problem)) => Err(SettingsError::Invalid {
                key,
                env: ENV_OVERRIDES
                    .iter()
                    .find(|(_, k)| *k == key)
                    .map(|(name, _)| format!(" ({name})"))
                    .unwrap_or_default(),
                problem,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        Settings::load_with(&dir, |name| env.get(name).cloned())
    }

    #[test]
    fn redis_url_takes_one_redis_or_a_cluster_and_names_both_forms_when_refused() {
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://cache.example:6380/2",
            "redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001&node=127.0.0.1:7002",
            "rediss-cluster://a.example:7000",
        ] {
            let s = load(&[("REDIS_URL", url)]).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(s.redis.url, url);
        }
        let err = load(&[("REDIS_URL", "http://127.0.0.1:6379")])
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("redis-cluster://") && err.contains("redis://"),
            "the error names both forms: {err}"
        );
    }

    #[test]
    fn defaults_match_the_spec() {
        let s = load(&[]).expect("the committed defaults are valid");
        assert_eq!(s.api.port, 3000);
        assert_eq!(s.redis.url, "redis://127.0.0.1:6379");
        assert_eq!(s.workers.count, 5);
        assert_eq!(s.reservations.hold_ttl_secs, 60);
        assert_eq!(s.reservations.max_hold_lifetime_secs, 600);
        assert_eq!(s.reservations.max_held_seats, 6);
        assert_eq!(s.queue.job_result_ttl_secs, 300);
        assert_eq!(s.queue.max_depth, 1_000_000);
        assert_eq!(s.log.dir, "logs");
        assert!(s.rate_limits.enabled, "rate limits are on by default");
        assert_eq!(s.rate_limits.trusted_proxies().map(|p| p.len()), Ok(0));
    }

    #[test]
    fn event_retention_is_a_duration_or_seconds_named_in_its_errors() {
        let day = std::time::Duration::from_secs(86_400);
        let s = load(&[]).expect("the defaults");
        assert_eq!(s.queue.event_retention, 7 * day, "seven days by default");
        let s = load(&[("EVENT_RETENTION", "1")]).expect("bare seconds");
        assert_eq!(s.queue.event_retention, std::time::Duration::from_secs(1));
        let s = load(&[("EVENT_RETENTION", "12h")]).expect("humantime");
        assert_eq!(s.queue.event_retention, day / 2);
        for bad in ["soon", "0", "-5", "500ms"] {
            let err = load(&[("EVENT_RETENTION", bad)])
                .expect_err("refused")
                .to_string();
            assert!(
                err.contains("EVENT_RETENTION") || err.contains("event_retention"),
                "the error for {bad:?} names the setting: {err}"
            );
        }
    }

    #[test]
    fn rate_limits_turn_off_and_trusted_proxies_parse() {
        let s = load(&[("RATE_LIMITS", "off")]).expect("off is a value");
        assert!(!s.rate_limits.enabled);
        let s = load(&[
            ("RATE_LIMITS", "on"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.2,::1"),
        ])
        .expect("CIDRs and bare addresses");
        assert!(s.rate_limits.enabled);
        let nets = s.rate_limits.trusted_proxies().expect("parsed");
        assert_eq!(nets.len(), 3);
        assert!(nets[0].contains(&"10.1.2.3".parse::<std::net::IpAddr>().expect("an ip")));
        assert!(nets[1].contains(&"127.0.0.2".parse::<std::net::IpAddr>().expect("an ip")));
        let err = load(&[("TRUSTED_PROXIES", "10.0.0.0/33")])
            .expect_err("a bad CIDR is refused")
            .to_string();
        assert!(
            err.contains("TRUSTED_PROXIES"),
            "the error names the variable: {err}"
        );
    }

    #[test]
    fn environment_overrides_and_bad_values_are_named() {
        let s = load(&[("PORT", "4000"), ("MAX_HELD_SEATS", "2")]).expect("valid overrides");
        assert_eq!(s.api.port, 4000);
        assert_eq!(s.reservations.max_held_seats, 2);

        let err = load(&[("PORT", "eighty")])
            .expect_err("PORT must be a number")
            .to_string();
        assert!(err.contains("PORT"), "the error names the variable: {err}");
        let err = load(&[("HOLD_TTL_SECS", "0")])
            .expect_err("a zero TTL is refused")
            .to_string();
        assert!(
            err.contains("HOLD_TTL_SECS"),
            "the error names the variable: {err}"
        );
        let err = load(&[("HOLD_TTL_SECS", "900")])
            .expect_err("TTL beyond the lifetime cap")
            .to_string();
        assert!(
            err.contains("MAX_HOLD_LIFETIME_SECS"),
            "the error names the cap: {err}"
        );
    }

    #[test]
    fn a_job_id_secret_is_long_enough_and_never_shown() {
        let s = load(&[]).expect("the committed defaults are valid");
        assert_eq!(
            s.api.job_id_secret, "",
            "no secret by default: the key in Redis"
        );

        let short = "s".repeat(MIN_JOB_ID_SECRET_BYTES - 1);
        let err = load(&[("JOB_ID_SECRET", &short)])
            .expect_err("a short secret is refused")
            .to_string();
        assert!(
            err.contains("JOB_ID_SECRET"),
            "the error names the variable: {err}"
        );
        assert!(
            !err.contains(&short),
            "the error does not show the secret: {err}"
        );

        let secret = "k".repeat(MIN_JOB_ID_SECRET_BYTES);
        let s = load(&[("JOB_ID_SECRET", &secret)]).expect("a long enough secret");
        assert_eq!(s.api.job_id_secret, secret);
        let shown = format!("{s:?}");
        assert!(!shown.contains(&secret), "Debug hides the secret: {shown}");
        assert!(
            shown.contains("<redacted>"),
            "Debug says there is one: {shown}"
        );
    }
}
