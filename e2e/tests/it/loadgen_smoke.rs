//! A few seconds of on-sale (the `loadgen` crate, in process) against a test instance: the whole
//! path — holds, waits, reserves, lapses, the hold cap — under concurrency on every CI run, with
//! the load generator's invariant check (no seat held or reserved by two users, nobody over the
//! cap, every accepted job finished, the state read back agrees, every job's answer and the final
//! state are the reference model's) as the assertion.

use std::time::Duration;

use loadgen::onsale::{self, OnSale, OnSaleReport, Waiting, TRACE_HEADER};

use crate::helpers::{spawn_app_with, Options};

const CAP: u32 = 3;

fn assert_clean(report: &OnSaleReport) {
    println!("{}", report.text());
    assert!(report.passed(), "the invariants hold:\n{}", report.text());
    assert!(report.accepted > 0, "jobs were accepted: {}", report.text());
    assert_eq!(
        report.finished,
        report.accepted,
        "every accepted job finished: {}",
        report.text()
    );
    assert_eq!(report.counts.get("hold.post.error"), 0, "{}", report.text());
    // Every POST got a clear answer, so the model replayed every job and compared every event.
    assert_eq!(
        (report.model.jobs, report.model.states),
        (report.accepted as usize, report.event_ids.len()),
        "the model replayed the whole run: {}",
        report.text()
    );
}

/// The trace has a row per POST, in the order they went out, and each accepted one's times are
/// in order and agree with the report.
fn check_trace(path: &std::path::Path, report: &OnSaleReport) {
    let text = std::fs::read_to_string(path).expect("the trace was written");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(TRACE_HEADER));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len() as u64, report.posts, "a row per POST");
    let num = |v: &str| v.parse::<i64>().expect("a number");
    let mut last_sent = 0;
    let mut accepted = 0;
    for row in &rows {
        assert_eq!(row.len(), 11, "{row:?}");
        let (sent, answered) = (num(row[0]), num(row[5]));
        assert!(sent >= last_sent && answered >= sent, "{row:?}");
        last_sent = sent;
        if row[4] == "202" {
            accepted += 1;
            assert!(num(row[7]) >= answered, "the result after the 202: {row:?}");
            assert!(
                num(row[9]) >= num(row[8]),
                "completedAt >= createdAt: {row:?}"
            );
            assert!(
                num(row[10]) > 1_700_000_000_000,
                "a Unix time in ms: {row:?}"
            );
        } else {
            assert_eq!(row[6], "", "no result without a job: {row:?}");
        }
    }
    assert_eq!(accepted, report.accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_smoke_on_sale_keeps_every_invariant() {
    // Two-second holds, so seats lapse and are taken again within the run; a cap of 3 against
    // users who try up to 5 seats at once, so the cap is tested at the same instant.
    let app = spawn_app_with(
        Options::default()
            .workers(2)
            .env("HOLD_TTL_SECS", 2)
            .env("MAX_HELD_SEATS", CAP),
    )
    .await;
    let base = OnSale {
        url: app.address.clone(),
        events: 2,
        seats: 200,
        users: 40,
        holds_per_user: 5,
        reserve_ratio: 0.3,
        connections: 16,
        duration: Some(Duration::from_millis(2500)),
        cap: CAP,
        hold_ttl: Some(Duration::from_secs(2)),
        finish_timeout: Duration::from_secs(20),
        clock_margin: Duration::from_millis(300),
        progress: false,
        seed: Some(7),
        ..OnSale::default()
    };

    // Spread over the seats, waiting with ?wait=, with a trace of every POST.
    let trace = std::env::temp_dir().join(format!("e2e-trace-{}.csv", std::process::id()));
    let spread = onsale::run(&OnSale {
        trace: Some(trace.clone()),
        ..base.clone()
    })
    .await
    .expect("the on-sale runs");
    assert_clean(&spread);
    check_trace(&trace, &spread);
    let _ = std::fs::remove_file(&trace);
    assert!(
        spread.counts.get("hold.job.200") > 0 && spread.counts.get("reserve.job.200") > 0,
        "holds and reserves succeeded: {}",
        spread.text()
    );
    assert!(
        spread.counts.get("hold.job.429") > 0,
        "the cap refused some holds: {}",
        spread.text()
    );

    // Everyone on the same five seats, polling.
    let hot = onsale::run(&OnSale {
        hot_seats: Some(5),
        waiting: Waiting::Poll(Duration::from_millis(10)),
        duration: Some(Duration::from_millis(1500)),
        ..base
    })
    .await
    .expect("the contended on-sale runs");
    assert_clean(&hot);
    assert!(
        hot.counts.get("hold.post.409") + hot.counts.get("hold.job.409") > 0,
        "contended holds were refused: {}",
        hot.text()
    );
}

/// The load generator drives a jwt-mode service: each simulated user sends its own bearer token,
/// events are created with an admin token, and the read-back asks as each user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_smoke_drives_a_jwt_mode_service_with_a_token_per_user() {
    let app = spawn_app_with(
        Options::default()
            .workers(2)
            .env("AUTH_MODE", "jwt")
            .env("AUTH_JWT_SECRET", "a-loadgen-smoke-secret-of-32-bytes!")
            .env("AUTH_JWT_AUDIENCE", "seats")
            .env("MAX_HELD_SEATS", CAP),
    )
    .await;
    let report = onsale::run(&OnSale {
        url: app.address.clone(),
        auth: crate::helpers::client_auth(&app.settings),
        events: 1,
        seats: 100,
        users: 30,
        holds_per_user: 4,
        reserve_ratio: 0.5,
        connections: 8,
        duration: Some(Duration::from_millis(1500)),
        cap: CAP,
        finish_timeout: Duration::from_secs(20),
        clock_margin: Duration::from_millis(300),
        progress: false,
        seed: Some(9),
        ..OnSale::default()
    })
    .await
    .expect("the on-sale runs");
    assert_clean(&report);
    assert!(
        report.counts.get("hold.job.200") > 0 && report.counts.get("reserve.job.200") > 0,
        "holds and reserves succeeded with tokens: {}",
        report.text()
    );
    assert_eq!(
        report.counts.get("hold.post.401"),
        0,
        "no token was refused: {}",
        report.text()
    );
}
