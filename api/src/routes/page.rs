//! The seat map at `/`: one page of plain HTML and JS, compiled into the binary (no build step).

use actix_web::http::header::ContentType;
use actix_web::HttpResponse;

const SEAT_MAP: &str = include_str!("../../static/index.html");

/// The seat map page.
pub async fn seat_map() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header(("Cache-Control", "no-cache"))
        .body(SEAT_MAP)
}
