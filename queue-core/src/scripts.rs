//! The Lua scripts of `lua/`, one per state transition, each prefixed with `lua/common.lua`, and
//! the typed access to their raw replies.

use std::sync::LazyLock;

use fred::bytes::Bytes;
use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::scripts::Script;
use fred::types::Value;

use crate::error::{Error, Result};

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
    READ_SEAT => "read_seat.lua",
    JOB_STATUS => "job_status.lua",
    READ_CHANGES => "read_changes.lua",
    ADD_METRICS => "add_metrics.lua",
    TAKE_TURN => "take_turn.lua",
}

/// Runs a script by its SHA, loading it first when Redis does not know it (after a restart or a
/// SCRIPT FLUSH).
pub(crate) async fn run(
    script: &Script,
    client: &Client,
    keys: impl IntoIterator<Item = impl AsRef<str>>,
    args: Vec<Value>,
) -> Result<Reply> {
    // A command on a connection that is down would wait out its timeout: refuse at once (the
    // pool's clients are checked more closely by `Store::client`).
    if !client.is_connected() {
        return Err(crate::store::not_connected());
    }
    let keys: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_owned()).collect();
    let value: Value = script.evalsha_with_reload(client, keys, args).await?;
    Ok(Reply::new(value))
}

/// A script's array reply, read front to back.
#[derive(Debug)]
pub(crate) struct Reply {
    items: std::vec::IntoIter<Value>,
}

impl Reply {
    pub(crate) fn new(value: Value) -> Self {
        let items = match value {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => vec![other],
        };
        Self {
            items: items.into_iter(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.len() == 0
    }

    pub(crate) fn int(&mut self) -> Result<i64> {
        match self.items.next() {
            Some(v) => v.as_i64().ok_or_else(|| {
                Error::Corrupt(format!("expected an integer in a script reply, got {v:?}"))
            }),
            None => Err(Error::Corrupt(
                "a script reply is shorter than expected".into(),
            )),
        }
    }

    /// A string, or `None` for a nil (Lua `false`) or a missing trailing item.
    pub(crate) fn opt_string(&mut self) -> Result<Option<String>> {
        match self.items.next() {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .ok_or_else(|| Error::Corrupt("expected a string in a script reply".into())),
        }
    }

    /// The next item as it came, or `None` past the end.
    pub(crate) fn value(&mut self) -> Option<Value> {
        self.items.next()
    }

    /// Raw bytes (a seat record, a queued job); empty for a nil or a missing trailing item.
    pub(crate) fn bytes(&mut self) -> Result<Bytes> {
        match self.items.next() {
            None | Some(Value::Null) => Ok(Bytes::new()),
            Some(v) => v
                .into_bytes()
                .ok_or_else(|| Error::Corrupt("expected bytes in a script reply".into())),
        }
    }

    /// A raw item, or `None` past the end.
    pub(crate) fn next_bytes(&mut self) -> Option<Result<Bytes>> {
        (self.items.len() > 0).then(|| self.bytes())
    }

    pub(crate) fn string(&mut self) -> Result<String> {
        self.opt_string()?
            .ok_or_else(|| Error::Corrupt("a script reply lacks a string".into()))
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
