//! The security headers of every answer: `X-Content-Type-Options: nosniff` on all of them, and on
//! the HTML pages (the seat map at `/`, Swagger UI under `/swagger-ui/`) a Content-Security-Policy
//! that forbids framing (`frame-ancestors 'none'`) and any script not served by the API itself,
//! and `Referrer-Policy: no-referrer`.
//!
//! The seat map's script and style are inline, so its policy names their SHA-256 hashes
//! ([`crate::routes::page`] computes them from the page once), and nothing else inline may run:
//! no `'unsafe-inline'`. Swagger UI (vendored, served as is) loads its scripts from files, so
//! `script-src 'self'` is enough; its components set inline styles, hence `'unsafe-inline'` for
//! styles only there.

use std::future::Future;

use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};

/// The policy of Swagger UI's page: its own files, the OpenAPI document and "Try it out" requests
/// to this origin, its inline SVG icons (`data:`), and no framing.
pub const SWAGGER_UI_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the headers to an answer. An HTML page without a policy of its own (Swagger UI's) gets
/// [`SWAGGER_UI_POLICY`]; the seat map sets its own.
///
/// It takes the answer's future rather than the request and a `from_fn` `Next`
/// (`App::wrap_fn(|req, service| secured(service.call(req)))`): the future then stays unboxed,
/// where `Next` would put it into a box of its own for every request.
pub async fn secured<B>(
    answer: impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let mut res = answer.await?;
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let html = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if html {
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        // For browsers that predate `frame-ancestors`.
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(SWAGGER_UI_POLICY),
            );
        }
    }
    Ok(res)
}
