-- Move due delayed tasks to the active list, at most ARGV[2] per call, so a
-- burst of thousands of due retries never becomes one huge unpack().
-- KEYS[1] our delayed set, KEYS[2] active list, KEYS[3] signal list
-- ARGV[1] now in ms, ARGV[2] chunk size, ARGV[3] "1" to publish a wake-up
-- Returns the number promoted.
local ids = redis.call("zrangebyscore", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[2]))
local n = #ids
if n > 0 then
    redis.call("rpush", KEYS[2], unpack(ids))
    redis.call("zrem", KEYS[1], unpack(ids))
    redis.call("del", KEYS[3])
    redis.call("lpush", KEYS[3], 1)
    if ARGV[3] == "1" then
        redis.call("publish", "tasks:" .. KEYS[2] .. ":available", n)
    end
end
return n
