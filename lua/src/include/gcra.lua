-- GCRA (shared by the rateLimit scripts and the switch's budgets: its spend).
-- A budget is `burst` requests at
-- once, refilled at one per `interval` µs; its key holds the theoretical
-- arrival time (TAT) in epoch µs. gcra returns whether `cost` more fits, the
-- requests remaining, the µs until one is allowed (when refused), the µs
-- until the budget is full, and the new TAT to store.
-- @include clock

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

