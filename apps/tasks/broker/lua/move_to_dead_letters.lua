-- Move one message from a dead worker's acks (or its queue, if maintenance already requeued it)
-- to the dead letters, atomically. KEYS: acks, queue, queue msgs, dead letters, dead letter msgs.
-- ARGV: redis id, now (ms).
local data = redis.call("hget", KEYS[3], ARGV[1])
if not data then return 0 end
redis.call("srem", KEYS[1], ARGV[1])
redis.call("lrem", KEYS[2], 0, ARGV[1])
redis.call("hdel", KEYS[3], ARGV[1])
redis.call("zadd", KEYS[4], ARGV[2], ARGV[1])
redis.call("hset", KEYS[5], ARGV[1], data)
return 1
