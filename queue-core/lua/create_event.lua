-- Creates an event with all its seats, or nothing.
-- Seats are implicit: seat numbers 1..totalSeats exist once the event hash does, and each starts
-- Available (no field in the seats hash), so creating 10,000 seats is one HSET.
--
-- KEYS[1]: event hash
-- ARGV[1]: name
-- ARGV[2]: total seats (already validated by the caller)
-- Returns: 1 when created, 0 when an event with this id already exists (nothing written)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'total', ARGV[2], 'reserved', 0, 'enq', 0, 'deq', 0)
return 1
