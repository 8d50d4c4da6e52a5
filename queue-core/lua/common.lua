-- Shared prelude: each script of queue-core/lua/ is prefixed with the definitions below that it
-- uses (scripts.rs `with_prelude`; this header, before the first definition, goes to none).
--
-- Seat state lives in the event's `seats` string: one fixed-width record of RECORD bytes per seat,
-- seat n at offset (n - 1) * RECORD, so that every seat exists from the event's creation and a
-- 10,000-seat event costs 29 bytes a seat whatever its state. A record is
--   status (1 byte: 'H' On hold, 'R' Reserved, anything else Available)
--   user   (16 bytes: the holder's or reserver's UUID, raw)
--   t1     (6 bytes, big-endian ms: the hold's deadline, or when the seat was reserved)
--   t2     (6 bytes, big-endian ms: when the hold started, for MAX_HOLD_LIFETIME)
-- A hold whose deadline has passed is Available, whether or not a sweep has cleared it yet:
-- every script reads seats through `seat_at`, which applies that rule, so correctness never
-- waits for cleanup (G5).
--
-- Time is Redis's own clock (TIME), so that every API and worker process agrees on it.

local RECORD = 29
local EMPTY = string.rep('\0', RECORD)

-- A small hash is kept in Redis's compact encoding (a listpack, up to hash-max-listpack-entries
-- fields, 512 by default), which a lookup searches field by field: at a few hundred holders one
-- HGET of a user costs Redis about 15,000 instructions, more than the rest of the job. A value
-- longer than hash-max-listpack-value (64 bytes by default) makes the hash a hash table, whose
-- lookups cost the same at any size; Redis does not turn it back while the field is there (an
-- RDB load applies the same size rule: reasoned from Redis's code, not tested here). So the hashes searched on every job, an event's hash and its holders, carry this field:
-- create_event.lua writes it into the event's, process.lua with every write of holders (which
-- also covers a holders hash deleted by hand, or older than this field). No user or counter is
-- named `~` (a user id is 16 bytes); `keys::HASH_TABLE_FIELD` in Rust.
local HASH_TABLE_FIELD = '~'
local HASH_TABLE_VALUE = '~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~'

-- The reply codes, HTTP-style. `Code` in reply.rs is the same table on the Rust side (a test
-- ties the two, and fails on a code spelled as a bare number in any script).
local CODE = { OK = 200, ACCEPTED = 202, HELD_BY_ANOTHER = 403, NO_SUCH_SEAT = 404, CONFLICT = 409, HOLD_LIMIT = 429, QUEUE_FULL = 503 }

-- Redis does not roll a script back: a command that fails after another one wrote leaves that
-- write in place. Once a script's checks have passed, its writes can fail only on a key of the
-- wrong type, or on a counter that is not a number (nothing but a bug, or a person at redis-cli,
-- makes either; a script increments a counter before its other writes). So before its first write
-- each script looks at the type of every key it is about to write that it has not already read
-- (a read of the wrong type fails just as early): `wrong_key_type` names the first key of
-- `expected` ({key, TYPE, key, TYPE, ...}) that exists with another type, or returns nil.
-- The code that starts the error a script answers when it meets such a key: the caller reads
-- it as data the service never writes (`Error::Corrupt`), not as Redis being unavailable.
local CORRUPT = 'CORRUPT '

