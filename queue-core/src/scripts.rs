//! The Lua scripts of `lua/`, one per state transition, each prefixed with the parts of
//! `lua/common.lua` it uses, and how they are called. Their replies are read with
//! [`crate::reply::Reply`].

use std::sync::LazyLock;

use fred::bytes::Bytes;
use fred::clients::Client;
use fred::interfaces::{ClientLike, LuaInterface};
use fred::types::scripts::Script;
use fred::types::Value;

use crate::error::{Error, Result};
use crate::reply::Reply;

macro_rules! scripts {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(
            pub(crate) static $name: LazyLock<Script> = LazyLock::new(|| {
                Script::from_lua(with_prelude(include_str!(concat!("../lua/", $file))))
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

/// The shared prelude, for tests that run its functions on their own.
pub const COMMON: &str = include_str!("../lua/common.lua");

/// `body` after the definitions of [`COMMON`] that it uses, directly or through another one, in
/// their order there. Redis runs a script's prelude on every call, and each function it defines
/// costs about a thousand instructions to make (bench/RESULTS.md): a script that reads one seat
/// need not pay for the ones that drain a queue. A name is looked for as a whole word, in code
/// only ([`code_of`]): a comment may name a definition (a part's comments are those after it)
/// without bringing it in.
pub fn with_prelude(body: &str) -> String {
    let parts = prelude_parts(COMMON);
    let codes: Vec<String> = parts.iter().map(|(_, part)| code_of(part)).collect();
    let body_code = code_of(body);
    let mut wanted = vec![false; parts.len()];
    let mut uses: Vec<&str> = vec![&body_code];
    while let Some(text) = uses.pop() {
        for (i, (name, _)) in parts.iter().enumerate() {
            if !wanted[i] && mentions(text, name) {
                wanted[i] = true;
                uses.push(&codes[i]);
            }
        }
    }
    let mut script: String = parts
        .iter()
        .zip(&wanted)
        .filter(|(_, wanted)| **wanted)
        .map(|((_, part), _)| *part)
        .collect();
    script.push('\n');
    script.push_str(body);
    script
}

/// The top-level definitions of a prelude, each with the name it defines: a part starts at a
/// line `local NAME ...` or `local function NAME(...` and runs to the next one (comments between
/// two go with the part before; what comes before the first is left out, being comments).
fn prelude_parts(prelude: &str) -> Vec<(&str, &str)> {
    let starts: Vec<usize> = prelude
        .match_indices("\nlocal ")
        .map(|(at, _)| at + 1)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let end = starts.get(i + 1).copied().unwrap_or(prelude.len());
            let part = &prelude[start..end];
            let rest = part["local ".len()..].trim_start_matches("function ");
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..name_len], part)
        })
        .collect()
}

/// `text` without its comments: each line up to a `--` outside a quoted string. (The scripts
/// have no long strings or block comments, `[[ ]]`.)
fn code_of(text: &str) -> String {
    let mut code = String::with_capacity(text.len());
    for line in text.lines() {
        code.push_str(&line[..comment_start(line).unwrap_or(line.len())]);
        code.push('\n');
    }
    code
}

