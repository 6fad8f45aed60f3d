-- Move due delayed tasks to the active list, at most ARGV[2] per call, so a
-- burst of thousands of due retries never becomes one huge unpack().
--
-- On the bulk lane (ARGV[4] > 0) stores take turns (see queue/fair.rs): due
-- tasks are admitted as push.lua admits them (straight to the active list
-- while nobody waits their turn and it is shorter than the window, else to
-- their store's waiting list), then the active list is filled up to the
-- window with one task per store in turn. The ring rotates, so each call
-- starts with the store after the last one served, whichever process ran it.
--
-- KEYS[1] our delayed set, KEYS[2] active list, KEYS[3] signal list,
-- KEYS[4] ring of stores waiting their turn, KEYS[5] per-store list prefix,
-- KEYS[6] data hash (a promoted task's store is in its payload)
-- ARGV[1] now in ms, ARGV[2] chunk size, ARGV[3] "1" to publish a wake-up,
-- ARGV[4] fair window (0: no turns)
-- Returns {promoted (left the delayed set), fed (from waiting lists)}
local window = tonumber(ARGV[4])
local ids = redis.call("zrangebyscore", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[2]))
local n = #ids
local ready = 0
if n > 0 then
    redis.call("zrem", KEYS[1], unpack(ids))
    if window == 0 then
        redis.call("rpush", KEYS[2], unpack(ids))
        ready = n
    else
        for _, task_id in ipairs(ids) do
            if redis.call("llen", KEYS[4]) == 0 and redis.call("llen", KEYS[2]) < window then
                redis.call("rpush", KEYS[2], task_id)
                ready = ready + 1
            else
                -- A payload that does not decode still waits (under store
                -- ""), to be quarantined by the worker that fetches it.
                local store = ""
                local payload = redis.call("hget", KEYS[6], task_id)
                if payload then
                    local ok, envelope = pcall(cjson.decode, payload)
                    if ok and type(envelope) == "table" and type(envelope.store) == "string" then
                        store = envelope.store
                    end
                end
                if redis.call("rpush", KEYS[5] .. ":" .. store, task_id) == 1 then
                    redis.call("rpush", KEYS[4], store)
                end
            end
        end
    end
end
local fed = 0
if window > 0 then
    local room = window - redis.call("llen", KEYS[2])
    while room > 0 do
        local store = redis.call("lpop", KEYS[4])
        if not store then
            break
        end
        local list = KEYS[5] .. ":" .. store
        local task_id = redis.call("lpop", list)
        if task_id then
            redis.call("rpush", KEYS[2], task_id)
            fed = fed + 1
            room = room - 1
        end
        if redis.call("llen", list) > 0 then
            redis.call("rpush", KEYS[4], store)
        end
    end
end
if ready + fed > 0 then
    redis.call("del", KEYS[3])
    redis.call("lpush", KEYS[3], 1)
    if ARGV[3] == "1" then
        redis.call("publish", "tasks:" .. KEYS[2] .. ":available", ready + fed)
    end
end
return {n, fed}
