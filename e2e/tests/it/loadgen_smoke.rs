//! A few seconds of on-sale (the `loadgen` crate, in process) against a test instance: the whole
//! path — holds, waits, reserves, lapses, the hold cap — under concurrency on every CI run, with
//! the load generator's invariant check (no seat held or reserved by two users, nobody over the
//! cap, every accepted job finished, the state read back agrees) as the assertion.

use std::time::Duration;

use loadgen::onsale::{self, OnSale, OnSaleReport, Waiting};

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
        finish_timeout: Duration::from_secs(20),
        clock_margin: Duration::from_millis(300),
        progress: false,
        seed: Some(7),
        ..OnSale::default()
    };

    // Spread over the seats, waiting with ?wait=.
    let spread = onsale::run(&base).await.expect("the on-sale runs");
    assert_clean(&spread);
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
