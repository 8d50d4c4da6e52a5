//! Every Redis key name of the service, built here and nowhere else.
//!
//! An event's keys all carry the event id as their hash tag (`rsv:{<event id>}:…`), so every script
//! touches a single slot and the data model runs unchanged on Redis Cluster. The bookkeeping every
//! job touches (ready tokens, hints, sweep schedule) is split into [`SHARDS`] shards, each with a
//! tag of its own, an event's work going to one shard (its slot range's; on a cluster, one on its
//! own primary: [`Shard`]). The few keys shared by the whole service and touched by no job (the
//! events registry, heartbeats, metrics...) carry the tag `{sys}`.

use crate::ids::EventId;

const PREFIX: &str = "rsv";

/// The keys of one event.
#[derive(Debug, Clone)]
pub struct EventKeys {
    /// Hash `name`, `total`, `reserved` (count), `ends` (the optional `endsAt`, ms), `enq` / `deq` (last accepted / applied job
    /// sequence), `lease` (ms until which a worker is draining the queue), `drained` (ms of the
    /// last batch), `trim` (ms at which the first finished job's record is due to go, or -1:
    /// process.lua's note of when it next has records to trim). Written by create_event, enqueue,
    /// process and reconcile; read by every script of an event but sweep.
    pub event: String,
    /// String of fixed-width seat records, seat n at offset (n - 1) × RECORD_LEN (layout in
    /// `lua/common.lua`). Allocated whole by create_event; written by process (hold, reserve),
    /// refresh, release, sweep; read by all.
    pub seats: String,
    /// Sorted set seat number → hold deadline (ms) of every hold not yet swept. Written with the
    /// seats string; read by sweep and for the on-hold count.
    pub deadlines: String,
    /// Hash user id (16 raw bytes) → comma-separated seat numbers they hold (may name lapsed holds,
    /// filtered on read). Enforces MAX_HELD_SEATS. Written by process, release, sweep.
    pub holders: String,
    /// List of accepted jobs not yet applied, oldest first, each as [`crate::wire::QueuedJob`]
    /// lays it out. Pushed by enqueue; popped only by process, which also puts a job whose retry
    /// is due back at the head.
    pub queue: String,
    /// Hash job sequence → record of a finished job. Written by process, trimmed by process and
    /// sweep after JOB_RESULT_TTL; read by job_status.
    pub results: String,
    /// Sorted set job sequence → ms at which its record expires. Kept with `results`.
    pub done: String,
    /// String that expires at the earliest hold deadline, so that its keyspace notification
    /// prompts a sweep. Written by process, refresh, release, sweep.
    pub tick: String,
    /// Stream of every change to the event's seats (held, refreshed, released, lapsed, reserved),
    /// trimmed to about 10,000 entries; the feed of `GET /events/{id}/stream`. Appended by the
    /// script that makes each change (process, refresh, release, sweep); read by read_event
    /// (last id), read_changes and the API's stream hub (XREAD).
    pub changes: String,
    /// Sorted set of jobs that could not be applied and wait for another attempt (the queued job
    /// with its attempt count appended) → when it is due (ms). Written by process, which also
    /// moves due ones back to the head of the queue just before it pops; sweep and reconcile
    /// wake the event when one is due.
    pub retry: String,
    /// String `<last accepted job seq>|<ms of the deletion>` that an event's deletion leaves in
    /// place of its other keys (`delete_event.lua`), expiring after JOB_RESULT_TTL: meanwhile
    /// job_status reads every job of the event as `failed` (the event was deleted). The only key
    /// of a deleted event; nothing else writes it.
    pub deleted: String,
}

impl EventKeys {
    pub fn new(event: EventId) -> Self {
        let base = event_base(event);
        Self {
            seats: event_key(&base, ":seats"),
            deadlines: event_key(&base, ":deadlines"),
            holders: event_key(&base, ":holders"),
            queue: event_key(&base, ":queue"),
            results: event_key(&base, ":results"),
            done: event_key(&base, ":done"),
            tick: event_key(&base, ":tick"),
            changes: event_key(&base, ":changes"),
            retry: event_key(&base, ":retry"),
            deleted: event_key(&base, ":deleted"),
            event: base,
        }
    }

