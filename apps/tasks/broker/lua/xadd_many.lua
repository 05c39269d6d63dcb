-- XADD every event of a batch in one call. ARGV: max length, then 8 values per event in EVENT_FIELDS order.
local n = #ARGV
for i = 2, n, 8 do
    redis.call("xadd", KEYS[1], "MAXLEN", "~", ARGV[1], "*",
        "id", ARGV[i], "source", ARGV[i + 1], "event", ARGV[i + 2], "job_id", ARGV[i + 3],
        "queue", ARGV[i + 4], "actor", ARGV[i + 5], "meta", ARGV[i + 6], "timestamp", ARGV[i + 7])
end
return n
