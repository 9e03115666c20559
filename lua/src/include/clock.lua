-- The clock: Redis TIME in ms, and ISO 8601 formatting of instants.
-- @include prelude

-- now_us is the only clock: Redis TIME in whole µs. seconds * 1e6 + µs
-- stays below 2^53, so a Lua number holds it exactly.
local function now_us()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- now_ms is the clock truncated to whole milliseconds, the unit of states.
local function now_ms()
  return floor(now_us() / 1000)
end

-- iso formats epoch ms as ISO 8601 UTC with milliseconds, using integer
-- civil-from-days arithmetic (Lua in Redis has no os.date). A state often
-- holds one instant twice (a switch's cycle_started_at and updated_at), so
-- each run formats a value once.
local iso_memo = {}
local function iso(ms)
  local hit = iso_memo[ms]
  if hit then return hit end
  -- x - x % d is x rounded down to a multiple of d: VM arithmetic, where
  -- math.floor is a function call
  local rem = ms % 86400000
  local z = (ms - rem) / 86400000 + 719468
  local doe = z % 146097
  local era = (z - doe) / 146097
  local yoe = doe - (doe - doe % 1460) / 1460 + (doe - doe % 36524) / 36524 - (doe - doe % 146096) / 146096
  yoe = (yoe - yoe % 365) / 365
  local doy = doe - (365 * yoe + (yoe - yoe % 4) / 4 - (yoe - yoe % 100) / 100)
  local mp = 5 * doy + 2
  mp = (mp - mp % 153) / 153
  local d = 153 * mp + 2
  d = doy - (d - d % 5) / 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  local ms_ = rem % 1000
  local s = (rem - ms_) / 1000
  local sec = s % 60
  local mi = (s - sec) / 60
  local h = (mi - mi % 60) / 60
  hit = fmt('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d, h, mi % 60, sec, ms_)
  iso_memo[ms] = hit
  return hit
end

local function iso_or_null(v)
  if v == nil or v == '' then return 'null' end
  return '"' .. iso(tonumber(v)) .. '"'
end
