//! Rate limits (docs/CONTRACT.md §2, admission G10): each limited resource is wrapped in
//! [`RateLimit`], which runs before routing hands the request to its handler, so before any body is
//! read. One `rate_limit.lua` call (queue-core's [`Store::admit`]) charges the request to its
//! client address and, in jwt mode, to the user of its bearer token, in Redis, so that every API
//! instance shares the buckets.
//!
//! - The client address is the socket peer; when the peer is one of TRUSTED_PROXIES, it is the
//!   right-most address of `Forwarded: for=` (or, without that header, `X-Forwarded-For`) that
//!   is not a trusted proxy (the addresses to its left were written by the client itself and
//!   prove nothing).
//! - A refusal is a 429 `rate_limited` with `Retry-After`, `RateLimit-Policy` and `RateLimit`
//!   (draft-ietf-httpapi-ratelimit-headers-09/-10 syntax: `"holds";q=20;w=40` and
//!   `"holds";r=0;t=2`), and writes nothing. An admitted answer carries both headers too.
//! - Redis unavailable (or a broken limiter key): the writes (holds, seat writes, event creation)
//!   are refused as the error says (503 with `Retry-After`, they need Redis anyway); reads and
//!   streams go on unlimited, and answer from what they can (`/health` says Redis is down).

use std::future::{ready, Ready};
use std::net::IpAddr;
use std::rc::Rc;

use actix_web::body::BoxBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, ResponseError};
use futures::future::{Either, LocalBoxFuture};
use ipnet::IpNet;
use queue_core::keys::RateLimitClient;
use queue_core::rate_limit::Admission;
use queue_core::settings::{Rate, RateLimitSettings, RouteClass};

use crate::error::{ApiError, RateLimitRefusal as Refusal, POLICY_HEADER, STATE_HEADER};
use crate::identity::Identity;
use crate::state::AppState;

/// The limits of this process, from the settings.
#[derive(Debug)]
pub struct RateLimiter {
    settings: RateLimitSettings,
    trusted: Vec<IpNet>,
}

impl RateLimiter {
    pub fn from_settings(settings: &RateLimitSettings) -> anyhow::Result<Self> {
        let trusted = settings.trusted_proxies().map_err(|problem| {
            anyhow::anyhow!(
                "invalid setting rate_limits.trusted_proxies (TRUSTED_PROXIES): {problem}"
            )
        })?;
        Ok(Self {
            settings: settings.clone(),
            trusted,
        })
    }

    fn is_trusted(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.trusted.iter().any(|net| net.contains(&address))
    }

    /// The address of the client behind a request from `peer` (see the module's doc).
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let forwarded: Vec<Option<IpAddr>> = if headers.contains_key(header::FORWARDED) {
            headers
                .get_all(header::FORWARDED)
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|element| {
                    element
                        .split(';')
                        .filter_map(|pair| pair.split_once('='))
                        .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                        .and_then(|(_, value)| node_address(value))
                })
                .collect()
        } else {
            headers
                .get_all("x-forwarded-for")
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(node_address)
                .collect()
        };
        // From the right: each trusted hop vouches for the one to its left. A hop that names no
        // address (`unknown`, an obfuscated name) ends the walk at the last trusted one.
        let mut client = peer;
        for hop in forwarded.into_iter().rev() {
            match hop {
                Some(address) if self.is_trusted(address) => client = address,
                Some(address) => return address,
                None => break,
            }
        }
        client
    }

    fn policy(&self, class: RouteClass) -> String {
        let rate = self.settings.rate(class);
        let window = secs(u64::from(rate.burst) * rate.every_ms);
        format!("\"{}\";q={};w={window}", class.name(), rate.burst)
    }
}

/// An address as `Forwarded` (RFC 7239 §6: maybe quoted, IPv6 in brackets, maybe with a port)
/// or `X-Forwarded-For` writes it; `None` for anything else.
fn node_address(value: &str) -> Option<IpAddr> {
    let value = value.trim().trim_matches('"');
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    value.parse().ok().or_else(|| {
        // IPv4 with a port; a bare IPv6 address has parsed above.
        let (host, port) = value.rsplit_once(':')?;
        port.parse::<u16>().ok()?;
        host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
    })
}

