//! One lapse rule (G5). The scripts, which make every write, read a seat record through `seat_at`
//! in `lua/common.lua`; the API's reads decode it in Rust with `SeatState::decode`. Were the two
//! to disagree about when a hold ends, a read would say Available while a write still says On
//! hold. This test runs both on the same records at the same instants and requires the same
//! answer, so that a change to either rule alone fails here.

use fred::interfaces::LuaInterface;
use fred::types::Value;
use queue_core::seat::RECORD_LEN;
use queue_core::{Millis, SeatState, UserId};

use crate::helpers::TestRedis;

/// Appended to common.lua: for each (record, now) pair of ARGV, what `seat_at` answers, as
/// {status, user, deadline, start, lapsed (1 or 0)}.
const SEAT_AT_OF_EACH: &str = r"
local out = {}
for i = 1, #ARGV, 2 do
  local status, user, deadline, start, lapsed = seat_at(ARGV[i], tonumber(ARGV[i + 1]))
  out[#out + 1] = {status, user, deadline, start, lapsed and 1 or 0}
end
return out
";

/// A seat as both sides see it: status letter, user (raw; empty when Available), deadline and
/// start (0 unless On hold).
type Seen = (char, Vec<u8>, Millis, Millis);

fn record(status: u8, user: [u8; 16], t1: Millis, t2: Millis) -> Vec<u8> {
    let mut raw = vec![status];
    raw.extend_from_slice(&user);
    raw.extend_from_slice(&t1.to_be_bytes()[2..]);
    raw.extend_from_slice(&t2.to_be_bytes()[2..]);
    assert_eq!(raw.len(), RECORD_LEN);
    raw
}

/// What the Rust reads make of a record: `None` when they refuse it as corrupt.
fn decoded(raw: &[u8], now: Millis) -> Option<Seen> {
    let state = SeatState::decode(raw, now).ok()?;
    Some(match state {
        SeatState::Available => ('A', Vec::new(), 0, 0),
        SeatState::OnHold {
            holder,
            expires_at,
            since,
        } => ('H', holder.to_bytes().to_vec(), expires_at, since),
        SeatState::Reserved { by } => ('R', by.to_bytes().to_vec(), 0, 0),
    })
}

/// What `seat_at` makes of each (record, now): the seat, and whether it calls it a lapsed hold.
async fn seat_at(redis: &TestRedis, cases: &[(Vec<u8>, Millis)]) -> Vec<(Seen, bool)> {
    let common = queue_core::scripts::COMMON;
    let args: Vec<Value> = cases
        .iter()
        .flat_map(|(raw, now)| [Value::Bytes(raw.clone().into()), now.to_string().into()])
        .collect();
    let reply: Value = redis
        .client()
        .await
        .eval(
            format!("{common}\n{SEAT_AT_OF_EACH}"),
            Vec::<String>::new(),
            args,
        )
        .await
        .expect("common.lua and the probe run");
    let int = |v: &Value| v.as_i64().expect("an integer");
    reply
        .into_array()
        .iter()
        .map(|fields| {
            let fields = fields.clone().into_array();
            let text = |v: &Value| v.as_bytes().map(<[u8]>::to_vec).unwrap_or_default();
            let status = text(&fields[0]);
            assert_eq!(status.len(), 1, "one status letter: {fields:?}");
            let seen = (
                char::from(status[0]),
                text(&fields[1]),
                int(&fields[2]),
                int(&fields[3]),
            );
            (seen, int(&fields[4]) == 1)
        })
        .collect()
}

#[tokio::test]
async fn the_scripts_and_the_reads_end_a_hold_at_the_same_instant() {
    let redis = TestRedis::start();
    let user = UserId::from_bytes([7; 16]).to_bytes();
    let deadline: Millis = 1_795_000_001_000;
    let start = deadline - 60_000;
    let hold = record(b'H', user, deadline, start);
    // Instants around the deadline: just before, at, just after, and either side of the 700 ms a
    // late-lapse slip would add; then far from it both ways.
    let instants = [
        deadline - 1,
        deadline,
        deadline + 1,
        deadline + 699,
        deadline + 700,
        deadline + 701,
        0,
        Millis::from(u32::MAX) << 16,
    ];
    let mut records = vec![
        ("a hold", hold.clone()),
        ("a hold with no start", record(b'H', user, deadline, 0)),
        ("a hold ending at 0", record(b'H', user, 0, 0)),
        ("a reservation", record(b'R', user, deadline, 0)),
        ("an all-zero record", vec![0; RECORD_LEN]),
        ("an 'A' record", record(b'A', user, deadline, start)),
        ("an empty record", Vec::new()),
    ];
    // Data the service never writes: the reads refuse it (a 500, docs/CONTRACT.md §2), and the
    // scripts take it as an Available seat (`seat_at` reads only 'H' and 'R').
    let corrupt = [
        ("an unknown status", record(b'X', user, deadline, start)),
        ("a short hold", hold[..20].to_vec()),
    ];
    records.extend(corrupt.iter().cloned());
    let cases: Vec<(&str, Vec<u8>, Millis)> = records
        .iter()
        .flat_map(|(what, raw)| instants.map(|now| (*what, raw.clone(), now)))
        .collect();

    let scripts = seat_at(
        &redis,
        &cases
            .iter()
            .map(|(_, raw, now)| (raw.clone(), *now))
            .collect::<Vec<_>>(),
    )
    .await;

    assert_eq!(scripts.len(), cases.len(), "one answer per case");
    let mut lapsed_seen = 0;
    for ((what, raw, now), (lua, lapsed)) in cases.iter().zip(scripts) {
        let at = now - deadline;
        let is_corrupt = corrupt.iter().any(|(c, _)| c == what);
        match decoded(raw, *now) {
            Some(rust) => {
                assert!(!is_corrupt, "{what}: the reads accept it ({rust:?})");
                assert_eq!(
                    lua, rust,
                    "{what} at deadline{at:+} ms: seat_at (left) and SeatState::decode (right) \
                     differ"
                );
            }
            None => {
                assert!(is_corrupt, "{what}: the reads refuse it");
                assert_eq!(
                    lua,
                    ('A', Vec::new(), 0, 0),
                    "{what}: seat_at takes it as free"
                );
            }
        }
        // `lapsed` is what makes a script clear the old hold: exactly a hold at or past its end.
        let past_its_end = raw.first() == Some(&b'H') && lua.0 == 'A' && !is_corrupt;
        assert_eq!(
            lapsed, past_its_end,
            "{what} at deadline{at:+} ms: seat_at's lapsed flag"
        );
        lapsed_seen += usize::from(lapsed);
    }
    // The cases reach both sides of the rule: lapsed holds and live ones.
    assert!(lapsed_seen >= 10, "{lapsed_seen} lapsed cases");
    let live = decoded(&hold, deadline - 1).map(|seen| seen.0);
    assert_eq!(live, Some('H'), "a hold is live until its deadline");
    let over = decoded(&hold, deadline).map(|seen| seen.0);
    assert_eq!(over, Some('A'), "and over at it");
}