local function wrong_key_type(expected)
  for i = 1, #expected, 2 do
    local found = redis.call('TYPE', expected[i]).ok
    if found ~= 'none' and found ~= expected[i + 1] then
      return expected[i] .. ' is a ' .. found .. ', not a ' .. expected[i + 1]
    end
  end
  return nil
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split(s, sep)
  local out = {}
  if not s or s == '' then return out end
  for part in string.gmatch(s, '([^' .. sep .. ']+)') do out[#out + 1] = part end
  return out
end

-- 6-byte big-endian integers (times in ms) are packed and read by Redis's `struct` library
-- (`struct.pack('>I6I6', ...)` in the records below): one C call each, where a byte-by-byte
-- loop in Lua cost several times more.
local function from_u48(s, at)
  return (struct.unpack('>I6', s, at))
end

-- The raw record of seat `n` (a number or numeric string).
local function seat_record(seats_key, n)
  local from = (tonumber(n) - 1) * RECORD
  return redis.call('GETRANGE', seats_key, string.format('%d', from),
    string.format('%d', from + RECORD - 1))
end

local function write_seat(seats_key, n, record)
  redis.call('SETRANGE', seats_key, string.format('%d', (tonumber(n) - 1) * RECORD), record)
end

-- Decodes a raw seat record at time `now`.
-- Returns status ('A', 'H' or 'R'), user ('' when Available), deadline, start, lapsed
-- where `lapsed` is true for a hold past its deadline (reported as 'A').
local function seat_at(raw, now)
  if not raw or #raw < RECORD then return 'A', '', 0, 0, false end
  local status = string.sub(raw, 1, 1)
  if status == 'R' then return 'R', string.sub(raw, 2, 17), 0, 0, false end
  if status == 'H' then
    local deadline = from_u48(raw, 18)
    if deadline > now then return 'H', string.sub(raw, 2, 17), deadline, from_u48(raw, 24), false end
    return 'A', '', 0, 0, true
  end
  return 'A', '', 0, 0, false
end

-- A record is its status, its user, then `record_times(t1, t2)`; a caller that makes many records
-- with the same times packs them once.
local function record_times(t1, t2)
  return struct.pack('>I6I6', t1, t2)
end

local function hold_record(user, deadline, start)
  return 'H' .. user .. record_times(deadline, start)
end

local function reserved_record(user, at)
  return 'R' .. user .. record_times(at, 0)
end

-- A queued job, as enqueue.lua appends it to the event's queue and process.lua takes it off:
--   <kind (1 byte: 'H' hold, 'R' reserve)><user (16 raw bytes)><seat>|<accepted ms>|<seq>[|<attempts>]
-- `attempts` (the attempts made so far) is there only on a job back from the retry set. These two
-- functions are the Lua side of the layout; `wire::QueuedJob` in Rust is the other.
local function encode_job(kind, user, seat, accepted, seq, attempts)
  local job = kind .. user .. seat .. '|' .. accepted .. '|' .. seq
  if attempts then job = job .. '|' .. attempts end
  return job
end

-- The fields of a queued job: kind, user, then seat, accepted and seq as text (nil where a
-- corrupt job lacks them), the attempts made (0 when absent), and whether seat, accepted and seq
-- are plain integers (`%d` text of a positive number). A job as enqueue.lua and process.lua
-- write it is read with one match, and is plain; anything else by the general split.
local function decode_job(job)
  -- One match takes every field (each C call a script makes costs about as much as a field).
  local kind, user, seat, accepted, seq, attempts = string.match(job,
    '^(.)(................)([1-9]%d*)|([1-9]%d*)|([1-9]%d*)|?(%d*)$')
  if kind then
    return kind, user, seat, accepted, seq, attempts == '' and 0 or tonumber(attempts), true
  end
  local f = split(string.sub(job, 18), '|')
  return string.sub(job, 1, 1), string.sub(job, 2, 17), f[1], f[2], f[3], tonumber(f[4]) or 0,
    false
end

-- The `holders` hash maps a user (16 raw bytes) to the seats they hold in this event, "n,n,n".
-- The list may still name seats whose hold lapsed or moved on, so callers filter it.
local function holder_remove(holders_key, user, seat)
  local list = redis.call('HGET', holders_key, user)
  if not list then return end
  local kept = {}
  for _, s in ipairs(split(list, ',')) do
    if s ~= tostring(seat) then kept[#kept + 1] = s end
  end
  if #kept == 0 then
    redis.call('HDEL', holders_key, user)
  else
    redis.call('HSET', holders_key, user, table.concat(kept, ','))
  end
end

-- Every change to a seat is appended to the event's `changes` stream, the feed behind
-- GET /events/{id}/stream, by the same script that makes the change: a reader that resumes after
-- an entry id misses nothing and sees nothing twice. The entry id's milliseconds are the time of
-- the change. Fields: k = kind ('h' held, 'f' refreshed, 'x' released, 'l' lapsed, 'r' reserved),
-- n = seat number, u = the user concerned (16 raw bytes; for 'x' and 'l' the former holder),
-- x = the hold's deadline in ms ('h', 'f', and 'l': when it lapsed) or 0. The stream keeps about 10,000 entries;
-- a reader further behind than that starts again from a snapshot.
-- Numbers go to redis.call as `%d` text: a Lua number is printed with `%.17g`, which costs.
local CHANGES_KEPT_TEXT = '10000'

-- `seat` and `deadline` are numbers, or already such text. Each entry trims the stream as it
-- goes in (MAXLEN ~: Redis drops whole nodes of old entries, so it costs little).
local function log_change(changes_key, kind, seat, user, deadline)
  if type(seat) ~= 'string' then seat = string.format('%d', seat) end
  if type(deadline) ~= 'string' then deadline = string.format('%d', deadline or 0) end
  redis.call('XADD', changes_key, 'MAXLEN', '~', CHANGES_KEPT_TEXT, '*',
    'k', kind, 'n', seat, 'u', user, 'x', deadline)
end

-- Clears a hold on `seat` that lapsed ('l') or was given back ('x'): the seat reads Available,
-- the holder's list and the deadline set forget it, and the change is logged.
local function clear_hold(seats_key, deadlines_key, holders_key, changes_key, seat, raw, why)
  local user = string.sub(raw, 2, 17)
  write_seat(seats_key, seat, EMPTY)
  redis.call('ZREM', deadlines_key, seat)
  holder_remove(holders_key, user, seat)
  log_change(changes_key, why, seat, user, why == 'l' and from_u48(raw, 18) or 0)
end

-- Keeps the event's tick key expiring at its earliest hold deadline, so that the keyspace
-- notification for it prompts a sweep. Returns that deadline, or false when no hold is left.
local function rearm_tick(deadlines_key, tick_key)
  local first = redis.call('ZRANGE', deadlines_key, '0', '0', 'WITHSCORES')
  if #first == 0 then
    redis.call('DEL', tick_key)
    return false
  end
  local at = tonumber(first[2])
  redis.call('SET', tick_key, '1', 'PXAT', string.format('%d', at))
  return at
end

-- Removes finished job records whose retention has passed (at most `limit` of them).
-- Returns the earliest retention deadline still pending, or false.
local function trim_results(results_key, done_key, now, limit)
  local first = redis.call('ZRANGE', done_key, '0', '0', 'WITHSCORES')
  if #first == 0 then return false end
  if tonumber(first[2]) > now then return tonumber(first[2]) end
  local old = redis.call('ZRANGEBYSCORE', done_key, '-inf', string.format('%d', now), 'LIMIT',
    '0', string.format('%d', limit))
  if #old > 0 then
    redis.call('HDEL', results_key, unpack(old))
    redis.call('ZREM', done_key, unpack(old))
  end
  first = redis.call('ZRANGE', done_key, '0', '0', 'WITHSCORES')
  if #first == 0 then return false end
  return tonumber(first[2])
end

-- A job that could not be applied waits in the event's `retry` sorted set (score: when it is due)
-- for its next attempt. Moves the due ones to the head of the queue, in sequence order, so that
-- they go before the jobs accepted after them. Only process.lua calls it, just before it pops, so
-- that a requeued job is applied in the same call and the queue otherwise holds only jobs that
-- were never tried (job_status.lua counts positions on that). Returns how many.
local function requeue_due(retry_key, queue_key, now, limit)
  local due = redis.call('ZRANGEBYSCORE', retry_key, '-inf', string.format('%d', now), 'LIMIT',
    '0', string.format('%d', limit))
  if #due == 0 then return 0 end
  -- Jobs retried together keep their order of acceptance (G3 among themselves): by sequence
  -- number.
  local function seq_of(job)
    local _, _, _, _, seq = decode_job(job)
    return tonumber(seq) or 0
  end
  table.sort(due, function(a, b) return seq_of(a) < seq_of(b) end)
  for i = #due, 1, -1 do redis.call('LPUSH', queue_key, due[i]) end
  redis.call('ZREM', retry_key, unpack(due))
  return #due
end

-- The lowest score of a sorted set, or false when it is empty.
local function first_score(key)
  local first = redis.call('ZRANGE', key, '0', '0', 'WITHSCORES')
  if #first == 0 then return false end
  return tonumber(first[2])
end

local function earliest(a, b)
  if not a then return b end
  if not b then return a end
  return math.min(a, b)
end