/// Where a `--` comment starts in `line`, if it has one outside a quoted string.
fn comment_start(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'-' && bytes.get(i + 1) == Some(&b'-') => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

/// Whether `text` uses the identifier `name` (as a whole word).
fn mentions(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

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

/// [`run`] with its keys and arguments made by `build`, called again only should Redis not know
/// the script: fred's `evalsha_with_reload` clones every key and argument before each call, to
/// have them for that retry, which cost a batch of jobs an allocation per argument.
pub(crate) async fn run_built(
    script: &Script,
    client: &Client,
    build: impl Fn() -> (Vec<String>, Vec<Value>),
) -> Result<Reply> {
    if !client.is_connected() {
        return Err(Error::not_connected());
    }
    let (keys, args) = build();
    let value: Value = match client.evalsha(script.sha1().clone(), keys, args).await {
        Err(error) if error.details().starts_with("NOSCRIPT") => {
            script.load(client).await.map_err(script_error)?;
            let (keys, args) = build();
            client.evalsha(script.sha1().clone(), keys, args).await
        }
        answer => answer,
    }
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
    use super::{comment_start, prelude_parts, with_prelude, SOURCES};

    /// The prelude is cut into its definitions, each named, with nothing of its code left out.
    #[test]
    fn the_prelude_is_cut_into_named_definitions() {
        let parts = prelude_parts(super::COMMON);
        let names: Vec<&str> = parts.iter().map(|(name, _)| *name).collect();
        for name in [
            "RECORD",
            "EMPTY",
            "CODE",
            "wrong_key_type",
            "seat_at",
            "earliest",
        ] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        let kept: usize = parts.iter().map(|(_, part)| part.len()).sum();
        let first = super::COMMON.find("\nlocal ").expect("a definition") + 1;
        assert!(
            super::COMMON[..first]
                .lines()
                .all(|line| line.is_empty() || line.starts_with("--")),
            "only comments come before the first definition"
        );
        assert_eq!(
            kept,
            super::COMMON.len() - first,
            "every definition is kept whole"
        );
    }

    /// A script gets what it uses, and what that uses, in the prelude's order, and nothing else.
    #[test]
    fn a_script_gets_the_definitions_it_uses_and_no_other() {
        let script = with_prelude("return seat_at(raw, now_ms())");
        let at = |what: &str| script.find(what);
        for needed in [
            "local function seat_at",
            "local function now_ms",
            "local function from_u48",
            "local RECORD",
        ] {
            assert!(at(needed).is_some(), "{needed} in:\n{script}");
        }
        assert!(at("local RECORD") < at("local function from_u48"));
        assert!(at("local function from_u48") < at("local function seat_at"));
        for unused in [
            "local function split",
            "local EMPTY",
            "local function log_change",
        ] {
            assert!(at(unused).is_none(), "{unused} is left out:\n{script}");
        }
        assert!(script.ends_with("return seat_at(raw, now_ms())"));
    }

    /// Only code brings a definition in: not a comment that names it, and a `--` in a string is
    /// no comment.
    #[test]
    fn a_name_in_a_comment_brings_nothing_in() {
        let script = with_prelude("-- unlike split(s, sep)\nreturn now_ms() -- not from_u48\n");
        assert!(script.contains("local function now_ms"), "{script}");
        for unused in ["local function split", "local function from_u48"] {
            assert!(!script.contains(unused), "{unused} is left out:\n{script}");
        }
        let quoted = with_prelude("return '--', \"it's -- \\\" --\", split(s, ',') -- x\n");
        assert!(quoted.contains("local function split"), "{quoted}");
        assert_eq!(comment_start("local a = 'x' -- c"), Some(14));
        assert_eq!(comment_start("local a = '--'"), None);
        assert_eq!(comment_start("local a = \"\\\"--\" -- c"), Some(17));
        // `code_of` reads comments line by line: a long string or block comment would fool it.
        for (name, source) in SOURCES {
            assert!(
                !source.contains("[["),
                "{name} has a `[[`: teach code_of about it"
            );
        }
    }

    /// The benches load the scripts into a redis-server of their own with bench/lua_script.py,
    /// which must build each one as the service does (else they time other scripts).
    #[test]
    fn the_benches_build_each_script_as_the_service_does() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        for (name, body) in SOURCES.iter().filter(|(name, _)| *name != "common.lua") {
            let built = std::process::Command::new("python3")
                .arg(format!("{root}/bench/lua_script.py"))
                .arg(format!("{root}/queue-core/lua"))
                .arg(name)
                .output()
                .expect("python3 runs bench/lua_script.py");
            assert!(built.status.success(), "{name}: {built:?}");
            assert_eq!(
                String::from_utf8_lossy(&built.stdout),
                with_prelude(body),
                "{name}: bench/lua_script.py builds it otherwise"
            );
        }
    }
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

    /// The field that keeps a hash a hash table is the one Rust names, and its value is longer
    /// than Redis's default `hash-max-listpack-value` (64 bytes).
    #[test]
    fn the_hash_table_field_is_the_rust_one_and_long_enough() {
        let common = super::COMMON;
        assert!(
            common.contains(&format!(
                "local HASH_TABLE_FIELD = '{}'\n",
                crate::keys::HASH_TABLE_FIELD
            )),
            "common.lua's HASH_TABLE_FIELD is `{}`",
            crate::keys::HASH_TABLE_FIELD
        );
        let value = common
            .split("local HASH_TABLE_VALUE = '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .expect("common.lua defines HASH_TABLE_VALUE as a literal");
        assert!(
            value.len() > 64,
            "HASH_TABLE_VALUE is {} bytes",
            value.len()
        );
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
