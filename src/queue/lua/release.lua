-- A stopping worker hands back every task still in its in-flight set and
-- deregisters, so the tasks run elsewhere at once instead of after its
-- heartbeat lapses (apalis-redis's own close removes the wrong member from
-- the workers set and leaves the in-flight set to the heartbeat reaper).
-- Only called once nothing in this worker can run or ack these tasks any more.
--
-- The tasks go to the head of the active list: they were fetched first and
-- are next in line. Their metadata is untouched: a task that was fetched but
-- never started has no start counted and runs as a first delivery; one cut
-- off mid-run has its start counted, so its redelivery records the
-- interrupted attempt (see worker/shutdown.rs).
--
-- KEYS[1] the worker's in-flight set, KEYS[2] active list, KEYS[3] signal
-- list, KEYS[4] workers sorted set, KEYS[5] the worker's metadata hash
-- ARGV[1] worker name
-- Returns the number of tasks handed back.
local ids = redis.call("smembers", KEYS[1])
-- Chunks: unpack() of thousands of ids would overflow Lua's stack.
for i = 1, #ids, 500 do
    redis.call("lpush", KEYS[2], unpack(ids, i, math.min(i + 499, #ids)))
end
redis.call("del", KEYS[1])
redis.call("zrem", KEYS[4], ARGV[1])
redis.call("del", KEYS[5])
if #ids > 0 then
    redis.call("del", KEYS[3])
    redis.call("lpush", KEYS[3], 1)
    redis.call("publish", "tasks:" .. KEYS[2] .. ":available", #ids)
end
return #ids
