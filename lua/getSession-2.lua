-- Generated from lua/src/getSession-2.lua by `go generate ./lua`: edit the source, not this file.
--[[ getSession: read the whole state. Read-only.

KEYS[1] meta   sk:{<shard>}:session:<id>
KEYS[2] parts  sk:{<shard>}:session:<id>:parts

ARGV[1] session_id  UUID

Returns: {head, p0, p1, ..., pN-1}: head is the state without "participants",
  p<i> the participant at rotation position i. The state is
  head minus its closing brace .. ',"participants":[' .. join(p, ',') .. ']}'.
Errors:  SESSION_NOT_FOUND {session_id}
Publishes: nothing
Time:    server_time_ms = Redis TIME in ms at the read.
]]
-- What every script starts with: the redis.call alias, integer formatting, error
-- replies, and the size and lifetime constants.

-- Shared helpers, pasted into every script by the build (`make lua`).
local rcall = redis.call
local fmt = string.format
local floor = math.floor

local function int(x)
  return fmt('%d', x)
end

local function fail(code, details)
  return redis.error_reply(code .. ' ' .. cjson.encode(details))
end
-- The clock: Redis TIME in ms, and ISO 8601 formatting of instants.

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
-- The session-level hash: reading it, the checks every mutating script makes
-- first, and writing it back with the TTL its status gives.

-- The meta hash holds two packed arrays (lua/README.md "The meta hash"):
-- cfg, what createSession fixes, and st, what transitions change. A field
-- of its own costs a transition ~2.6k Redis instructions to read and a
-- sprintf to write back (callgrind); two packed values cost the read of
-- two. The slots are listed in order where the arrays are read and packed
-- below (fullstate/render.go reads them too).
--
-- cmsgpack writes numbers without formatting them; the embedded dev Redis
-- (Lua in Go, redisconn.Embedded) has no cmsgpack, so there the same arrays
-- go through cjson. Each backend reads what it wrote.
local msgpack = rawget(_G, 'cmsgpack')
local unpack_value = msgpack and msgpack.unpack or cjson.decode

-- load_unpacked reads a session stored before the packing: one hash field
-- each, per_group banks as g:<group_id> fields. The next save packs it.
local function load_unpacked(key)
  local flat = rcall('HGETALL', key)
  if #flat == 0 then return nil end
  local m = { unpacked = true, groups = {} }
  for i = 1, #flat, 2 do
    local f = flat[i]
    if string.sub(f, 1, 2) == 'g:' then m.groups[string.sub(f, 3)] = tonumber(flat[i + 1]) else m[f] = flat[i + 1] end
  end
  for _, f in ipairs({ 'total', 'per_cycle', 'incr', 'max', 'auto', 'meta', 'warn', 'active', 'active_id', 'cycle_at',
    'started_at', 'completed_at' }) do
    m[f] = m[f] or ''
  end
  m.version, m.n, m.turn, m.used = tonumber(m.version), tonumber(m.n), tonumber(m.turn) or 0, tonumber(m.used) or 0
  -- a session created before lives were stamped is life 0
  m.life, m.bank, m.warned = tonumber(m.life) or 0, tonumber(m.bank), tonumber(m.warned) or 0
  -- a global session created before banks were stored starts from its total
  if m.mode == 'global' and not m.bank then m.bank = tonumber(m.total) - m.used end
  return m
end

