-- Claim a unique key for a job, unless a job that is still waiting or running holds it.
-- KEYS: the unique key. ARGV: job id, ttl (s), the holder the caller found finished (or "").
-- Returns the holder's id when it keeps the key, or false when the key is now the caller's.
local holder = redis.call("get", KEYS[1])
if holder and holder ~= ARGV[3] then
    return holder
end
redis.call("set", KEYS[1], ARGV[1], "EX", tonumber(ARGV[2]))
return false
