-- Takes, or keeps, the housekeeping turn: one worker at a time runs the periodic passes, and the
-- holder renews its turn each period so the passes run every period rather than every two or
-- three. A holder that dies loses the turn when it lapses.
--
-- KEYS[1]: turn key
-- ARGV[1]: the worker's name
-- ARGV[2]: how long the turn lasts without renewal, in ms
-- Returns: 1 when the caller holds the turn now, 0 when another worker does
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
