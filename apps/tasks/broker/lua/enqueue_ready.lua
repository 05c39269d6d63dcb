-- dramatiq's "enqueue" (message body, queue, heartbeat) plus our event, in one call. The message goes
-- straight to an idle consumer when one is waiting (registered by wait_idle.lua, not past its deadline):
-- into that broker's acks set, as dramatiq's fetch would put it, and onto its inbox, which the
-- consumer is blocked on, so it starts without a fetch round-trip. Otherwise it is queued and a
-- token on the wake-up list wakes an idle consumer to fetch it.
-- A message cancelled while a worker held it delayed (cancel.lua) is dropped here, when it is due.
-- On a paused queue (its pause key exists) the message is only queued: no hand-over, no wake-up.
-- KEYS: events stream, queue, queue msgs, heartbeats, wake list, idle consumers, cancelled, pause key.
-- ARGV: redis id, data, now, broker id, wake tokens, acks key around the waiter's broker id (prefix,
--       suffix), inbox key likewise (prefix, suffix), then (max length, 8 event values) or 0 for no event.
if redis.call("srem", KEYS[7], ARGV[1]) == 1 then
    return 3
end
if redis.call("hsetnx", KEYS[3], ARGV[1], ARGV[2]) == 0 then
    return 0  -- a retry of a call that went through (redis-py retries on a timeout): nothing twice
end
if #ARGV > 10 then
    redis.call("xadd", KEYS[1], "MAXLEN", "~", ARGV[10], "*",
        "id", ARGV[11], "source", ARGV[12], "event", ARGV[13], "job_id", ARGV[14],
        "queue", ARGV[15], "actor", ARGV[16], "meta", ARGV[17], "timestamp", ARGV[18])
end
redis.call("zadd", KEYS[4], ARGV[3], ARGV[4])
if redis.call("exists", KEYS[8]) == 1 then
    redis.call("rpush", KEYS[2], ARGV[1])
    return 1
end
local clock = redis.call("time")
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
while true do
    local waiter = redis.call("zpopmin", KEYS[6])
    if #waiter == 0 then break end
    if tonumber(waiter[2]) > now_ms then
        redis.call("sadd", ARGV[6] .. waiter[1] .. ARGV[7], ARGV[1])
        redis.call("rpush", ARGV[8] .. waiter[1] .. ARGV[9], ARGV[2])
        return 2
    end
end
redis.call("rpush", KEYS[2], ARGV[1])
redis.call("lpush", KEYS[5], 1)
redis.call("ltrim", KEYS[5], 0, tonumber(ARGV[5]) - 1)
return 1
