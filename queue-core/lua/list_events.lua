-- Reads one page of the events registry, newest first (`GET /events`): the events created
-- before the cursor's, in the registry's order (creation ms descending, then id descending), so
-- that events created while a client pages through do not shift its later pages. Atomic, so a
-- creation between finding the cursor and reading the page cannot repeat or skip an event.
-- Writes nothing.
--
-- KEYS[1]: events registry sorted set (event id -> creation ms)
-- ARGV[1]: page size (1 to 100, validated by the caller)
-- ARGV[2]: the cursor's creation ms, or '' for the first page
-- ARGV[3]: the cursor's event id ('' for the first page)
-- Returns: {more (1 when events follow this page, else 0), id1, ms1, id2, ms2, ...}
local limit = tonumber(ARGV[1])
local start = 0
if ARGV[2] ~= '' then
  local rank = redis.call('ZREVRANK', KEYS[1], ARGV[3])
  if rank then
    start = rank + 1
  else
    -- The cursor's event is gone (deleted): start after every event that sorts before it,
    -- those created later and those of the same ms with a greater id.
    start = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[2], '+inf')
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[2])) do
      if id > ARGV[3] then start = start + 1 end
    end
  end
end
local page = redis.call('ZREVRANGE', KEYS[1], start, start + limit, 'WITHSCORES')
local more = 0
if #page > 2 * limit then
  more = 1
  page[#page] = nil
  page[#page] = nil
end
local out = {more}
for i = 1, #page, 2 do
  out[#out + 1] = page[i]
  out[#out + 1] = tonumber(page[i + 1])
end
return out
