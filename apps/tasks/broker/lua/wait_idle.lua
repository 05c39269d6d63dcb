-- An idle consumer offers to take the next message directly until ARGV[2] ms from now (Redis
-- clock): the time its blocking pop lasts. KEYS: idle consumers, inboxes. ARGV: broker id, ms, inbox.
local clock = redis.call("time")
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call("zadd", KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call("sadd", KEYS[2], ARGV[3])
return 1
