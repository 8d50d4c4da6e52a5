//! The Lua scripts of `lua/`, one per state transition, each prefixed with `lua/common.lua`, and
//! how they are called. Their replies are read with [`crate::reply::Reply`].

use std::sync::LazyLock;

use fred::bytes::Bytes;
use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::scripts::Script;
use fred::types::Value;

use crate::error::{Error, Result};
use crate::reply::Reply;

macro_rules! scripts {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(
            pub(crate) static $name: LazyLock<Script> = LazyLock::new(|| {
                Script::from_lua(concat!(
                    include_str!("../lua/common.lua"),
                    "\n",
                    include_str!(concat!("../lua/", $file))
                ))
            });
        )*
        /// File name and source of every script, for tests that read them.
        pub const SOURCES: &[(&str, &str)] = &[
            ("common.lua", include_str!("../lua/common.lua")),
            $(($file, include_str!(concat!("../lua/", $file))),)*
        ];
    };
}

scripts! {
    CREATE_EVENT => "create_event.lua",
    ENQUEUE => "enqueue.lua",
    PROCESS => "process.lua",
    REFRESH => "refresh.lua",
    RELEASE => "release.lua",
    SWEEP => "sweep.lua",
    RECONCILE => "reconcile.lua",
    FORGET_STALE => "forget_stale.lua",
    READ_EVENT => "read_event.lua",
    LIST_EVENTS => "list_events.lua",
    READ_SEAT => "read_seat.lua",
    JOB_STATUS => "job_status.lua",
    READ_CHANGES => "read_changes.lua",
    ADD_METRICS => "add_metrics.lua",
    TAKE_TURN => "take_turn.lua",
    DELETE_EVENT => "delete_event.lua",
    RATE_LIMIT => "rate_limit.lua",
}

/// A worker's heartbeat while Redis is out of memory: one of the two scripts that may write
/// then (its first line flags it `allow-oom`, so it cannot carry the prelude).
pub(crate) static HEARTBEAT_WHEN_FULL: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(include_str!("../lua/heartbeat_when_full.lua")));

/// The other: the fence a read writes before its WAIT under REDIS_REPLICA_ACKS (a read must
/// work while Redis is full).
pub(crate) static FENCE: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(include_str!("../lua/fence.lua")));

/// The shared prelude every script starts with, for tests that run its functions on their own.
pub const COMMON: &str = include_str!("../lua/common.lua");

/// Runs a script by its SHA, loading it first when Redis does not know it (after a restart or a
/// SCRIPT FLUSH).
pub(crate) async fn run(
    script: &Script,
    client: &Client,
    keys: Vec<String>,
    args: Vec<Value>,
) -> Result<Reply> {
    // A command on a connection that is down would wait out its timeout: refuse at once (the
    // pool's clients are checked more closely by `Store::client`).
    if !client.is_connected() {
        return Err(Error::not_connected());
    }
    let value: Value = script
        .evalsha_with_reload(client, keys, args)
        .await
        .map_err(script_error)?;
    Ok(Reply::new(value))
}

/// How a script's refusal to touch data of the wrong type starts (`CORRUPT` in
/// `lua/common.lua`).
const CORRUPT: &str = "CORRUPT ";

/// A script that met data the service never writes answers an error starting with [`CORRUPT`]:
/// that is corruption, which no retry mends, not Redis being unavailable.
fn script_error(error: fred::error::Error) -> Error {
    match error.details().find(CORRUPT) {
        Some(at) => Error::Corrupt(error.details()[at + CORRUPT.len()..].to_owned()),
        None => error.into(),
    }
}

/// A script argument from text.
pub(crate) fn arg(value: impl ToString) -> Value {
    Value::from(value.to_string())
}

/// A script argument from raw bytes (a user id).
pub(crate) fn arg_bytes(bytes: &[u8]) -> Value {
    Value::Bytes(Bytes::copy_from_slice(bytes))
}

#[cfg(test)]
mod tests {
    use super::SOURCES;
    use crate::reply::Code;
    use crate::seat::SeatStatus;

    /// Every status letter the Lua scripts compare against or write must be one of the enum's.
    #[test]
    fn lua_status_literals_are_seat_statuses() {
        let mut seen = 0;
        for (name, source) in SOURCES {
            for quote in ["status == '", "status ~= '", "return '"] {
                for piece in source.split(quote).skip(1) {
                    let literal: String = piece.chars().take_while(|c| *c != '\'').collect();
                    let mut chars = literal.chars();
                    let (Some(code), None) = (chars.next(), chars.next()) else {
                        continue;
                    };
                    assert!(
                        SeatStatus::from_code(code).is_some(),
                        "{name}: '{literal}' is not a SeatStatus code"
                    );
                    seen += 1;
                }
            }
        }
        assert!(seen > 10, "the scan found only {seen} status literals");
    }

    /// The prefix of a script's corruption error is the one Rust looks for.
    #[test]
    fn lua_corruption_errors_start_as_rust_expects() {
        let common = super::COMMON;
        assert!(
            common.contains(&format!("local CORRUPT = '{}'", super::CORRUPT)),
            "common.lua's CORRUPT is `{}`",
            super::CORRUPT
        );
    }

    /// Lua's `CODE` table in common.lua has exactly the entries of [`Code`], with the same
    /// numbers, and no script spells a reply code as a bare number.
    #[test]
    fn lua_reply_codes_are_the_rust_ones() {
        let common = super::COMMON;
        let table = common
            .split("local CODE = {")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .expect("common.lua defines `local CODE = { ... }`");
        let mut lua: Vec<(String, i64)> = table
            .split(',')
            .filter_map(|entry| {
                let (name, n) = entry.split_once('=')?;
                Some((name.trim().to_owned(), n.trim().parse().ok()?))
            })
            .collect();
        let mut rust: Vec<(String, i64)> = Code::ALL
            .into_iter()
            .map(|code| (code.lua_name().to_owned(), code as i64))
            .collect();
        lua.sort();
        rust.sort();
        assert_eq!(lua, rust, "Lua's CODE table and Rust's Code enum differ");
        for (name, source) in SOURCES {
            let code_lines = source
                .replace(table, "")
                .lines()
                .map(|line| line.split("--").next().unwrap_or_default().to_owned())
                .collect::<Vec<_>>();
            for line in &code_lines {
                for word in line.split(|c: char| !c.is_ascii_alphanumeric()) {
                    let bare = Code::ALL
                        .into_iter()
                        .find(|c| word == (*c as i64).to_string());
                    assert!(
                        bare.is_none(),
                        "{name} spells a reply code as a bare number in `{}`; use CODE.{}",
                        line.trim(),
                        bare.map_or("", Code::lua_name)
                    );
                }
            }
        }
    }
}