/// Milliseconds as whole seconds, rounded up.
fn secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// The route class of a request for the resource at `path` (its pattern), or `None` for one
/// that is not limited (the seat map page).
pub fn class_of(path: &str, method: &Method) -> Option<RouteClass> {
    let read = method == Method::GET || method == Method::HEAD;
    match (path, read) {
        ("/", _) => None,
        ("/seats/hold", false) => Some(RouteClass::Holds),
        ("/seats/reserve" | "/seats/refresh" | "/seats/hold/refresh" | "/seats/release", false)
        // An admin's write on an event (DELETE) counts as a seat write.
        | ("/events/{id}", false) => Some(RouteClass::Writes),
        ("/events/create", false) => Some(RouteClass::Events),
        ("/events/{id}/stream", _) => Some(RouteClass::Streams),
        // Every read, and a wrong method on a write's path (a 405), at the read rate.
        _ => Some(RouteClass::Reads),
    }
}

/// The rate limit of the resource at `path`, as its middleware
/// (`web::resource(path).wrap(RateLimit(path))`).
///
/// Written as a `Transform` rather than with `from_fn` for what a request costs when no limit
/// applies to it (`RATE_LIMITS=off`, the seat map): it then goes straight to the resource, its
/// future unboxed and small. A `from_fn` middleware's future is its whole async fn, with the
/// rate-limit script's Redis call inside (about 13 KB, copied into a box for every request),
/// and its `Next` boxes the resource's future once more.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit(pub &'static str);

impl<S> Transform<S, ServiceRequest> for RateLimit
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>
        + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Transform = RateLimitService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RateLimitService {
            path: self.0,
            service: Rc::new(service),
        }))
    }
}

/// The resource at `path` behind its rate limit (see [`RateLimit`]).
#[derive(Debug)]
pub struct RateLimitService<S> {
    path: &'static str,
    service: Rc<S>,
}

impl<S> Service<ServiceRequest> for RateLimitService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>
        + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = Either<S::Future, LocalBoxFuture<'static, Result<Self::Response, Self::Error>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        match Charge::of(self.path, &req) {
            None => Either::Left(self.service.call(req)),
            Some(charge) => Either::Right(Box::pin(limit(charge, req, self.service.clone()))),
        }
    }
}

/// What a limited request is charged to: its route class's buckets of each of its clients.
struct Charge {
    class: RouteClass,
    limiter: web::Data<RateLimiter>,
    state: web::Data<AppState>,
    clients: Vec<RateLimitClient>,
}

impl Charge {
    /// `None` for a request that goes on unlimited: a resource without a class, limits off, no
    /// client to charge (no peer address, no token), or an app without the limiter or the
    /// store (a test's).
    fn of(path: &'static str, req: &ServiceRequest) -> Option<Self> {
        let class = class_of(path, req.method())?;
        let limiter = req.app_data::<web::Data<RateLimiter>>()?.clone();
        if !limiter.settings.enabled {
            return None;
        }
        let mut clients = Vec::with_capacity(2);
        if let Some(peer) = req.peer_addr() {
            let address = limiter.client_address(peer.ip(), req.headers());
            clients.push(RateLimitClient::of_address(address));
        }
        if let Some(user) = req
            .app_data::<web::Data<Identity>>()
            .and_then(|identity| identity.token_user(req.headers()))
        {
            clients.push(RateLimitClient::User(user));
        }
        let state = req.app_data::<web::Data<AppState>>()?.clone();
        if clients.is_empty() {
            return None;
        }
        Some(Self {
            class,
            limiter,
            state,
            clients,
        })
    }
}

