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
-- @include gcra

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
