-- dramatiq's "fetch", returning each Redis message id with its body (false when the body is missing),
-- so that an entry that cannot be decoded can still be moved to the dead letters by its id, and
-- whether maintenance put it back from a dead broker process (1 or 0).
-- Messages of negative priority wait on their own list (highest first) and come once the queue is empty.
-- A paused queue (its pause key exists) gives nothing.
-- KEYS: queue, queue msgs, acks, heartbeats, redelivered, low-priority list, pause key.
-- ARGV: how many, now (ms), broker id.
redis.call("zadd", KEYS[4], ARGV[2], ARGV[3])
if redis.call("exists", KEYS[7]) == 1 then
    return {}
end
local fetched = {}
for _ = 1, tonumber(ARGV[1]) do
    local id = redis.call("lpop", KEYS[1]) or redis.call("lpop", KEYS[6])
    if not id then break end
    redis.call("sadd", KEYS[3], id)
    fetched[#fetched + 1] = id
    fetched[#fetched + 1] = redis.call("hget", KEYS[2], id)
    fetched[#fetched + 1] = redis.call("hexists", KEYS[5], id)
end
return fetched