    /// The keys enqueue.lua takes for the event, in its order: `event`, `seats`, `queue` (an
    /// accepted job builds these three, not all eleven).
    pub fn for_enqueue(event: EventId) -> [String; 3] {
        let base = event_base(event);
        let (seats, queue) = (event_key(&base, ":seats"), event_key(&base, ":queue"));
        [base, seats, queue]
    }

    /// Every key of a live event (all but `deleted`): the one list of them, for the deletion
    /// that frees them and for whoever measures them.
    pub fn live(&self) -> [&str; 10] {
        [
            &self.event,
            &self.seats,
            &self.deadlines,
            &self.holders,
            &self.queue,
            &self.results,
            &self.done,
            &self.tick,
            &self.changes,
            &self.retry,
        ]
    }
}

/// `rsv:{<event id>}`: the event hash's name, and the start of every other key of the event.
fn event_base(event: EventId) -> String {
    let mut id = [0; uuid::fmt::Hyphenated::LENGTH];
    let id = event.encode(&mut id);
    let mut base = String::with_capacity(PREFIX.len() + id.len() + 3);
    base.push_str(PREFIX);
    base.push_str(":{");
    base.push_str(id);
    base.push('}');
    base
}

/// `base` followed by `suffix`, allocated once (`format!` costs several times more).
fn event_key(base: &str, suffix: &str) -> String {
    let mut key = String::with_capacity(base.len() + suffix.len());
    key.push_str(base);
    key.push_str(suffix);
    key
}

/// The hash slot of every key of `event` (they share its id as their hash tag), without
/// building one.
pub fn slot_of_event(event: EventId) -> u16 {
    let mut id = [0; uuid::fmt::Hyphenated::LENGTH];
    slot_of(event.encode(&mut id))
}

/// String `1` that a read of the event writes, expiring in 1 s, under REDIS_REPLICA_ACKS only
/// (`lua/fence.lua`): a write of the reading connection's own, whose WAIT then proves the
/// replicas have everything written before it (`Store::fenced`). Read by nothing; not one of
/// [`EventKeys::live`], as it expires by itself. Made only when needed, not with the other keys
/// of every operation.
pub fn fence(event: EventId) -> String {
    format!("{PREFIX}:{{{event}}}:fence")
}

/// The event a tick key belongs to, for the keyspace-notification listener.
pub fn event_of_tick(key: &str) -> Option<EventId> {
    let rest = key.strip_prefix(PREFIX)?.strip_prefix(":{")?;
    let (event, suffix) = rest.split_once('}')?;
    (suffix == ":tick").then(|| event.parse().ok()).flatten()
}

/// Sorted set event id → its `endsAt` (ms) of every event created with one: the housekeeping
/// deletes an event once its score plus EVENT_RETENTION has passed, finding the due ones by
/// score instead of walking every event. Written by `Store::create_event`, read by
/// `Store::delete_ended`; an event leaves it when it is deleted (`Store::free_event`).
pub const ENDS: &str = "rsv:{sys}:ends";

/// How many shards the ready tokens, the enqueue hints and the sweep schedule are split into:
/// every job touches its event's shard only, so that on a cluster no key is touched by every
/// job, and the shards spread over the primaries with the events (see [`Shard`]).
pub const SHARDS: usize = 16;

/// Hash slots of Redis Cluster.
const SLOTS: usize = 16384;

/// One shard of the service's job bookkeeping: the ready tokens, hints and sweep schedule of
/// the events whose hash slot falls in its range (slots `i × 1024 ..= i × 1024 + 1023` of
/// shard `i`). Each shard's keys carry a hash tag `{q<i>-<n>}` whose own slot lies in that
/// range too, so that on a cluster whose primaries own ranges of slots (what
/// `redis-cli --cluster create` and resharding by ranges make), the shards spread as the events
/// do. On a cluster an event's bookkeeping goes to a shard on the event's own primary, which is
/// not always its range's (`Store::shard_of`); [`Shard::of`] is its range's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard(u8);

/// The key names of one shard, made once.
#[derive(Debug)]
struct ShardKeys {
    /// The hash slot of the shard's keys.
    slot: u16,
    ready: String,
    hints: String,
    due: String,
}

