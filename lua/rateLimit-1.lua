-- Generated from lua/src/rateLimit-1.lua by `go generate ./lua`: edit the source, not this file.
--[[ rateLimit: charge one request against a GCRA budget (as go-redis/redis_rate).
A budget is `burst` requests at once, refilled at one per `interval_us`:
100 per minute is burst 100, interval 600000. Shared by every instance.

KEYS[1] bucket  sk:rl:<scope>:<id>   string: theoretical arrival time (TAT), epoch µs

ARGV[1] burst        integer >= 1: requests allowed at once
ARGV[2] interval_us  integer µs >= 1: time to earn back one request
ARGV[3] cost         integer >= 0: requests charged (0 peeks)

Returns: {allowed 0|1, remaining, retry_after_us, reset_after_us}: remaining
  requests now; when refused, how long until one is allowed; how long until the
  budget is full again. All integers.
Errors:  none (arguments come from the service's configuration)
Publishes: nothing
Time:    now = Redis TIME in whole µs. The key expires when the budget is full again.
]]
-- What every script starts with: the redis.call and string.format aliases
-- (fmt('%d', n) formats an integer: a helper for it would be one more
-- closure per call), error replies, and the size and lifetime constants.

-- Shared helpers, pasted into every script by the build (`make lua`).
local rcall = redis.call
local fmt = string.format
local floor = math.floor
-- The clock: Redis TIME in ms, and ISO 8601 formatting of instants.

-- now_us is the only clock: Redis TIME in whole µs. seconds * 1e6 + µs
-- stays below 2^53, so a Lua number holds it exactly.
local function now_us()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- GCRA (shared by the rateLimit scripts and the switch's budgets: its spend).
-- A budget is `burst` requests at
-- once, refilled at one per `interval` µs; its key holds the theoretical
-- arrival time (TAT) in epoch µs. gcra returns whether `cost` more fits, the
-- requests remaining, the µs until one is allowed (when refused), the µs
-- until the budget is full, and the new TAT to store.

local function gcra(tat, now, burst, interval, cost)
  tat = tat and tonumber(tat)
  if not tat or tat < now then tat = now end
  local new_tat = tat + interval * cost
  local diff = now - (new_tat - burst * interval)
  if diff < 0 then
    return false, 0, -diff, tat - now, tat
  end
  return true, math.floor(diff / interval), 0, new_tat - now, new_tat
end

-- store_tat keeps a TAT until the budget is full again (then the key is gone).
local function store_tat(key, tat, now)
  redis.call('SET', key, string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
end

local k_bucket = KEYS[1]
local burst, interval, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

-- read
local tat = rcall('GET', k_bucket)

-- time
local now = now_us()
local ok, remaining, retry, reset, new_tat = gcra(tat, now, burst, interval, cost)
if not ok then
  return { 0, 0, retry, reset }
end

-- write
if cost > 0 then store_tat(k_bucket, new_tat, now) end
return { 1, remaining, 0, reset }