-- load_meta returns the session's meta hash as a table, or nil.
local function load_meta(key)
  local v = rcall('HMGET', key, 'cfg', 'st')
  local m
  if v[2] then
    local c, s = unpack_value(v[1]), unpack_value(v[2])
    -- one constructor: the table is made at its size, not grown field by field
    m = { cfg_raw = v[1], id = c[1], mode = c[2], n = c[3], total = c[4], per_cycle = c[5], incr = c[6], max = c[7],
      auto = c[8], meta = c[9], created_at = c[10], warn = c[11], life = c[12],
      status = s[1], version = s[2], active = s[3], active_id = s[4], cycle_at = s[5], started_at = s[6],
      completed_at = s[7], updated_at = s[8], turn = s[9], used = s[10], warned = s[11], bank = s[12],
      groups = s[13], loaded_status = s[1], warns = {} }
    if m.bank == '' then m.bank = nil end
  else
    m = load_unpacked(key)
    if not m then return nil end
  end
  m.loaded_status = m.status
  -- warnings: thresholds (ms left, descending) and how many of them the
  -- current turn has passed
  m.warns = m.warns or {}
  if m.warn and m.warn ~= '' then
    for w in string.gmatch(m.warn, '%d+') do m.warns[#m.warns + 1] = tonumber(w) end
  end
  return m
end

-- append_all appends the fragments of positions 0..n-1 to out, one HMGET
-- per 200 (Lua's unpack has a C-stack limit of a few thousand values).
local function append_all(k_parts, n, out)
  for i = 0, n - 1, 200 do
    local idx = {}
    for j = i, math.min(i + 199, n - 1) do idx[#idx + 1] = j end
    local frags = rcall('HMGET', k_parts, unpack(idx))
    for _, f in ipairs(frags) do out[#out + 1] = f end
  end
  return out
end

local function dec_p(frag)
  if string.byte(frag, 1) == 123 then return cjson.decode(frag) end -- '{': stored as JSON
  local a = unpack_value(frag)
  local g = a[8]
  if g == '' then g = nil end
  return { participant_id = a[1], participant_index = a[2], total_time_ms = a[3], time_used_ms = a[4],
    cycle_count = a[5], is_active = a[6], has_expired = a[7], group_id = g }
end

-- json_p is a stored fragment as v1 JSON (getSession).
local function json_p(frag)
  if string.byte(frag, 1) == 123 then return frag end
  local p = dec_p(frag)
  local g = ''
  if p.group_id then g = ',"group_id":"' .. p.group_id .. '"' end
  local remaining = p.total_time_ms
  if remaining < 0 then remaining = 0 end
  return fmt('{"participant_id":"%s","participant_index":%d,"total_time_ms":%d,"time_used_ms":%d,'
    .. '"time_remaining_ms":%d,"cycle_count":%d,"is_active":%s,"has_expired":%s%s}',
    p.participant_id, p.participant_index, p.total_time_ms, p.time_used_ms, remaining,
    p.cycle_count, tostring(p.is_active), tostring(p.has_expired), g)
end

local function num_or_null(v)
  if v == nil or v == '' then return 'null' end
  return v
end

-- json_head_open encodes every session-level field of the state, without the
-- closing brace; extra ('' or ',"k":v') comes last.
local function json_head_open(m, now, extra)
  local active = 'null'
  if m.active_id ~= '' then active = '"' .. m.active_id .. '"' end
  local opt = ''
  if m.incr ~= '' then opt = opt .. ',"increment_ms":' .. m.incr end
  if m.max ~= '' then opt = opt .. ',"max_time_ms":' .. m.max end
  if m.meta ~= '' then opt = opt .. ',"metadata":' .. m.meta end
  if m.warn and m.warn ~= '' then opt = opt .. ',"warnings_ms":[' .. m.warn .. ']' end
  if m.mode == 'global' and m.bank then opt = opt .. ',"time_remaining_ms":' .. int(math.max(m.bank, 0)) end
  if m.mode == 'per_group' then
    local ids, gs = {}, {}
    for g in pairs(m.groups) do ids[#ids + 1] = g end
    table.sort(ids)
    for i, g in ipairs(ids) do gs[i] = '"' .. g .. '":' .. int(math.max(m.groups[g], 0)) end
    opt = opt .. ',"group_remaining_ms":{' .. table.concat(gs, ',') .. '}'
  end
  return '{"session_id":"' .. m.id .. '","sync_mode":"' .. m.mode .. '","status":"' .. m.status
    .. '","version":' .. int(m.version) .. ',"life":' .. int(m.life) .. ',"active_participant_id":' .. active
    .. ',"total_time_ms":' .. m.total .. ',"time_per_cycle_ms":' .. num_or_null(m.per_cycle)
    .. opt .. ',"auto_advance":' .. (m.auto == '1' and 'true' or 'false')
    .. ',"cycle_started_at":' .. iso_or_null(m.cycle_at)
    .. ',"session_started_at":' .. iso_or_null(m.started_at)
    .. ',"session_completed_at":' .. iso_or_null(m.completed_at)
    .. ',"created_at":"' .. iso(tonumber(m.created_at)) .. '","updated_at":"' .. iso(tonumber(m.updated_at))
    .. '","server_time_ms":' .. int(now) .. extra
end

local function json_head(m, now, extra)
  return json_head_open(m, now, extra) .. '}'
end

local k_meta, k_parts = KEYS[1], KEYS[2]
local sid = ARGV[1]

local m = load_meta(k_meta)
if not m then return fail('SESSION_NOT_FOUND', { session_id = sid }) end

local now = now_ms()

-- fragments are stored packed: each is rendered as v1 JSON here
local out = append_all(k_parts, m.n, { json_head(m, now, '') })
for i = 2, #out do out[i] = json_p(out[i]) end
return out