static SHARD_KEYS: std::sync::LazyLock<Vec<ShardKeys>> = std::sync::LazyLock::new(|| {
    (0..SHARDS)
        .map(|i| {
            let range = i * SLOTS / SHARDS..(i + 1) * SLOTS / SHARDS;
            // The first tag of the shard's range; about one try in SHARDS lands there.
            let tag = (0u32..)
                .map(|n| format!("q{i}-{n}"))
                .find(|tag| range.contains(&usize::from(slot_of(tag))))
                .unwrap_or_else(|| format!("q{i}"));
            let base = format!("{PREFIX}:{{{tag}}}");
            ShardKeys {
                slot: slot_of(&tag),
                ready: format!("{base}:ready"),
                hints: format!("{base}:hints"),
                due: format!("{base}:due"),
            }
        })
        .collect()
});

/// The hash slot of a key or hash tag (Redis Cluster's CRC16 of it, modulo 16384).
pub fn slot_of(key: &str) -> u16 {
    fred::util::redis_keyslot(key.as_bytes())
}

impl Shard {
    /// The shard of an event: the one whose slot range holds the event's slot.
    pub fn of(event: EventId) -> Self {
        Self::of_slot(slot_of_event(event))
    }

    /// The shard whose slot range holds `slot`.
    pub fn of_slot(slot: u16) -> Self {
        Self((usize::from(slot) * SHARDS / SLOTS) as u8)
    }

    /// Every shard, in order.
    pub fn all() -> impl Iterator<Item = Self> {
        (0..SHARDS as u8).map(Self)
    }

    /// The shard's number, 0 to [`SHARDS`] - 1.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    fn keys(self) -> &'static ShardKeys {
        &SHARD_KEYS[self.index()]
    }

    /// The hash slot of the shard's keys (all three share one tag).
    pub fn slot(self) -> u16 {
        self.keys().slot
    }

    /// List of the shard's event ids with work: a token tells a worker to drain that event's
    /// queue. Pushed by whoever took the event's lease: enqueue.lua itself when it takes the
    /// lease while accepting jobs on a single Redis (on a cluster the list is in another slot
    /// than the event, and the API pushes it after the script), a worker handing an event on,
    /// the reconciler waking a stalled queue; popped by workers (on a single Redis one BLPOP
    /// over every shard's list; on a cluster one blocking connection per shard). Tokens are
    /// hints: a duplicate costs one empty pass, never a double apply.
    pub fn ready(self) -> &'static str {
        &self.keys().ready
    }

    /// Sorted set event id → ms of the latest enqueue hint, for the shard's events. Written by
    /// the API after it accepts a job; read by the reconciler (every shard), which wakes events
    /// whose queue has jobs but no live lease, and by `/health` and `/metrics` (depth).
    pub fn hints(self) -> &'static str {
        &self.keys().hints
    }

    /// Sorted set event id → ms at which the event next needs a sweep (a hold deadline or a job
    /// record's retention), for the shard's events. Written by workers after each batch and
    /// sweep; read by the sweeper (every shard).
    pub fn due(self) -> &'static str {
        &self.keys().due
    }
}

/// Sorted set event id → ms of its creation: every event. Written by the API on create; read by
/// the sweeper's slow full pass and by `GET /events` (newest first).
pub const EVENTS: &str = "rsv:{sys}:events";
/// Hash worker id → heartbeat `<ms>|<jobs applied>|<µs busy>`. Written by workers every
/// `heartbeat_ms`; read by
/// `/health` and the drain-rate estimate.
pub const WORKERS: &str = "rsv:{sys}:workers";
/// String with a short expiry naming the worker whose turn it is to run the periodic reconcile and
/// sweep passes; the holder renews it every period (`take_turn.lua`).
pub const HOUSEKEEPING_LOCK: &str = "rsv:{sys}:housekeeping";

/// String: the key the API's job ids are authenticated with (`<event id>:j<seq>.<tag>`, the tag a
/// MAC of the rest under this key), as 64 lowercase hex digits of 32 random bytes. Used only when
/// JOB_ID_SECRET is not set. Written once, with SET NX, by the first API process that needs it, so
/// that all the API processes of a deployment issue ids that each of them verifies; read by every
/// API process as it starts (or, if Redis is down then, at its first job request). It never
/// expires: a new key would turn every job id handed out so far into a 404. No worker reads it.
pub const JOB_ID_KEY: &str = "rsv:{sys}:job-id-key";

