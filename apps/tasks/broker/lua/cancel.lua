-- Take a waiting message out of Redis so that it never runs.
-- Ready (on the queue or its low-priority list): removed at once; "removed".
-- Delayed, still on the delay queue: removed at once; "removed".
-- Delayed and held by a worker until due: noted in the cancelled set, which enqueue_ready.lua and
-- enqueue_by_priority.lua read when the worker moves it to the queue; "noted".
-- Fetched from the queue by a worker (it may be running): nothing changes; "held".
-- Not in Redis at all: "absent".
-- KEYS: queue, queue msgs, low-priority list, priorities, delay queue, delay queue msgs, cancelled.
-- ARGV: redis id.
local id = ARGV[1]
if redis.call("hexists", KEYS[2], id) == 1 then
    if redis.call("lrem", KEYS[1], 1, id) + redis.call("lrem", KEYS[3], 1, id) > 0 then
        redis.call("hdel", KEYS[2], id)
        redis.call("hdel", KEYS[4], id)
        return "removed"
    end
    return "held"
end
if redis.call("hexists", KEYS[6], id) == 1 then
    if redis.call("lrem", KEYS[5], 1, id) > 0 then
        redis.call("hdel", KEYS[6], id)
        return "removed"
    end
    redis.call("sadd", KEYS[7], id)
    return "noted"
end
return "absent"
