//! The security headers of the HTML pages (the seat map at `/`, Swagger UI under `/swagger-ui/`)
//! and of every other answer. That the pages still work under their Content-Security-Policy is
//! proven by the browser tests (`browser.rs`): Chromium enforces it.

use reqwest::header::HeaderMap;

use crate::helpers::{spawn_app_with, Options, TestApp};

async fn headers_of(app: &TestApp, path: &str) -> (u16, HeaderMap) {
    let response = app
        .http
        .get(app.url(path))
        .send()
        .await
        .expect("the API answers");
    (response.status().as_u16(), response.headers().clone())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The sources a policy allows for `directive`.
fn directive<'a>(policy: &'a str, name: &str) -> Vec<&'a str> {
    policy
        .split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix(name)?.strip_prefix(' '))
        .map(|sources| sources.split_whitespace().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_pages_carry_a_csp_without_inline_scripts_no_framing_nosniff_and_no_referrer() {
    let app = spawn_app_with(Options::default().workers(0)).await;
    for path in ["/", "/swagger-ui/"] {
        let (status, headers) = headers_of(&app, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            header(&headers, "content-type").starts_with("text/html"),
            "{path} is a page"
        );
        let policy = header(&headers, "content-security-policy");
        assert_eq!(
            directive(policy, "default-src"),
            ["'none'"],
            "{path}: {policy}"
        );
        assert_eq!(
            directive(policy, "frame-ancestors"),
            ["'none'"],
            "{path}: {policy}"
        );
        let scripts = directive(policy, "script-src");
        assert!(!scripts.is_empty(), "{path} names its scripts: {policy}");
        assert!(
            scripts
                .iter()
                .all(|s| *s == "'self'" || s.starts_with("'sha256-")),
            "{path}: scripts only from the API or by hash, never unsafe-inline: {policy}"
        );
        assert_eq!(
            directive(policy, "connect-src"),
            ["'self'"],
            "{path}: {policy}"
        );
        assert_eq!(
            header(&headers, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert_eq!(header(&headers, "referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header(&headers, "x-frame-options"), "DENY", "{path}");
    }
    // The seat map's inline script and style are named by hash, nothing else inline.
    let (_, headers) = headers_of(&app, "/").await;
    let policy = header(&headers, "content-security-policy");
    assert!(!policy.contains("unsafe"), "{policy}");
    assert!(
        directive(policy, "script-src")[0].starts_with("'sha256-"),
        "{policy}"
    );
    assert!(
        directive(policy, "style-src")[0].starts_with("'sha256-"),
        "{policy}"
    );

    // Every other answer is nosniff too: JSON, an error, the metrics, a Swagger UI file.
    for path in [
        "/events",
        "/no/such/path",
        "/metrics",
        "/api-docs/openapi.json",
        "/swagger-ui/swagger-ui.css",
    ] {
        let (_, headers) = headers_of(&app, path).await;
        assert_eq!(
            header(&headers, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert!(
            !headers.contains_key("content-security-policy"),
            "{path} is no page"
        );
    }
}
