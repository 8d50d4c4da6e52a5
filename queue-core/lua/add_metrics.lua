-- Adds a worker's counts to the service-wide figures (read by the API's /metrics).
--
-- KEYS[1]: metrics hash
-- ARGV: field, amount, field, amount, ...
-- Returns: the number of fields added to
for i = 1, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
return #ARGV / 2
