-- One provider account's gate, shared by every worker process: its request
-- budget (GCRA: a token bucket kept as one "theoretical arrival time"), its
-- in-flight cap, the provider's own "slow down", and its circuit breaker.
-- Atomic, so every process sees one account. Time is Redis's own clock
-- (TIME), so processes on hosts with skewed clocks share one timeline.
--
-- KEYS[1] budget hash: tat (ms), blocked_until (ms), factor (0..1], factor_at (ms)
-- KEYS[2] in-flight zset: member = permit id, score = lease expiry (ms)
-- KEYS[3] breaker hash: state (closed | open | half_open; absent = closed),
--         failures (consecutive), open_until (ms), probe (permit id), probe_until (ms)
--
-- ARGV[1] op:
-- admit:   ARGV[2] rate per second (0 = no rate limit), ARGV[3] burst,
--          ARGV[4] in-flight cap (0 = none), ARGV[5] lease ms, ARGV[6] permit id
--          -> {1, 0, "" | "probe"} admitted, or {0, wait_ms, reason}
--          reason: backoff | in_flight | breaker_open | breaker_half_open | rate
-- release: ARGV[2] permit id, ARGV[3] "ok" | "fail" (timeout, connection,
--          5xx), ARGV[4] failures that open the breaker, ARGV[5] open ms
--          -> {1, 0, "" | "opened" | "closed" | "reopened"}
-- slow:    ARGV[2] pause ms -> {1, 0, ""}
--
-- After a "slow", nothing is admitted for the pause; then the rate is halved
-- (not below a tenth) and ramps back by RECOVER_PER_S of it per second.

local RECOVER_PER_S = 0.1
local MIN_FACTOR = 0.1

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]

local function num(key, field, default)
  local v = redis.call('HGET', key, field)
  if v then return tonumber(v) end
  return default
end

local function factor_now()
  local f = num(KEYS[1], 'factor', 1)
  local at = num(KEYS[1], 'factor_at', now)
  if at >= now then return f end
  f = f + (now - at) / 1000 * RECOVER_PER_S
  if f > 1 then f = 1 end
  return f
end

if op == 'release' then
  local id = ARGV[2]
  local outcome = ARGV[3]
  local threshold = tonumber(ARGV[4])
  local open_ms = tonumber(ARGV[5])
  redis.call('ZREM', KEYS[2], id)
  local state = redis.call('HGET', KEYS[3], 'state') or 'closed'
  if state == 'half_open' then
    if redis.call('HGET', KEYS[3], 'probe') ~= id then return {1, 0, ''} end
    if outcome == 'ok' then
      redis.call('DEL', KEYS[3])
      return {1, 0, 'closed'}
    end
    redis.call('HSET', KEYS[3], 'state', 'open', 'open_until', now + open_ms)
    redis.call('HDEL', KEYS[3], 'probe', 'probe_until')
    return {1, 0, 'reopened'}
  end
  if state == 'open' then return {1, 0, ''} end
  if outcome == 'ok' then
    redis.call('HDEL', KEYS[3], 'failures')
    return {1, 0, ''}
  end
  local failures = redis.call('HINCRBY', KEYS[3], 'failures', 1)
  if failures >= threshold then
    redis.call('HSET', KEYS[3], 'state', 'open', 'open_until', now + open_ms, 'opened_at', now)
    redis.call('PERSIST', KEYS[3])
    return {1, 0, 'opened'}
  end
  -- A handful of failures long ago are not "repeated": forget them.
  redis.call('PEXPIRE', KEYS[3], 600000)
  return {1, 0, ''}
end

if op == 'slow' then
  local pause = tonumber(ARGV[2])
  local until_ms = now + pause
  local blocked = num(KEYS[1], 'blocked_until', 0)
  if until_ms > blocked then
    redis.call('HSET', KEYS[1], 'blocked_until', until_ms)
  end
  local f = factor_now() / 2
  if f < MIN_FACTOR then f = MIN_FACTOR end
  -- The ramp back starts when the pause ends.
  local start = until_ms
  if blocked > start then start = blocked end
  redis.call('HSET', KEYS[1], 'factor', tostring(f), 'factor_at', start)
  redis.call('PEXPIRE', KEYS[1], (start - now) + 120000)
  return {1, 0, ''}
end

-- admit: decide everything first, write only when the request goes.
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local id = ARGV[6]

local blocked = num(KEYS[1], 'blocked_until', 0)
if blocked > now then
  return {0, blocked - now, 'backoff'}
end

if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= cap then
    -- A request in flight ends within its timeout; ask again soon.
    return {0, 20, 'in_flight'}
  end
end

local probe = false
local state = redis.call('HGET', KEYS[3], 'state') or 'closed'
if state == 'open' then
  local open_until = num(KEYS[3], 'open_until', 0)
  if now < open_until then
    return {0, open_until - now, 'breaker_open'}
  end
  probe = true
elseif state == 'half_open' then
  local probe_until = num(KEYS[3], 'probe_until', 0)
  if now < probe_until then
    local wait = probe_until - now
    -- Usually answered in well under a second; look again within 5 s.
    if wait > 5000 then wait = 5000 end
    return {0, wait, 'breaker_half_open'}
  end
  -- The probe never reported back (its process died): take its place.
  probe = true
end

local new_tat = nil
if rate > 0 then
  local interval = 1000 / (rate * factor_now())
  local tat = num(KEYS[1], 'tat', 0)
  if tat < now then tat = now end
  new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if allow_at > now then
    return {0, math.ceil(allow_at - now), 'rate'}
  end
end

if new_tat then
  redis.call('HSET', KEYS[1], 'tat', tostring(new_tat))
  if factor_now() >= 1 then
    redis.call('HDEL', KEYS[1], 'factor', 'factor_at')
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(new_tat - now) + 120000)
end
if cap > 0 then
  redis.call('ZADD', KEYS[2], now + lease, id)
  redis.call('PEXPIRE', KEYS[2], lease + 60000)
end
if probe then
  redis.call('HSET', KEYS[3], 'state', 'half_open', 'probe', id, 'probe_until', now + lease)
  return {1, 0, 'probe'}
end
return {1, 0, ''}