/// Charges a request and, unless refused, hands it to `next` (the resource).
async fn limit<S>(
    charge: Charge,
    req: ServiceRequest,
    next: Rc<S>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
{
    let Charge {
        class,
        limiter,
        state,
        clients,
    } = charge;
    let rate: Rate = limiter.settings.rate(class);
    let admission = state.store.admit(class, rate, &clients).await;
    let policy = limiter.policy(class);
    match admission {
        Ok(Admission::Admitted {
            remaining,
            reset_ms,
        }) => {
            let mut res = next.call(req).await?;
            let state = format!("\"{}\";r={remaining};t={}", class.name(), secs(reset_ms));
            let headers = res.headers_mut();
            for (name, value) in [(POLICY_HEADER, policy), (STATE_HEADER, state)] {
                if let Ok(value) = HeaderValue::try_from(value) {
                    headers.insert(name, value);
                }
            }
            Ok(res)
        }
        Ok(Admission::Refused { retry_ms, .. }) => {
            let retry_after_secs = secs(retry_ms).max(1);
            let refusal = Refusal {
                retry_after_secs,
                state: format!("\"{}\";r=0;t={retry_after_secs}", class.name()),
                policy,
            };
            Ok(req.into_response(ApiError::RateLimited(refusal).error_response()))
        }
        // The limit fails open when its bucket's Redis cannot be reached, as Envoy's and
        // Stripe's limiters do: on a cluster the bucket's primary may be failing over while the
        // event's is up, and refusing would turn away every client hashed there from every
        // event, for the seconds a failover takes. On one Redis the request meets the same
        // outage at once and is answered 503 by its handler.
        Err(error @ queue_core::Error::Unavailable(_)) => {
            // Debug, not warn: during an outage every request comes here, and a line each would
            // flood the log (the outage itself is reported by /health and the handlers).
            tracing::debug!(%error, class = class.name(), "rate limit not checked (its Redis cannot be reached): the request goes on unlimited");
            next.call(req).await
        }
        Err(error) => match class {
            RouteClass::Holds | RouteClass::Writes | RouteClass::Events => {
                Ok(req.into_response(ApiError::from(error).error_response()))
            }
            RouteClass::Reads | RouteClass::Streams => {
                tracing::debug!(%error, class = class.name(), "rate limit not checked: a read goes on unlimited");
                next.call(req).await
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn limiter(trusted: &str) -> RateLimiter {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let mut settings =
            queue_core::Settings::load_with(&dir, |_| None).expect("the default settings");
        settings.rate_limits.trusted_proxies = trusted.to_owned();
        RateLimiter::from_settings(&settings.rate_limits).expect("valid proxies")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        map
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let l = limiter("10.0.0.0/8");
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(l.client_address(ip("192.0.2.7"), &h), ip("192.0.2.7"));
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() {
        let l = limiter("10.0.0.0/8, 127.0.0.1");
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.9, 10.0.0.3")]);
        assert_eq!(
            l.client_address(ip("127.0.0.1"), &h),
            ip("198.51.100.9"),
            "the spoofed left-most entry is ignored"
        );
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.2:80",
        )]);
        assert_eq!(l.client_address(ip("10.9.9.9"), &h), ip("2001:db8::7"));
        let h = headers(&[("forwarded", "for=unknown, for=10.0.0.2")]);
        assert_eq!(
            l.client_address(ip("10.9.9.9"), &h),
            ip("10.0.0.2"),
            "an unknown hop stops at the last trusted one"
        );
        let h = headers(&[]);
        assert_eq!(l.client_address(ip("10.9.9.9"), &h), ip("10.9.9.9"));
    }

    #[test]
    fn every_resource_has_its_class() {
        use RouteClass::*;
        for (path, method, class) in [
            ("/seats/hold", Method::POST, Some(Holds)),
            ("/seats/hold", Method::GET, Some(Reads)),
            ("/seats/release", Method::POST, Some(Writes)),
            ("/events/create", Method::POST, Some(Events)),
            ("/events/{id}", Method::GET, Some(Reads)),
            ("/events/{id}/stream", Method::GET, Some(Streams)),
            ("/seats/job/{jobId}/status", Method::GET, Some(Reads)),
            ("/", Method::GET, None),
        ] {
            assert_eq!(class_of(path, &method), class, "{method} {path}");
        }
    }

    #[test]
    fn the_policy_names_the_class_its_burst_and_its_window() {
        let l = limiter("");
        let rate = l.settings.rate(RouteClass::Holds);
        assert_eq!(
            l.policy(RouteClass::Holds),
            format!(
                "\"holds\";q={};w={}",
                rate.burst,
                (u64::from(rate.burst) * rate.every_ms).div_ceil(1000)
            )
        );
    }
}
