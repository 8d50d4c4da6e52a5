//! The queued-job layout, which Rust and Lua both read: `encode_job` / `decode_job` in
//! `lua/common.lua` and `queue_core::wire::QueuedJob` must agree, both ways, on the same jobs.

use fred::interfaces::LuaInterface;
use fred::types::Value;
use queue_core::wire::QueuedJob;
use queue_core::{JobKind, UserId};

use crate::helpers::TestRedis;

/// Appended to common.lua: ARGV[1] is `encode` or `decode`; then, to encode, six fields per job
/// (kind, user, seat, accepted, seq, attempts or ""), each job answered as its bytes; to decode,
/// one job per argument, each answered as {kind, user, seat, accepted, seq, attempts}.
const PROBE: &str = r"
local out = {}
if ARGV[1] == 'encode' then
  for i = 2, #ARGV, 6 do
    local attempts = ARGV[i + 5] ~= '' and ARGV[i + 5] or nil
    out[#out + 1] = encode_job(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], attempts)
  end
else
  for i = 2, #ARGV do
    local kind, user, seat, accepted, seq, attempts = decode_job(ARGV[i])
    out[#out + 1] = {kind, user, seat, accepted, seq, attempts}
  end
end
return out
";

async fn probe(redis: &TestRedis, args: Vec<Value>) -> Vec<Value> {
    let common = queue_core::scripts::COMMON;
    let reply: Value = redis
        .client()
        .await
        .eval(format!("{common}\n{PROBE}"), Vec::<String>::new(), args)
        .await
        .expect("common.lua and the probe run");
    reply.into_array()
}

/// The letter the scripts use for a job's kind.
fn letter(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Hold => "H",
        JobKind::Reserve => "R",
    }
}

fn jobs() -> Vec<QueuedJob> {
    let user = |b: u8| UserId::from_bytes([b; 16]);
    vec![
        QueuedJob {
            kind: JobKind::Hold,
            user: user(7),
            seat: 1,
            accepted_at: 1_795_000_000_000,
            seq: 1,
            attempts: 0,
        },
        // A user id whose bytes hold the separator, a retried job, the largest seat.
        QueuedJob {
            kind: JobKind::Reserve,
            user: user(b'|'),
            seat: 10_000,
            accepted_at: 1_795_000_000_999,
            seq: 123_456_789,
            attempts: 4,
        },
    ]
}

#[tokio::test]
async fn lua_and_rust_read_and_write_a_queued_job_alike() {
    let redis = TestRedis::start();
    let jobs = jobs();

    // Lua writes, Rust reads.
    let mut args: Vec<Value> = vec!["encode".into()];
    for job in &jobs {
        let attempts = if job.attempts > 0 {
            job.attempts.to_string()
        } else {
            String::new()
        };
        args.extend([
            Value::from(letter(job.kind)),
            Value::Bytes(job.user.to_bytes().to_vec().into()),
            job.seat.to_string().into(),
            job.accepted_at.to_string().into(),
            job.seq.to_string().into(),
            attempts.into(),
        ]);
    }
    let written = probe(&redis, args).await;
    for (job, raw) in jobs.iter().zip(&written) {
        let raw = raw.as_bytes().expect("a job's bytes");
        assert_eq!(raw, job.encode(), "encode_job writes what QueuedJob writes");
        assert_eq!(
            QueuedJob::decode(raw).as_ref(),
            Some(job),
            "QueuedJob reads what encode_job wrote"
        );
    }

    // Rust writes, Lua reads.
    let mut args: Vec<Value> = vec!["decode".into()];
    args.extend(jobs.iter().map(|job| Value::Bytes(job.encode().into())));
    let read = probe(&redis, args).await;
    for (job, fields) in jobs.iter().zip(read) {
        let fields = fields.into_array();
        let text = |i: usize| {
            fields[i]
                .as_bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let user = fields[1].as_bytes().expect("the user's bytes").to_vec();
        assert_eq!(
            (
                text(0),
                user,
                text(2),
                text(3),
                text(4),
                fields[5].as_i64().expect("attempts")
            ),
            (
                letter(job.kind).to_owned(),
                job.user.to_bytes().to_vec(),
                job.seat.to_string(),
                job.accepted_at.to_string(),
                job.seq.to_string(),
                i64::from(job.attempts)
            ),
            "decode_job reads what QueuedJob wrote"
        );
    }
}
