-- Release a unique key if the given job still holds it. KEYS: the unique key. ARGV: job id.
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
end
return 0
