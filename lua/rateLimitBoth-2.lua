-- Generated from lua/src/rateLimitBoth-2.lua by `go generate ./lua`: edit the source, not this file.
--[[ rateLimitBoth: charge one request against two GCRA budgets at once, all or
nothing: when either budget is spent, neither is charged. One round trip and
one script call where rateLimit-1 would need two (the switch route: per IP and
per session). Both keys must be in one slot, so on Redis Cluster the service
calls rateLimit-1 twice instead.

KEYS[1] first   sk:rl:<scope>:<id>   string: TAT of the first budget, epoch µs
KEYS[2] second  sk:rl:<scope>:<id>   string: TAT of the second budget, epoch µs

ARGV[1] burst1        integer >= 1
ARGV[2] interval1_us  integer µs >= 1
ARGV[3] burst2        integer >= 1
ARGV[4] interval2_us  integer µs >= 1

Returns: {allowed 0|1, remaining1, retry_after1_us, reset_after1_us,
  remaining2, retry_after2_us, reset_after2_us}, each as in rateLimit-1.
Errors:  none
Publishes: nothing
Time:    now = Redis TIME in whole µs. Each key expires when its budget is full again.
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

local k_first, k_second = KEYS[1], KEYS[2]
local burst1, interval1 = tonumber(ARGV[1]), tonumber(ARGV[2])
local burst2, interval2 = tonumber(ARGV[3]), tonumber(ARGV[4])

-- read
local tat1, tat2 = rcall('GET', k_first), rcall('GET', k_second)

-- time
local now = now_us()
local ok1, rem1, retry1, reset1, new1 = gcra(tat1, now, burst1, interval1, 1)
local ok2, rem2, retry2, reset2, new2 = gcra(tat2, now, burst2, interval2, 1)
if not (ok1 and ok2) then
  -- Nothing is charged, so remaining is what is left now.
  if ok1 then rem1 = rem1 + 1; reset1 = reset1 - interval1 end
  if ok2 then rem2 = rem2 + 1; reset2 = reset2 - interval2 end
  return { 0, rem1, retry1, reset1, rem2, retry2, reset2 }
end

-- write
store_tat(k_first, new1, now)
store_tat(k_second, new2, now)
return { 1, rem1, 0, reset1, rem2, 0, reset2 }
