#!lua flags=allow-oom
-- Records a worker's heartbeat while Redis refuses writes for memory (maxmemory with
-- noeviction): `allow-oom` lets this one write through, so that /health does not report the
-- workers dead just because Redis is full. It overwrites the worker's own field with a value of
-- the same size, so it takes no memory to speak of. Used only after a plain HSET was refused;
-- not prefixed with common.lua (the flags line must come first).
--
-- KEYS[1]: workers hash   ARGV[1]: worker id   ARGV[2]: heartbeat (`<ms>|<applied>|<µs busy>`)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
