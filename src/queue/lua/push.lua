-- Push tasks in the layout apalis-redis 1.0 reads (data hash + meta hash +
-- active list), without its `{queue}:scheduled` set: apalis-redis promotes
-- that whole set with one unpack() and dies past ~8,000 due ids, so delayed
-- tasks go to our own `{queue}:delayed` set (scores in ms), which
-- promote.lua drains in chunks.
--
-- On the bulk lane (ARGV[2] > 0) stores take turns (see queue/fair.rs): a
-- task due now goes straight to the active list only while nobody waits
-- their turn and the list is shorter than the window; otherwise it joins
-- its store's waiting list, and promote.lua feeds the active list one task
-- per store in turn.
--
-- KEYS[1] data hash, KEYS[2] active list, KEYS[3] signal list,
-- KEYS[4] meta key prefix, KEYS[5] our delayed set,
-- KEYS[6] ring of stores waiting their turn, KEYS[7] per-store list prefix
-- ARGV[1] "1" to publish a wake-up, ARGV[2] fair window (0: no turns);
-- then groups of 5: task_id, payload, max_attempts, run_at_ms (0 = now), store
-- Returns {ready (active list or waiting their turn), delayed, duplicates}
local window = tonumber(ARGV[2])
local now_count, waiting_count, delayed_count, duplicates = 0, 0, 0, 0
for i = 3, #ARGV, 5 do
    local task_id = ARGV[i]
    if redis.call("hsetnx", KEYS[1], task_id, ARGV[i + 1]) == 1 then
        redis.call("hset", KEYS[4] .. ":" .. task_id,
            "attempts", 0, "max_attempts", ARGV[i + 2], "status", "Pending", "idempotency_key", "")
        local run_at = tonumber(ARGV[i + 3])
        if run_at > 0 then
            redis.call("zadd", KEYS[5], run_at, task_id)
            delayed_count = delayed_count + 1
        elseif window == 0
            or (redis.call("llen", KEYS[6]) == 0 and redis.call("llen", KEYS[2]) < window) then
            redis.call("rpush", KEYS[2], task_id)
            now_count = now_count + 1
        else
            local store = ARGV[i + 4]
            -- The ring holds a store exactly while its list is not empty.
            if redis.call("rpush", KEYS[7] .. ":" .. store, task_id) == 1 then
                redis.call("rpush", KEYS[6], store)
            end
            waiting_count = waiting_count + 1
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
return {now_count + waiting_count, delayed_count, duplicates}
