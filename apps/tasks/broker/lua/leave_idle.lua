-- A consumer leaves the idle set and takes whatever was handed to its inbox meanwhile (Redis 5+:
-- no LPOP count). KEYS: idle consumers, inbox. ARGV: broker id.
redis.call("zrem", KEYS[1], ARGV[1])
local handed = redis.call("lrange", KEYS[2], 0, -1)
redis.call("del", KEYS[2])
return handed
