//! The seat map at `/`: one page of plain HTML and JS, compiled into the binary (no build step).
//!
//! The page needs to know how the service tells who is asking (docs/CONTRACT.md §2): a user id
//! it sends itself (none mode) or a token the person pastes (jwt mode). The service renders its
//! AUTH_MODE into `<html data-auth-mode>`, so the page never guesses and needs no extra request.

use std::sync::LazyLock;

use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpResponse};
use base64::Engine;
use queue_core::settings::AuthMode;
use sha2::{Digest, Sha256};

use crate::state::AppState;

const SEAT_MAP: &str = include_str!("../../static/index.html");
/// How the page as written says "none mode"; replaced for jwt mode.
const NONE_MODE: &str = "<html lang=\"en\" data-auth-mode=\"none\">";
const JWT_MODE: &str = "<html lang=\"en\" data-auth-mode=\"jwt\">";
static JWT_PAGE: LazyLock<String> = LazyLock::new(|| SEAT_MAP.replacen(NONE_MODE, JWT_MODE, 1));

/// The page's Content-Security-Policy: only its own inline script and style run (named by their
/// SHA-256, so an injected one would not), requests go to this origin only, and no one frames it.
/// Both modes' pages share it: they differ in the `<html>` tag alone.
static POLICY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        hashes_of(SEAT_MAP, "<script>", "</script>"),
        hashes_of(SEAT_MAP, "<style>", "</style>"),
    )
});

/// The CSP source list of every `open`...`close` element of `page`: `'sha256-<base64>'` of
/// each one's text, exactly as the browser hashes it.
fn hashes_of(page: &str, open: &str, close: &str) -> String {
    let mut hashes = Vec::new();
    let mut rest = page;
    while let Some(start) = rest.find(open) {
        let body = &rest[start + open.len()..];
        let Some(end) = body.find(close) else { break };
        let digest = Sha256::digest(&body.as_bytes()[..end]);
        hashes.push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
        rest = &body[end + close.len()..];
    }
    if hashes.is_empty() {
        "'none'".to_owned()
    } else {
        hashes.join(" ")
    }
}

/// The seat map page, for the service's mode.
pub async fn seat_map(state: web::Data<AppState>) -> HttpResponse {
    let page: &'static str = match state.identity.mode() {
        AuthMode::None => SEAT_MAP,
        AuthMode::Jwt => JWT_PAGE.as_str(),
    };
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY.as_str()))
        .body(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_the_mode_mark_exactly_once() {
        assert_eq!(
            SEAT_MAP.matches(NONE_MODE).count(),
            1,
            "static/index.html starts with `{NONE_MODE}`, which the jwt mode's page replaces"
        );
        assert!(!SEAT_MAP.contains(JWT_MODE));
    }

    #[test]
    fn the_policy_names_the_one_inline_script_and_style_by_hash_and_allows_no_other() {
        // `echo -n "alert(1)" | openssl dgst -sha256 -binary | base64`
        assert_eq!(
            hashes_of("<p><script>alert(1)</script>", "<script>", "</script>"),
            "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"
        );
        assert_eq!(SEAT_MAP.matches("<script").count(), 1, "one script element");
        assert_eq!(SEAT_MAP.matches("<style").count(), 1, "one style element");
        assert!(!POLICY.contains("unsafe"), "{}", *POLICY);
        assert!(POLICY.contains("frame-ancestors 'none'"), "{}", *POLICY);
        assert_eq!(POLICY.matches("'sha256-").count(), 2, "{}", *POLICY);
    }
}
