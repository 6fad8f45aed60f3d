-- What waits its store's turn on one bulk queue (see queue/fair.rs).
-- KEYS[1] ring of stores waiting their turn, KEYS[2] per-store list prefix
-- ARGV[1] at most this many stores' first task ids are returned
-- Returns {tasks waiting, stores waiting, {first task id of each store...}}
local stores = redis.call("lrange", KEYS[1], 0, -1)
local total, heads = 0, {}
for i, store in ipairs(stores) do
    local list = KEYS[2] .. ":" .. store
    total = total + redis.call("llen", list)
    if i <= tonumber(ARGV[1]) then
        local head = redis.call("lindex", list, 0)
        if head then
            table.insert(heads, head)
        end
    end
end
return {total, #stores, heads}
