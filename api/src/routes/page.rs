//! The seat map at `/`: one page of plain HTML and JS, compiled into the binary (no build step).
//!
//! The page needs to know how the service tells who is asking (docs/CONTRACT.md §2): a user id
//! it sends itself (none mode) or a token the person pastes (jwt mode). The service renders its
//! AUTH_MODE into `<html data-auth-mode>`, so the page never guesses and needs no extra request.

use std::sync::LazyLock;

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};
use queue_core::settings::AuthMode;

use crate::state::AppState;

const SEAT_MAP: &str = include_str!("../../static/index.html");
/// How the page as written says "none mode"; replaced for jwt mode.
const NONE_MODE: &str = "<html lang=\"en\" data-auth-mode=\"none\">";
const JWT_MODE: &str = "<html lang=\"en\" data-auth-mode=\"jwt\">";
static JWT_PAGE: LazyLock<String> = LazyLock::new(|| SEAT_MAP.replacen(NONE_MODE, JWT_MODE, 1));

/// The seat map page, for the service's mode.
pub async fn seat_map(state: web::Data<AppState>) -> HttpResponse {
    let page: &'static str = match state.identity.mode() {
        AuthMode::None => SEAT_MAP,
        AuthMode::Jwt => JWT_PAGE.as_str(),
    };
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header(("Cache-Control", "no-cache"))
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
}