/// Hash of service-wide counts that worker processes add to (`add_metrics.lua`): jobs finished
/// by kind and outcome, accept-to-applied latency buckets, holds lapsed by path. Read by the
/// API's `/metrics`. Field names are built in `metrics.rs`.
pub const METRICS: &str = "rsv:{sys}:metrics";

/// Pub/sub channel on which `process.lua` announces the jobs it finished, with their records
/// (see [`crate::wire::finished_records`]). API processes subscribe to answer `?wait=` requests,
/// and keep the records a few seconds to answer status reads without Redis.
pub const FINISHED_CHANNEL: &str = "rsv:{sys}:finished";

/// The field that keeps an event's hash and its holders hash in Redis's hash-table encoding,
/// with a value longer than `hash-max-listpack-value`: a small hash is otherwise a listpack,
/// which a lookup searches field by field (at a few hundred holders, one HGET of a user costs
/// more than the rest of the job). `HASH_TABLE_FIELD` in `lua/common.lua`; it names no user
/// (16 bytes) and no counter.
pub const HASH_TABLE_FIELD: &str = "~";

/// String holding a rate-limit bucket's theoretical arrival time (ms, Redis's clock), with an
/// expiry at that instant (a missing key is a full bucket): `rsv:rl:{a:<address>}:<class>` per
/// client address (an IPv6 client by its /64, written `<prefix>/64`), `rsv:rl:{u:<user>}:<class>`
/// per user in jwt mode. Hash-tagged per client, so that a cluster spreads the clients over its
/// slots. Written and read only by `rate_limit.lua`, which is handed a request's address key and,
/// in jwt mode, its user key in one call (one slot each; like `enqueue.lua`'s ready list, a
/// cluster would need one call per key).
pub fn rate_limit(client: &RateLimitClient, class: &str) -> String {
    match client {
        RateLimitClient::Address(address) => format!("{PREFIX}:rl:{{a:{address}}}:{class}"),
        RateLimitClient::Network(prefix) => format!("{PREFIX}:rl:{{a:{prefix}}}:{class}"),
        RateLimitClient::User(user) => format!("{PREFIX}:rl:{{u:{user}}}:{class}"),
    }
}

/// Whom a rate-limit bucket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitClient {
    /// An IPv4 address.
    Address(std::net::Ipv4Addr),
    /// An IPv6 client's /64 (one machine or home usually has a whole /64 to pick from).
    Network(ipnet::Ipv6Net),
    /// A user (jwt mode).
    User(crate::ids::UserId),
}

impl RateLimitClient {
    /// The client of an address: IPv4 as is (an IPv4-mapped IPv6 address as its IPv4), IPv6 by
    /// its /64.
    pub fn of_address(address: std::net::IpAddr) -> Self {
        match address.to_canonical() {
            std::net::IpAddr::V4(v4) => Self::Address(v4),
            std::net::IpAddr::V6(v6) => Self::Network(
                ipnet::Ipv6Net::new(v6, 64)
                    .map(|net| net.trunc())
                    .unwrap_or_else(|_| ipnet::Ipv6Net::from(v6)),
            ),
        }
    }
}

