-- Reads an event's seat changes after a given entry id, for a stream client that resumes
-- (Last-Event-ID) or catches up. Writes nothing.
--
-- KEYS[1]: event hash   KEYS[2]: changes stream
-- ARGV[1]: the id of the last change the reader has ('0-0' for none)
-- ARGV[2]: most entries to return
-- Returns: {} when there is no such event
--          {'gap'} when changes after ARGV[1] are no longer kept (the stream was trimmed past it,
--                  or the id is later than any change): the reader must start from a snapshot
--          {'ok', entry, entry, ...} otherwise, oldest first, each entry {id, {field, value, ...}}
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end

local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

-- Whether entry id `a` comes after `b`.
local function after(a, b)
  local am, as = parse_id(a)
  local bm, bs = parse_id(b)
  return am > bm or (am == bm and as > bs)
end

local from = ARGV[1]
if not parse_id(from) then return redis.error_reply('malformed change id') end
if redis.call('EXISTS', KEYS[2]) == 0 then
  if from == '0-0' then return {'ok'} end
  return {'gap'}
end
local info = redis.call('XINFO', 'STREAM', KEYS[2])
local last, deleted, first = '0-0', '0-0', nil
local length, added = 0, 0
for i = 1, #info, 2 do
  local name, value = info[i], info[i + 1]
  if name == 'last-generated-id' then last = value end
  if name == 'max-deleted-entry-id' then deleted = value end
  if name == 'length' then length = value end
  if name == 'entries-added' then added = value end
  if name == 'first-entry' and type(value) == 'table' then first = value[1] end
end
if after(from, last) or after(deleted, from) then return {'gap'} end
-- Trimming (MAXLEN) removes the oldest entries. When some were removed and the oldest kept one
-- comes after the reader's, what lay between may be gone: resync. (When the reader's own entry
-- is still kept, everything after it is too.)
if added > length and first and after(first, from) then return {'gap'} end
local out = {'ok'}
for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '(' .. from, '+', 'COUNT', tonumber(ARGV[2]))) do
  out[#out + 1] = entry
end
return out
