-- Take tasks whose payload cannot be decoded out of their queue, wherever
-- they are now: still in the dead fetcher's in-flight set, or already put
-- back on the active list by a peer's reaper. Their payload and metadata go
-- too, so no fetcher ever receives them again.
--
-- KEYS[1] the fetcher's in-flight set, KEYS[2] active list, KEYS[3] data
-- hash, KEYS[4] meta key prefix
-- ARGV: the candidate task ids (payloads the caller could not decode)
-- Returns {task_id, payload, task_id, payload, ...} for the tasks removed.
local removed = {}
for _, task_id in ipairs(ARGV) do
    local was_inflight = redis.call("srem", KEYS[1], task_id)
    local was_queued = redis.call("lrem", KEYS[2], 0, task_id)
    if was_inflight + was_queued > 0 then
        local payload = redis.call("hget", KEYS[3], task_id)
        if payload then
            table.insert(removed, task_id)
            table.insert(removed, payload)
        end
        redis.call("hdel", KEYS[3], task_id)
        redis.call("del", KEYS[4] .. ":" .. task_id)
    end
end
return removed
