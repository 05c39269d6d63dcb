-- dramatiq's dispatch.lua "ack" and "nack" commands, for many messages of one queue at once.
-- KEYS: acks, queue msgs, dead letters, dead letter msgs, heartbeats, queue priorities.
-- ARGV: "ack" or "nack", now (ms), broker id, then the Redis message ids.
redis.call("zadd", KEYS[5], ARGV[2], ARGV[3])
for i = 4, #ARGV do
    local id = ARGV[i]
    if redis.call("srem", KEYS[1], id) > 0 then
        if ARGV[1] == "nack" then
            local message = redis.call("hget", KEYS[2], id)
            if message then
                redis.call("zadd", KEYS[3], ARGV[2], id)
                redis.call("hset", KEYS[4], id, message)
            end
        end
        redis.call("hdel", KEYS[2], id)
        redis.call("hdel", KEYS[6], id)
    end
end
return #ARGV - 3
