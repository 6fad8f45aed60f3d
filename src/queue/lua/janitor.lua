-- Delete finished tasks that are older than the grace period, one SSCAN page
-- of the done set per call (so Redis is never blocked for long).
--
-- apalis-redis 1.0 never deletes a task: its ack (handle_results.lua) SADDs
-- the id to {queue}:done and HSETs result, status, attempts and done_at (Unix
-- seconds) into {queue}:meta:<id>; the payload stays in {queue}:data. Our
-- handler commits the run's ledger row before it lets apalis ack, so a task
-- in the done set is already on record in Postgres.
--
-- Safe to run from several workers at once: deleting what another janitor
-- already deleted is a no-op.
--
-- KEYS[1] done set, KEYS[2] data hash, KEYS[3] meta key prefix
-- ARGV[1] SSCAN cursor, ARGV[2] COUNT hint,
-- ARGV[3] cutoff: a task whose done_at is at or before it is old enough
-- Returns {next_cursor, deleted, kept, oldest done_at among kept (0: none)}
local cutoff = tonumber(ARGV[3])
local page = redis.call("sscan", KEYS[1], ARGV[1], "COUNT", ARGV[2])
local deleted, kept, oldest_kept = 0, 0, 0
for _, task_id in ipairs(page[2]) do
    local meta_key = KEYS[3] .. ":" .. task_id
    local meta = redis.call("hmget", meta_key, "status", "done_at")
    local status, done_at = meta[1], tonumber(meta[2])
    if not status then
        -- No metadata at all: nothing is left to keep but the id and payload.
        redis.call("hdel", KEYS[2], task_id)
        redis.call("srem", KEYS[1], task_id)
        deleted = deleted + 1
    elseif status == "Done" and done_at and done_at <= cutoff then
        redis.call("hdel", KEYS[2], task_id)
        redis.call("del", meta_key)
        redis.call("srem", KEYS[1], task_id)
        deleted = deleted + 1
    else
        -- Too recent, or back in the queue (not Done): leave it.
        kept = kept + 1
        if status == "Done" and done_at and (oldest_kept == 0 or done_at < oldest_kept) then
            oldest_kept = done_at
        end
    end
end
return {page[1], deleted, kept, oldest_kept}
