-- Creates an event with all its seats, or nothing: the seats string is allocated at its full
-- length (every record zero, that is Available) by one SETRANGE.
--
-- KEYS[1]: event hash   KEYS[2]: seats string
-- ARGV[1]: name
-- ARGV[2]: total seats (already validated by the caller)
-- ARGV[3]: when the event ends (`endsAt`, ms since the epoch), or '' for an event without an end
-- Returns: 1 when created, 0 when an event with this id already exists (nothing written)
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SETRANGE', KEYS[2], tonumber(ARGV[2]) * RECORD - 1, '\0')
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'total', ARGV[2], 'reserved', 0, 'enq', 0, 'deq', 0,
  HASH_TABLE_FIELD, HASH_TABLE_VALUE)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'ends', ARGV[3]) end
return 1
