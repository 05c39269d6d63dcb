-- Move an entry this broker process fetched to the dead letters as it is (body, or "" when it had
-- none), whether or not it decodes. KEYS: acks, queue msgs, dead letters, dead letter msgs,
-- queue priorities. ARGV: redis id, now (ms), body.
redis.call("srem", KEYS[1], ARGV[1])
redis.call("hdel", KEYS[2], ARGV[1])
redis.call("hdel", KEYS[5], ARGV[1])
redis.call("zadd", KEYS[3], ARGV[2], ARGV[1])
redis.call("hset", KEYS[4], ARGV[1], ARGV[3])
return 1
