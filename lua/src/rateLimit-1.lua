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
-- @include gcra

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