/// The keyspace-notification channel on which Redis announces expired keys of database `db`.
pub fn expired_channel(db: u8) -> String {
    format!("__keyevent@{db}__:expired")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_share_one_hash_tag() {
        let event = EventId::new_random();
        let keys = EventKeys::new(event);
        let tag = format!("{{{event}}}");
        for key in [
            &keys.event,
            &keys.seats,
            &keys.deadlines,
            &keys.holders,
            &keys.queue,
            &keys.results,
            &keys.done,
            &keys.tick,
            &keys.changes,
            &keys.retry,
            &keys.deleted,
        ] {
            let first = key.find('{').expect("a hash tag");
            let last = key[first..].find('}').expect("a closed tag") + first;
            assert_eq!(
                &key[first..=last],
                tag,
                "{key} must be tagged with the event id"
            );
        }
        assert_eq!(event_of_tick(&keys.tick), Some(event));
        assert_eq!(event_of_tick(&keys.seats), None);
    }

    #[test]
    fn the_keys_built_without_formatting_are_the_documented_names() {
        let event: EventId = "3f2b8c1e-9a4d-4e6f-8b7a-0c1d2e3f4a5b"
            .parse()
            .expect("an id");
        let keys = EventKeys::new(event);
        let base = "rsv:{3f2b8c1e-9a4d-4e6f-8b7a-0c1d2e3f4a5b}";
        assert_eq!(keys.event, base);
        for (key, suffix) in [
            (&keys.seats, "seats"),
            (&keys.deadlines, "deadlines"),
            (&keys.holders, "holders"),
            (&keys.queue, "queue"),
            (&keys.results, "results"),
            (&keys.done, "done"),
            (&keys.tick, "tick"),
            (&keys.changes, "changes"),
            (&keys.retry, "retry"),
            (&keys.deleted, "deleted"),
        ] {
            assert_eq!(*key, format!("{base}:{suffix}"));
        }
        assert_eq!(
            EventKeys::for_enqueue(event),
            [keys.event.clone(), keys.seats.clone(), keys.queue.clone()]
        );
        for _ in 0..100 {
            let event = EventId::new_random();
            let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
            assert_eq!(event.encode(&mut buf), event.to_string());
            assert_eq!(slot_of_event(event), slot_of(&EventKeys::new(event).queue));
        }
    }

    /// The hash tag between the first `{` and the next `}`.
    fn tag_of(key: &str) -> &str {
        let first = key.find('{').expect("a hash tag") + 1;
        let last = key[first..].find('}').expect("a closed tag") + first;
        &key[first..last]
    }

    #[test]
    fn each_shards_keys_share_a_tag_whose_slot_is_in_the_shards_range_and_events_go_to_theirs() {
        let width = SLOTS / SHARDS;
        let mut tags = std::collections::HashSet::new();
        for shard in Shard::all() {
            let tag = tag_of(shard.ready());
            assert_eq!(tag_of(shard.hints()), tag);
            assert_eq!(tag_of(shard.due()), tag);
            assert!(tags.insert(tag.to_owned()), "shard tags are distinct");
            let slot = usize::from(slot_of(tag));
            assert_eq!(
                slot / width,
                shard.index(),
                "shard {}'s tag {tag} has slot {slot}, in its own range",
                shard.index()
            );
            assert_eq!(
                slot_of(shard.ready()),
                slot_of(tag),
                "the tag decides the slot"
            );
        }
        assert_eq!(tags.len(), SHARDS);
        let mut per_shard = [0usize; SHARDS];
        for _ in 0..16_000 {
            let event = EventId::new_random();
            let shard = Shard::of(event);
            let slot = usize::from(slot_of(&EventKeys::new(event).queue));
            assert_eq!(
                slot / width,
                shard.index(),
                "an event goes to its slot's shard"
            );
            per_shard[shard.index()] += 1;
        }
        for (i, n) in per_shard.iter().enumerate() {
            assert!(
                (800..=1200).contains(n),
                "shard {i} got {n} of 16000 random events, not about 1000"
            );
        }
    }

    #[test]
    fn rate_limit_keys_are_tagged_per_client_and_ipv6_by_its_64() {
        let v4 = RateLimitClient::of_address("10.1.2.3".parse().expect("an ip"));
        assert_eq!(rate_limit(&v4, "holds"), "rsv:rl:{a:10.1.2.3}:holds");
        let mapped = RateLimitClient::of_address("::ffff:10.1.2.3".parse().expect("an ip"));
        assert_eq!(mapped, v4, "an IPv4-mapped address is its IPv4");
        let one = RateLimitClient::of_address("2001:db8:1:2:aaaa::1".parse().expect("an ip"));
        let two = RateLimitClient::of_address("2001:db8:1:2:bbbb::9".parse().expect("an ip"));
        assert_eq!(one, two, "one /64 is one client");
        assert_eq!(
            rate_limit(&one, "reads"),
            "rsv:rl:{a:2001:db8:1:2::/64}:reads"
        );
    }
}
