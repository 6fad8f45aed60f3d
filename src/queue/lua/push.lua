-- Push tasks in the layout apalis-redis 1.0 reads (data hash + meta hash +
-- active list), without its `{queue}:scheduled` set: apalis-redis promotes
-- that whole set with one unpack() and dies past ~8,000 due ids, so delayed
-- tasks go to our own `{queue}:delayed` set (scores in ms), which
-- promote.lua drains in chunks.
--
-- KEYS[1] data hash, KEYS[2] active list, KEYS[3] signal list,
-- KEYS[4] meta key prefix, KEYS[5] our delayed set
-- ARGV[1] "1" to publish a wake-up; then groups of 4:
--   task_id, payload, max_attempts, run_at_ms (0 = now)
-- Returns {pushed_now, delayed, duplicates}
local now_count, delayed_count, duplicates = 0, 0, 0
for i = 2, #ARGV, 4 do
    local task_id = ARGV[i]
    if redis.call("hsetnx", KEYS[1], task_id, ARGV[i + 1]) == 1 then
        redis.call("hset", KEYS[4] .. ":" .. task_id,
            "attempts", 0, "max_attempts", ARGV[i + 2], "status", "Pending", "idempotency_key", "")
        local run_at = tonumber(ARGV[i + 3])
        if run_at > 0 then
            redis.call("zadd", KEYS[5], run_at, task_id)
            delayed_count = delayed_count + 1
        else
            redis.call("rpush", KEYS[2], task_id)
            now_count = now_count + 1
        end
    else
        -- Same task id already pushed (a redelivered job re-pushing its
        -- follow-up): pushing it again would run it twice.
        duplicates = duplicates + 1
    end
end
if now_count > 0 then
    redis.call("del", KEYS[3])
    redis.call("lpush", KEYS[3], 1)
    if ARGV[1] == "1" then
        redis.call("publish", "tasks:" .. KEYS[2] .. ":available", now_count)
    end
end
return {now_count, delayed_count, duplicates}
