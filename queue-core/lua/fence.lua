#!lua flags=allow-oom
-- REDIS_REPLICA_ACKS: the write a read's connection makes before it WAITs, so that the WAIT
-- proves the replicas have everything written before the read (`Store::fenced`). Flagged
-- `allow-oom`: a read must not fail because Redis is full, and this writes one tiny key that
-- expires within a second. Not prefixed with common.lua (the flags line must come first).
--
-- KEYS[1]: the fence key of the read's slot (`rsv:{<event>}:fence`)
redis.call('SET', KEYS[1], '1', 'PX', 1000)
return 1
