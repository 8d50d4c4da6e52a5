-- Takes up to ARGV[1] jobs off the head of an event's queue and applies each one, in queue order,
-- in this same script: a job is never "in flight" outside Redis, so a worker killed at any instant
-- cannot lose or double one (G4), and two workers cannot reorder one event's jobs (G3).
--
-- One call drains several events on one Redis (a worker process hands its events that wait for
-- the same turn to one call: the call's fixed cost, its EVALSHA, TIME and this prelude, its
-- reply and its announcement, is then shared by them all), one event on a cluster (a script
-- stays in one slot). Each event is drained as if it were alone.
--
-- KEYS, ten for each event in turn:
--   1: event hash      2: seats string    3: deadlines sorted set   4: holders hash
--   5: queue list      6: results hash    7: done sorted set        8: tick key
--   9: changes stream  10: retry sorted set (jobs waiting for another attempt)
-- ARGV[1]: maximum number of jobs to apply, per event
-- ARGV[2]: hold length in ms (HOLD_TTL)
-- ARGV[3]: seats one user may hold in this event (MAX_HELD_SEATS)
-- ARGV[4]: how long a finished job's record is kept, in ms (JOB_RESULT_TTL)
-- ARGV[5]: lease length in ms, renewed while jobs remain
-- ARGV[6]: channel on which to publish the records of the jobs finished, so that API processes
--          can answer clients waiting on them, in one message for the call: for each event with
--          jobs finished, "<event id>" then " <length> <record>" per job, the events separated
--          by a space (a record is binary, hence the byte length before it; an event id is never
--          a number); empty: publish nothing and return that message instead
--          (REDIS_REPLICA_ACKS: the caller announces the results once replicas have them)
-- ARGV[7]: attempts a job that cannot be applied gets before it ends `failed`
-- ARGV[8]: the first retry's delay in ms; each further one doubles, up to ARGV[9] ms
-- ARGV[10]: a random number in [0, 1) from the caller (Lua's own is the same on every run): the
--           delays of this call are scaled by 0.5 to 1 by it (jitter across calls and workers;
--           jobs that fail together stay together, and in order)
-- ARGV[11...]: the event ids, one for each event, in the order of KEYS
-- Returns one flat array: first the message not published ('' when there is none, or when it
--   was published), then for each event in turn
--   applied, remaining, next due ms or -1, then `applied` records: {0, 0, -1} when the event
--     does not exist (deleted while its jobs waited); or
--   -1, why: the event's results hash or done set has the wrong type (`CORRUPT`), and nothing of
--     that event was taken or written
--   where "next due" is the earliest of: the deadline of the holds made in this call (those of
--   earlier holds were reported by the calls that made them), the first finished record's end of
--   retention, and the first retry; -1 when none applies
--   each record as stored in the results hash under the job's sequence number:
--   "<seq>|c|<kind>|<seat>|<code>|<created ms>|<completed ms>|<raw seat record>" when completed,
--   "<seq>|f|<kind>|<seat>|0|<created ms>|<completed ms>|<reason>" when it could not be applied,
--   "<seq>|r|<kind>|<seat>|<attempts>|<created ms>|<retry at ms>|<reason>" when it could not be
--   applied yet and waits in the retry set for another attempt (it is not finished).
-- A job that fails is retried, not left in the way: the jobs behind it go on at once.
local now = now_ms()
-- The caller's numbers are `%d` text; `+ 0` reads one with one conversion (tonumber makes two).
local max_jobs = ARGV[1] + 0

-- Times and numbers go to Redis, and into records, as text made with `%d`: a Lua number handed
-- to redis.call or joined with `..` is printed with `%.17g` / `%.14g`, which costs more than
-- the command. What only the jobs need is made once there are jobs (an empty call is common:
-- a token for a queue another worker drained).
local now_s = string.format('%d', now)
local defer = ARGV[6] == ''
-- What every event's turn with jobs uses alike, made by the first such turn: settings, when
-- this call's holds end, their records' times, and when its records' retention ends.
local hold_ms, max_held, keep_ms, max_attempts
local hold_end, hold_end_s, held_times, keep_until_s
-- The lease renewed for an event with jobs left, as text (made when first needed).
local lease_until_s
-- Reply codes and record lengths as text, each made once per call.
local texts = {}
local function text_of(n)
  local s = texts[n]
  if not s then
    s = string.format('%d', n)
    texts[n] = s
  end
  return s
end
-- The reply (see the header), and the announcement of the jobs this call finished.
local out = {''}
local message = {}

-- Each event in turn, its ten keys from KEYS[k], appending what becomes of it to `out` and its
-- finished jobs to `message`. (A loop, not a function called per event: in a function, each of
-- the prelude's definitions and of the values above is an upvalue, and making that function
-- cost about 15,000 instructions a call.) `break` ends an event's turn.
for k = 1, #KEYS, 10 do repeat
  local event_id = ARGV[10 + (k + 9) / 10]
  local ev, seats, deadlines, holders = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local queue, results, done, tick = KEYS[k + 4], KEYS[k + 5], KEYS[k + 6], KEYS[k + 7]
  local changes, retry = KEYS[k + 8], KEYS[k + 9]
  local base = #out
  out[base + 1], out[base + 2], out[base + 3] = 0, 0, -1

  -- Besides its counters, the event hash keeps `trim` for this script: when the first finished
  -- record's retention ends; 0 when none is kept; -1 when not known (look). It is never later than
  -- the truth, since records added later end later (sweep.lua may trim some first; the next look
  -- here then finds the true time), so a call with nothing to trim reads no sorted set for it. At
  -- a steady trickle of jobs each call carries one or two, and every command it runs weighs.
  local fields = redis.call('HMGET', ev, 'total', 'deq', 'enq', 'trim', 'reserved')
  -- No event (it was deleted, delete_event.lua): take no job and write nothing; the deletion frees
  -- the queue.
  if not fields[1] then break end
  local total, deq = tonumber(fields[1]) or 0, tonumber(fields[2]) or 0
  local trim_at = tonumber(fields[4]) or -1
  -- `trim` as text when it changed (else it is not written again).
  local trim_s = not fields[4] and '-1' or nil
  -- Nothing is written before this point. The event hash was just read and the retry set is read
  -- before it is written; the queue's first command (LPUSH of a due retry, or LPOP) fails, on a
  -- queue of the wrong type, before anything else is written. The results hash and the done set
  -- are written after the jobs: one of those of the wrong type ends this event's turn, before it
  -- takes a job off the queue, so that no job is lost (the jobs wait, and the worker logs why).
  local wrong = wrong_key_type({results, 'hash', done, 'zset'})
  if wrong then
    out[base + 1], out[base + 3] = -1, nil
    out[base + 2] = CORRUPT .. 'cannot record job results: ' .. wrong
    break
  end

  -- The retry set is nearly always empty: one look says whether anything in it is due. (Not
  -- cached: a worker running an older version of this script, during a rolling deploy, could add
  -- a retry that a cache would never show.)
  local retry_first = first_score(retry)
  if retry_first and retry_first <= now then
    requeue_due(retry, queue, now, max_jobs)
    retry_first = first_score(retry)
  end

  local applied = 0
  -- Whether this turn made a hold (and so must see that the event's tick is armed; its holds end
  -- at `hold_end`).
  local held = false
  -- The event's `reserved` count after this turn's reserves, when it has any.
  local reserved_count = nil
  local last_seq, last_seq_s = nil, nil
  local retried = false
  -- One LPOP with a count takes the whole batch (Redis 6.2+); nil when the queue is empty.
  local jobs = redis.call('LPOP', queue, ARGV[1]) or {}

  if #jobs > 0 then
    if not hold_end then
      hold_ms, max_held, keep_ms, max_attempts = ARGV[2] + 0, ARGV[3] + 0, ARGV[4] + 0, ARGV[7] + 0
      hold_end = now + hold_ms
      hold_end_s = string.format('%d', hold_end)
      -- The times of every hold this call makes (`hold_record`).
      held_times = record_times(hold_end, now)
      keep_until_s = string.format('%d', now + keep_ms)
    end
    -- The times of every reserve (`reserved_record`), made at the first.
    local reserved_times = nil

    -- A job's record, as the results hash keeps it and ARGV[6] announces it (see the header);
    -- the Lua side of the layout, `wire::decode_record` in Rust the other.
    local function job_record(seq, outcome, kind, seat, code, created, at, tail)
      return seq .. '|' .. outcome .. '|' .. kind .. '|' .. seat .. '|' .. code .. '|' .. created
        .. '|' .. at .. '|' .. tail
    end

    -- A field's integer as `%d` text, or nil when it holds none.
    local function int_text(field)
      local n = tonumber(field)
      if n and n == math.floor(n) and n > -2 ^ 53 and n < 2 ^ 53 then
        return string.format('%d', n)
      end
      return nil
    end

    -- The seat number of a job's seat field, or nil when it names no seat of the event.
    local function seat_number(seat)
      local n = tonumber(seat)
      if n ~= nil and n >= 1 and n <= total and n == math.floor(n) then return n end
      return nil
    end

    -- What the jobs of this call read and change, besides the changes stream: seat records are
    -- read once and written at once (SETRANGE); who holds what (`holders`) and the hold deadlines
    -- are kept here and written once, after the jobs. Nothing else runs in between, so the effect
    -- is the same as writing each at once, in fewer commands. Seats are keyed by number; members
    -- and fields are written as `%d` text.
    -- `n` is a seat number (read and written as `seat_record` and `write_seat` do, for a number).
    local seat_cache = {}
    local function read_seat(n)
      local raw = seat_cache[n]
      if raw == nil then
        local from = (n - 1) * RECORD
        raw = redis.call('GETRANGE', seats, string.format('%d', from),
          string.format('%d', from + RECORD - 1))
        seat_cache[n] = raw
      end
      return raw
    end
    local function put_seat(n, record)
      redis.call('SETRANGE', seats, string.format('%d', (n - 1) * RECORD), record)
      seat_cache[n] = record
    end
    -- seat number -> its `%d` text, where a job gave it (to write it without formatting it again).
    local seat_text = {}

    -- The holders hash and the changes stream get no TYPE look (each costs a command a call):
    -- every job that writes either reads its user's holders entry first, then appends its change,
    -- before anything else it writes or keeps for the batch's writes. A key of the wrong type
    -- fails the job there, with nothing of it done, and with the key named. `hold` and `reserve`
    -- keep that order; the lapse a job clears on its way goes by the same rule.
    local function broken(key, reply)
      error(key .. ' cannot be used: ' .. tostring(reply.err))
    end

    -- The holders entries of the batch's users, read with one HMGET before any job runs (the
    -- jobs write `holders` only after the batch, so each job reads what a read of its own would
    -- have): user -> entry, false when none, or the error of a holders hash of the wrong type,
    -- which a job meets where it would have met its own read's.
    local fetched = {}
    do
      local users = {}
      for i = 1, #jobs do
        local user = string.sub(jobs[i], 2, 17)
        if fetched[user] == nil then
          fetched[user] = false
          users[#users + 1] = user
        end
      end
      local entries = redis.pcall('HMGET', holders, unpack(users))
      if entries.err then
        for i = 1, #users do fetched[users[i]] = entries end
      else
        for i = 1, #users do fetched[users[i]] = entries[i] end
      end
    end

    -- user -> the seat numbers their `holders` entry names (live or not), as read or since.
    local holding, holding_changed = {}, {}
    local function held_by(user)
      local list = holding[user]
      if list == nil then
        local entry = fetched[user]
        -- A user not of the batch: a lapsed hold's former holder.
        if entry == nil then entry = redis.pcall('HGET', holders, user) end
        if type(entry) == 'table' then broken(holders, entry) end
        list = {}
        for _, s in ipairs(split(entry, ',')) do
          list[#list + 1] = tonumber(s) or s
        end
        holding[user] = list
      end
      return list
    end
    local function set_held(user, list)
      holding[user] = list
      holding_changed[user] = true
    end
    local function drop_held(user, n)
      local kept = {}
      for _, s in ipairs(held_by(user)) do
        if s ~= n then kept[#kept + 1] = s end
      end
      set_held(user, kept)
    end

    -- seat number -> its new deadline (text), or false once it has none; in the order first met.
    local deadline_of, deadline_order = {}, {}
    local function set_deadline(n, at)
      if deadline_of[n] == nil then deadline_order[#deadline_order + 1] = n end
      deadline_of[n] = at
    end

    -- Whether a change went to the feed this turn: its first one trims the feed as it goes in
    -- (to about CHANGES_KEPT entries, as `log_change` does; one command less than an XTRIM).
    local logged = false
    -- Appends a change to the feed (as `log_change`), naming the stream if it is broken.
    local function log(kind, seat_s, user, deadline)
      local added
      if logged then
        added = redis.pcall('XADD', changes, '*', 'k', kind, 'n', seat_s, 'u', user, 'x', deadline)
      else
        added = redis.pcall('XADD', changes, 'MAXLEN', '~', CHANGES_KEPT_TEXT, '*',
          'k', kind, 'n', seat_s, 'u', user, 'x', deadline)
      end
      if type(added) == 'table' and added.err then broken(changes, added) end
      logged = true
    end

    -- A hold that lapsed, cleared as `clear_hold` does (its seat is written over next): the
    -- holder's entry read and the change logged before anything is changed.
    local function lapse(n, raw)
      local former = string.sub(raw, 2, 17)
      held_by(former)
      log('l', seat_text[n] or string.format('%d', n), former, string.format('%d', from_u48(raw, 18)))
      drop_held(former, n)
      set_deadline(n, false)
    end

    -- Reserves made (added to the event's count after the jobs). The event's `reserved` count
    -- must be an integer as Redis reads one (no sign but '-', no leading zero, at most 19 digits):
    -- the sum is written with the event hash's last write (a count of more than 15 digits, which
    -- a Lua number may not hold exactly, is added by HINCRBY), and either would fail on anything
    -- else after the seats were written: checked before a reserve writes anything.
    local reserved = 0
    local count = fields[5]
    local reserved_ok = not count or count == '0'
      or (#count <= 19 and string.find(count, '^%-?[1-9]%d*$') ~= nil)

    -- Each returns an HTTP-style code and the seat record to report; they check before they write.
    -- `seat_s` is the seat's number as text, for the feed.
    -- `n` is the seat's number, nil when the job names no seat of the event.
    local function hold(n, user, seat_s)
      if not n then return CODE.NO_SUCH_SEAT, '' end
      local raw = read_seat(n)
      local status, _, _, _, lapsed = seat_at(raw, now)
      if status ~= 'A' then return CODE.CONFLICT, raw end
      local live = {}
      for _, s in ipairs(held_by(user)) do
        local st, who = seat_at(read_seat(s), now)
        if st == 'H' and who == user then live[#live + 1] = s end
      end
      if #live >= max_held then return CODE.HOLD_LIMIT, '' end
      if lapsed then lapse(n, raw) end
      log('h', seat_s, user, hold_end_s)
      local record = 'H' .. user .. held_times
      put_seat(n, record)
      set_deadline(n, hold_end_s)
      held = true
      live[#live + 1] = n
      set_held(user, live)
      return CODE.OK, record
    end

    local function reserve(n, user, seat_s)
      if not n then return CODE.NO_SUCH_SEAT, '' end
      local raw = read_seat(n)
      local status, holder, _, _, lapsed = seat_at(raw, now)
      if status == 'R' then return CODE.CONFLICT, raw end
      if status == 'A' then
        if lapsed then
          lapse(n, raw)
          put_seat(n, EMPTY)
        end
        return CODE.CONFLICT, ''
      end
      if holder ~= user then return CODE.HELD_BY_ANOTHER, raw end
      if not reserved_ok then error('the event\'s reserved count is not an integer') end
      held_by(user)
      log('r', seat_s, user, '0')
      reserved = reserved + 1
      reserved_times = reserved_times or record_times(now, 0)
      local record = 'R' .. user .. reserved_times
      put_seat(n, record)
      set_deadline(n, false)
      drop_held(user, n)
      return CODE.OK, record
    end

    local finished = {}
    -- Written once per batch rather than once per job: fewer commands, same effect, since nothing
    -- else runs between them.
    local records, expiries = {}, {}
    -- The deadlines set, which the jobs write after them without reading it: one of the wrong
    -- type fails every job before its first write, so it is retried, then ends failed, and leaves
    -- its seat and the feed as they were. (The holders and the feed: see `broken`.)
    local wrong_for_jobs = wrong_key_type({deadlines, 'zset'})
    -- One job, run under pcall: an error stops that job alone. (One function for the batch: a
    -- closure made per job cost more than the pcall.)
    local function apply(kind, n, user, seat_s)
      if wrong_for_jobs then error(wrong_for_jobs) end
      if #user ~= 16 then error('corrupt job') end
      if kind == 'H' then return hold(n, user, seat_s) end
      if kind == 'R' then return reserve(n, user, seat_s) end
      error('unknown job kind')
    end
    for _, job in ipairs(jobs) do
      applied = applied + 1
      -- A job is written only by enqueue.lua, but a corrupt one must still end `failed`, not stop
      -- the script halfway, so nothing below assumes its fields are there.
      local kind, user, job_seat, accepted, job_seq, attempt, plain = decode_job(job)
      -- The record's text fields must parse whatever the job held: an odd kind or seat is masked.
      local n, created, seq, seq_s, shown_seat
      if plain and #job_seat <= 9 and #accepted <= 15 and #job_seq <= 15 then
        -- As enqueue.lua writes a job: its numbers are `%d` text already, the seat's at least 1.
        created, seq_s, shown_seat = accepted, job_seq, job_seat
        seq = job_seq + 0
        n = job_seat + 0
        if n > total then n = nil else seat_text[n] = job_seat end
      else
        local seat = job_seat or '0'
        n = seat_number(seat)
        created = int_text(accepted) or '0'
        seq = tonumber(job_seq) or (math.max(last_seq or 0, deq) + 1)
        seq_s = int_text(job_seq) or int_text(seq) or tostring(seq)
        shown_seat = int_text(seat) or tostring(tonumber(seat) or 0)
      end
      if not last_seq or seq > last_seq then last_seq, last_seq_s = seq, plain and seq_s end
      local record
      local shown_kind = (kind == 'H' or kind == 'R') and kind or '?'
      local ok, code, state = pcall(apply, kind, n, user, shown_seat)
      local tries, retrying = attempt + 1, false
      if ok then
        record = job_record(seq_s, 'c', shown_kind, shown_seat, text_of(code), created, now_s,
          state or '')
      else
        if type(code) == 'table' then code = code.err end
        local reason = tostring(code)
        if tonumber(job_seq) and tries < max_attempts then
          -- Exponential backoff with jitter; the job keeps its sequence number (its id).
          local retry_base_ms, retry_max_ms = tonumber(ARGV[8]), tonumber(ARGV[9])
          local jitter = tonumber(ARGV[10]) or 0.5
          local delay = math.min(retry_max_ms, retry_base_ms * 2 ^ (tries - 1))
          local at = now + math.floor(delay * (0.5 + 0.5 * jitter))
          local at_s = string.format('%d', at)
          redis.call('ZADD', retry, at_s, encode_job(kind, user, job_seat, accepted, job_seq, tries))
          retrying = true
          retried = true
          record = job_record(seq_s, 'r', shown_kind, shown_seat, string.format('%d', tries),
            created, at_s, reason)
        else
          if tries > 1 then reason = 'gave up after ' .. tries .. ' attempts: ' .. reason end
          record = job_record(seq_s, 'f', shown_kind, shown_seat, '0', created, now_s, reason)
        end
      end
      records[#records + 1] = seq_s
      records[#records + 1] = record
      out[#out + 1] = record
      if not retrying then
        expiries[#expiries + 1] = keep_until_s
        expiries[#expiries + 1] = seq_s
        finished[#finished + 1] = text_of(#record) .. ' ' .. record
      end
    end

    -- The batch's hold deadlines, holders and reserved count, written once (see `seat_cache`).
    local add, gone = {}, {}
    for _, n in ipairs(deadline_order) do
      local at = deadline_of[n]
      if at then
        add[#add + 1] = at
        add[#add + 1] = seat_text[n] or string.format('%d', n)
      else
        gone[#gone + 1] = seat_text[n] or string.format('%d', n)
      end
    end
    if #add > 0 then redis.call('ZADD', deadlines, unpack(add)) end
    if #gone > 0 then redis.call('ZREM', deadlines, unpack(gone)) end
    local lists, emptied = {}, {}
    for user in pairs(holding_changed) do
      local list = holding[user]
      if #list == 0 then
        emptied[#emptied + 1] = user
      else
        local names = {}
        for i, n in ipairs(list) do
          names[i] = seat_text[n] or (type(n) == 'number' and string.format('%d', n) or n)
        end
        lists[#lists + 1] = user
        lists[#lists + 1] = #names == 1 and names[1] or table.concat(names, ',')
      end
    end
    if #lists > 0 then
      -- With the field that keeps the hash a hash table (see HASH_TABLE_FIELD).
      lists[#lists + 1] = HASH_TABLE_FIELD
      lists[#lists + 1] = HASH_TABLE_VALUE
      redis.call('HSET', holders, unpack(lists))
    end
    if #emptied > 0 then redis.call('HDEL', holders, unpack(emptied)) end
    -- The reserves made: a count Lua adds exactly goes with the event hash's last write, below.
    if reserved > 0 then
      if count and #count > 15 then
        redis.call('HINCRBY', ev, 'reserved', string.format('%d', reserved))
      else
        reserved_count = (count and count + 0 or 0) + reserved
      end
    end

    redis.call('HSET', results, unpack(records))
    if #expiries > 0 then
      redis.call('ZADD', done, unpack(expiries))
      -- Records were added: the first to end is the earliest known one, or these.
      if trim_at == 0 then trim_at = now + keep_ms; trim_s = keep_until_s end
      message[#message + 1] = event_id
      message[#message + 1] = table.concat(finished, ' ')
    end
  end

  if retried then retry_first = first_score(retry) end
  if trim_at ~= 0 and trim_at <= now then
    trim_at = trim_results(results, done, now, max_jobs * 2) or 0
    trim_s = string.format('%d', trim_at)
  end

  -- The tick key's expiry prompts a sweep of the event's lapsed holds. A hold made now ends at
  -- now + HOLD_TTL, and no other hold ends later (each one, or its last refresh, ended at most
  -- HOLD_TTL after it was made, with one HOLD_TTL across processes), so the tick only needs arming
  -- when none is: NX leaves an armed one, which expires no later, alone. A tick left early by a
  -- hold that ended sooner (reserved, released) fires, finds nothing due, and the sweep rearms it.
  -- When no tick is armed while older lapsed holds still wait (their notification was lost), this
  -- one comes later than they do: the sweep schedule has their deadlines, reported when they were
  -- made, and the full pass catches the rest. Prompt cleanup only, never correctness (G5).
  local next_due = nil
  if held then
    next_due = hold_end
    redis.call('SET', tick, '1', 'PXAT', hold_end_s, 'NX')
  end

  -- `drained`, when a worker last drained this queue: job_status reports the head job `active`
  -- while one is. The lease is renewed while jobs remain, and given up (0) when none do. A pop
  -- short of the batch size emptied the queue.
  local remaining = 0
  if #jobs >= max_jobs then remaining = redis.call('LLEN', queue) end
  if remaining > 0 and not lease_until_s then
    lease_until_s = string.format('%d', now + (ARGV[5] + 0))
  end
  local event_fields = {'drained', now_s, 'lease', remaining == 0 and '0' or lease_until_s}
  if trim_s then
    event_fields[#event_fields + 1] = 'trim'
    event_fields[#event_fields + 1] = trim_s
  end
  -- `deq`: the last job taken. With the queue empty every accepted job was taken, so it catches up
  -- with `enq` (enqueue.lua counts the depth as enq - deq: should jobs ever leave the list some
  -- other way, the count heals at the next drain).
  local new_deq = math.max(deq, last_seq or 0)
  if remaining == 0 then new_deq = math.max(new_deq, tonumber(fields[3]) or 0) end
  if new_deq ~= deq then
    event_fields[#event_fields + 1] = 'deq'
    event_fields[#event_fields + 1] = new_deq == last_seq and last_seq_s
      or string.format('%d', new_deq)
  end
  if reserved_count then
    event_fields[#event_fields + 1] = 'reserved'
    event_fields[#event_fields + 1] = string.format('%d', reserved_count)
  end
  redis.call('HSET', ev, unpack(event_fields))
  next_due = earliest(next_due, trim_at > 0 and trim_at or nil)
  next_due = earliest(next_due, retry_first)
  out[base + 1], out[base + 2], out[base + 3] = applied, remaining, next_due or -1
until true end
if #message > 0 then
  local text = table.concat(message, ' ')
  if defer then out[1] = text else redis.call('PUBLISH', ARGV[6], text) end
end
return out
