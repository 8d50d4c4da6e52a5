//! The HTTP API of the seat-reservation service (docs/CONTRACT.md §2): validates requests, answers the
//! synchronous ones, and turns holds and reserves into jobs for the workers.

use std::borrow::Cow;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_service::{IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::{Server, Service};
use actix_web::http::header;
use actix_web::middleware::ErrorHandlers;
use actix_web::web::{self, PayloadConfig};
use actix_web::{App, HttpRequest, HttpResponse, ResponseError, Route};
use anyhow::Context;
use queue_core::{Enqueuer, Settings, Store};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub mod changes;
pub mod dto;
pub mod error;
pub mod head_deadline;
pub mod headers;
pub mod identity;
pub mod job_ids;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
pub mod routes;
pub mod snapshots;
pub mod state;
pub mod stream_slots;
pub mod waiters;

use error::{json_error_body, ApiError};
use openapi::ApiDoc;
use state::AppState;
use waiters::Waiters;

/// Redis connections of the API's background tasks (each HTTP worker has a pool of its own).
const BACKGROUND_POOL_SIZE: usize = 2;

/// The API, bound to its port and ready to serve.
pub struct Application {
    port: u16,
    server: Server,
    state: Arc<AppState>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects to Redis and binds BIND:PORT (port 0 picks a free one; see [`Application::port`]).
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let api = &settings.api;
        // REDIS_POOL_SIZE connections are shared out among the HTTP workers; the background
        // tasks (drain rate, feeds) need few.
        let per_worker = (settings.redis.pool_size / api.http_workers).max(1);
        let mut for_background = settings.clone();
        for_background.redis.pool_size = BACKGROUND_POOL_SIZE;
        let identity = Arc::new(identity::Identity::from_settings(&settings.auth)?);
        let descriptors = stream_slots::raise_descriptor_limit();
        let streams = &settings.streams;
        let stream_slots = Arc::new(stream_slots::StreamSlots::new(
            streams.per_client,
            streams.total,
            descriptors,
        ));
        let job_ids = Arc::new(job_ids::JobIdKey::new(api).context("cannot make a job-id key")?);
        let limiter = web::Data::new(rate_limit::RateLimiter::from_settings(
            &settings.rate_limits,
        )?);
        let store = Store::connect(&for_background).await?;
        // Read now, so that the first job request does not wait for it; should Redis be down, it
        // is read at the first job request after Redis is back (the API answers 503 till then).
        if let Err(e) = job_ids.get(&store).await {
            tracing::warn!(error = %e, "cannot read the job-id key from Redis yet");
        }
        let listener = TcpListener::bind((api.bind.as_str(), api.port))
            .with_context(|| format!("cannot listen on {}:{}", api.bind, api.port))?;
        let port = listener.local_addr()?.port();
        let replica_acks = store.waits_for_replicas();
        let state = Arc::new(AppState {
            enqueuer: Enqueuer::new(store.clone()),
            store,
            drain: Arc::default(),
            waiters: Arc::new(Waiters::new(
                Duration::from_secs(settings.queue.job_result_ttl_secs),
                replica_acks,
            )),
            changes: Arc::default(),
            snapshots: Arc::default(),
            metrics: Arc::new(metrics::Metrics::new().context("cannot set up the metrics")?),
            identity: identity.clone(),
            stream_slots,
            stream_lifetime: Duration::from_secs(streams.max_lifetime_secs),
            job_ids,
            stopping: CancellationToken::new(),
        });
        let shared = state.clone();
        let limit = api.max_body_bytes;
        let body_timeout = Duration::from_millis(api.client_request_timeout_ms);
        let head_timeout = Duration::from_millis(api.client_request_timeout_ms);
        let local = listener.local_addr()?;
        let app = move || {
            let shared = shared.clone();
            let metrics = shared.metrics.clone();
            let identity = web::Data::from(shared.identity.clone());
            let limiter = limiter.clone();
            App::new()
                // Each worker thread connects its own pool, from that thread, before it serves:
                // fred's connection tasks then run on the thread of the requests that use them,
                // and a Redis command costs no hop to another thread and back (that hop was the
                // API's largest cost under load, in context switches). The pools are siblings:
                // while one has no connection up (each reconnects on its own backoff after an
                // outage), its requests go out on another's.
                .data_factory(move || {
                    let shared = shared.clone();
                    async move {
                        let store = shared.store.sibling(per_worker).await?;
                        Ok::<_, queue_core::Error>(AppState {
                            enqueuer: Enqueuer::new(store.clone()),
                            store,
                            ..AppState::clone(&shared)
                        })
                    }
                })
                .app_data(identity)
                .app_data(limiter)
                .app_data(PayloadConfig::new(limit))
                .app_data(json::BodyLimit(limit))
                // A body has as long to arrive as the head (actix's timeout covers the head only).
                .app_data(json::BodyTimeout(body_timeout))
                .wrap(ErrorHandlers::new().default_handler(json_error_body))
                .wrap_fn(|req, service| headers::secured(service.call(req)))
                .wrap_fn({
                    move |req, service| {
                        let started = std::time::Instant::now();
                        let method = req.method().clone();
                        let answer = service.call(req);
                        let metrics = metrics.clone();
                        async move {
                            let res = answer.await?;
                            // Our resources carry their pattern; for anything else (Swagger
                            // UI, an unknown path) it is looked up, walking the routes again.
                            let route = match res.request().app_data::<RouteLabel>() {
                                Some(label) => Cow::Borrowed(label.0),
                                None => res
                                    .request()
                                    .match_pattern()
                                    .map_or(Cow::Borrowed("unmatched"), Cow::Owned),
                            };
                            metrics.observe(&method, &route, res.status(), started.elapsed());
                            Ok(res)
                        }
                    }
                })
                .configure(routes)
                .default_service(web::to(route_not_found))
        };
        // What actix-web's HttpServer::listen builds, with the same settings, but with each
        // connection's socket wrapped in a deadline for every request head, not only the first
        // (head_deadline.rs).
        let keep_alive = Duration::from_secs(api.keep_alive_secs);
        let builder = actix_server::Server::build();
        let graceful = builder.graceful_shutdown_signal();
        let server = builder
            .workers(api.http_workers)
            .shutdown_timeout(api.shutdown_timeout_secs)
            .disable_signals()
            .listen("api", listener, move || {
                let app = app()
                    .into_factory()
                    .map_err(|e: actix_web::Error| e.error_response());
                let graceful = graceful.clone();
                let http = actix_http::HttpService::build()
                    // Kept-alive connections close when the server stops.
                    .graceful_shutdown_signal(move || {
                        let graceful = graceful.clone();
                        async move { graceful.notified().await }
                    })
                    .keep_alive(keep_alive)
                    .client_request_timeout(head_timeout)
                    // A closing connection has a second to finish, as under HttpServer.
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .local_addr(local)
                    .finish(actix_service::map_config(app, |()| {
                        actix_web::dev::AppConfig::default()
                    }));
                actix_service::fn_service(move |io: actix_web::rt::net::TcpStream| async move {
                    // Answers go out as soon as they are written, never held back by Nagle's
                    // algorithm for the client's (possibly delayed) ACK of the previous one.
                    let _ = io.set_nodelay(true);
                    let peer = io.peer_addr().ok();
                    Ok::<_, actix_http::error::DispatchError>((
                        head_deadline::HeadDeadline::new(io, head_timeout),
                        actix_http::Protocol::Http1,
                        peer,
                    ))
                })
                .and_then(http)
            })?
            .run();
        Ok(Self {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets requests in flight finish
    /// and returns.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let state = self.state.clone();
        let measuring = shutdown.clone();
        let drain =
            tokio::spawn(async move { state.drain.keep_measuring(&state.store, measuring).await });
        let (state, listening) = (self.state.clone(), shutdown.clone());
        let listener =
            tokio::spawn(async move { state.waiters.listen(&state.store, listening).await });
        let (state, feeding) = (self.state.clone(), shutdown.clone());
        let feeds = tokio::spawn(async move { state.changes.run(&state.store, feeding).await });
        let stopper = shutdown.clone();
        let stopping = self.state.stopping.clone();
        tokio::spawn(async move {
            stopper.cancelled().await;
            stopping.cancel();
            tracing::info!("stopping the API: no new connections, finishing requests in flight");
            handle.stop(true).await;
        });
        tracing::info!(port = self.port, "API listening");
        let served = self.server.await;
        shutdown.cancel();
        let _ = drain.await;
        let _ = listener.await;
        let _ = feeds.await;
        self.state.store.quit().await;
        served.context("the HTTP server failed")
    }
}

/// A resource's path pattern, the `route` label of its metrics.
#[derive(Debug, Clone, Copy)]
struct RouteLabel(&'static str);

/// Every route of docs/CONTRACT.md §2. Each path is one resource, so that a wrong method on a known path
/// gets 405 and an unknown path 404 (the app's default service), both as JSON.
///
/// Routes are tried in order, and a path with a `{parameter}` costs a regular expression match:
/// the fixed paths come first, the busiest (the holds) at the top.
///
/// Each resource is wrapped in the rate limit of its route class (`rate_limit::class_of`),
/// checked before its handler reads anything.
fn routes(cfg: &mut web::ServiceConfig) {
    use routes::{events, health, jobs, metrics, page, seats, stream};
    let resource = |path: &'static str, allow: &'static str, route: Route| {
        web::resource(path)
            .app_data(RouteLabel(path))
            .wrap(rate_limit::RateLimit(path))
            .route(route)
            .default_service(web::to(move |req: HttpRequest| {
                method_not_allowed(req, allow)
            }))
    };
    cfg.service(resource("/seats/hold", "POST", web::post().to(seats::hold)))
        .service(resource(
            "/seats/reserve",
            "POST",
            web::post().to(seats::reserve),
        ))
        .service(resource(
            "/seats/refresh",
            "POST",
            web::post().to(seats::refresh),
        ))
        .service(resource(
            "/seats/hold/refresh",
            "POST",
            web::post().to(seats::hold_refresh),
        ))
        .service(resource(
            "/seats/release",
            "POST",
            web::post().to(seats::release),
        ))
        .service(resource(
            "/events/create",
            "POST",
            web::post().to(events::create),
        ))
        .service(resource("/events", "GET", web::get().to(events::list)))
        .service(resource("/health", "GET", web::get().to(health::health)))
        .service(resource("/metrics", "GET", web::get().to(metrics::metrics)))
        .service(resource("/", "GET", web::get().to(page::seat_map)))
        .service(resource(
            "/seats/job/{jobId}/status",
            "GET",
            web::get().to(jobs::status),
        ))
        .service(resource(
            "/seats/get/{id}",
            "GET",
            web::get().to(seats::get),
        ))
        .service(resource(
            "/seats/list/{eventId}",
            "GET",
            web::get().to(events::list_seats),
        ))
        .service(
            resource("/events/{id}", "GET, DELETE", web::get().to(events::get))
                .route(web::delete().to(events::delete)),
        )
        .service(resource(
            "/events/{id}/stream",
            "GET",
            web::get().to(stream::stream),
        ))
        .service(
            SwaggerUi::new("/swagger-ui/{_:.*}").url("/api-docs/openapi.json", ApiDoc::openapi()),
        )
        .service(web::resource("/swagger-ui").route(web::get().to(|| async {
            HttpResponse::MovedPermanently()
                .insert_header((header::LOCATION, "/swagger-ui/"))
                .finish()
        })));
}

async fn method_not_allowed(req: HttpRequest, allow: &'static str) -> HttpResponse {
    ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        allow,
    }
    .error_response()
}

async fn route_not_found(req: HttpRequest) -> HttpResponse {
    ApiError::RouteNotFound {
        method: req.method().to_string(),
        path: req.path().chars().take(200).collect(),
    }
    .error_response()
}

/// The whole `api` binary: settings from CONFIG_DIR (default `config`) and the environment, logs,
/// then serve until SIGTERM or SIGINT.
pub async fn run_from_env() -> anyhow::Result<()> {
    let dir =
        std::path::PathBuf::from(std::env::var("CONFIG_DIR").unwrap_or_else(|_| "config".into()));
    let settings = Settings::load(&dir)?;
    let _log = bootstrap::init_tracing("api", settings.log.dir.as_ref(), &settings.log.level)?;
    let app = Application::build(&settings).await?;
    app.run_until_stopped(bootstrap::shutdown_signal()).await
}

/// The `api` binary, as shipped and as the e2e tests run it: [`run_from_env`] on a
/// current_thread runtime. The requests run on actix's HTTP worker threads, each with its own
/// Redis pool; this runtime only runs the background tasks (finished-job and seat-change feeds,
/// the drain rate), which need no more than one thread.
///
/// `api token --sub ID [--admin] [--ttl 1h] [--private-key FILE]` prints a JWT the configured
/// service accepts instead (see [`token_command`]).
pub fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("token") {
        return token_command(&args[1..]);
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run_from_env())
}

/// `api token`: mints a JWT for testing with the configured AUTH_JWT_SECRET (HS256), or with
/// `--private-key FILE` (RS256 or ES256), carrying the configured `iss` and `aud`.
pub fn token_command(args: &[String]) -> anyhow::Result<()> {
    const USAGE: &str = "usage: api token --sub ID [--admin] [--ttl 1h] [--private-key FILE]";
    let mut request = identity::MintRequest {
        sub: String::new(),
        admin: false,
        ttl: Duration::from_secs(3600),
        private_key: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .with_context(|| format!("{arg} needs a value; {USAGE}"))
        };
        match arg.as_str() {
            "--sub" => request.sub = value()?,
            "--admin" => request.admin = true,
            "--ttl" => {
                let ttl = value()?;
                request.ttl = humantime::parse_duration(&ttl).with_context(|| {
                    format!("--ttl `{ttl}` is not a duration such as 1h or 90s")
                })?;
            }
            "--private-key" => request.private_key = Some(value()?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument `{other}`; {USAGE}"),
        }
    }
    if request.sub.is_empty() {
        anyhow::bail!("--sub is required; {USAGE}");
    }
    let dir =
        std::path::PathBuf::from(std::env::var("CONFIG_DIR").unwrap_or_else(|_| "config".into()));
    let settings = Settings::load(&dir)?;
    println!("{}", identity::mint(&settings.auth, &request)?);
    Ok(())
}
