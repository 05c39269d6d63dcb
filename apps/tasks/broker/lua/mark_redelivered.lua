-- Before maintenance puts back the unacknowledged messages of dead broker processes (dramatiq's
-- dispatch.lua, same rule: heartbeat older than the timeout), note each one as redelivered.
-- KEYS: heartbeats, redelivered. ARGV: now (ms), heartbeat timeout (ms), acks key before and after
-- the broker id, how long the notes live (ms).
local dead = redis.call("zrangebyscore", KEYS[1], 0, tonumber(ARGV[1]) - tonumber(ARGV[2]))
local marked = 0
for _, broker_id in ipairs(dead) do
    for _, id in ipairs(redis.call("smembers", ARGV[3] .. broker_id .. ARGV[4])) do
        redis.call("hset", KEYS[2], id, ARGV[1])
        marked = marked + 1
    end
end
if marked > 0 then
    redis.call("pexpire", KEYS[2], ARGV[5])
end
return marked
