-- Reads one seat as of now. Writes nothing.
--
-- KEYS[1]: event hash   KEYS[2]: seats string
-- ARGV[1]: seat number
-- Returns: {} when there is no such event or seat, else {now ms, raw seat record}
local total = redis.call('HGET', KEYS[1], 'total')
if not total or tonumber(ARGV[1]) > tonumber(total) then return {} end
return {now_ms(), seat_record(KEYS[2], ARGV[1])}
