-- Enqueue one message ahead of every waiting message of lower priority on a list (dramatiq's own
-- enqueue appends): the queue for priorities above 0, the queue's low-priority list for those below
-- (see fetch.lua). Waiting messages without an entry in the priority hash count as priority 0; the
-- scan stops at the first lower one, so it only walks past the messages that outrank this one.
-- A message cancelled while a worker held it delayed (cancel.lua) is dropped here, when it is due.
-- KEYS: list, queue msgs, queue priorities, heartbeats, cancelled. ARGV: id, data, priority, now, broker id.
if redis.call("srem", KEYS[5], ARGV[1]) == 1 then
    return 3
end
redis.call("zadd", KEYS[4], ARGV[4], ARGV[5])
redis.call("hset", KEYS[2], ARGV[1], ARGV[2])
local priority = tonumber(ARGV[3])
redis.call("hset", KEYS[3], ARGV[1], priority)
local length = redis.call("llen", KEYS[1])
local start = 0
while start < length do
    local ids = redis.call("lrange", KEYS[1], start, start + 99)
    local priorities = redis.call("hmget", KEYS[3], unpack(ids))
    for i, id in ipairs(ids) do
        if (tonumber(priorities[i]) or 0) < priority then
            redis.call("linsert", KEYS[1], "BEFORE", id, ARGV[1])
            return 1
        end
    end
    start = start + 100
end
redis.call("rpush", KEYS[1], ARGV[1])
return 1
