-- Generated from lua/src/readSession-2.lua by `go generate ./lua`: edit the source, not this file.
--[[ readSession: read a session as stored, for a caller that renders the v1 state
itself (Go's engine does: the head's JSON is then not built in Redis). Read-only. A caller
that wants the state as JSON calls getSession.

KEYS[1] meta   sk:{<shard>}:session:<id>
KEYS[2] parts  sk:{<shard>}:session:<id>:parts

ARGV[1] session_id  UUID

Returns: {now_ms, cfg, st, p0, p1, ..., pN-1}: the Redis time (integer ms), the meta
  hash's packed cfg and st (lua/README.md "The meta hash"), and the participant at
  rotation position i; or {} when the session is stored field by field (written before
  the packing and not since): read it with getSession.
Errors:  SESSION_NOT_FOUND {session_id}
Publishes: nothing
Time:    now_ms = Redis TIME in ms at the read (the state's server_time_ms).
]]
-- What every script starts with: the redis.call alias, integer formatting, error
-- replies, and the size and lifetime constants.

-- Shared helpers, pasted into every script by the build (`make lua`).
local rcall = redis.call
local floor = math.floor

-- FULL_MAX: sessions with at most this many participants publish and return
-- the full state; larger ones publish a delta of the participants that changed,
-- so a switch costs the same at 1000 participants as at 4.
local FULL_MAX = 32
-- the hash fields of positions 0..FULL_MAX-1, as strings: a number passed
-- to redis.call is formatted on every call
local POSITIONS = { '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15',
  '16', '17', '18', '19', '20', '21', '22', '23', '24', '25', '26', '27', '28', '29', '30', '31' }

-- TTLs (ms). Running and paused sessions never expire.
local TTL_PENDING = 86400000
local TTL_FINISHED = 3600000

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
-- The session-level hash: reading it, the checks every mutating script makes
-- first, and writing it back with the TTL its status gives.

-- The meta hash holds two packed arrays (lua/README.md "The meta hash"):
-- cfg, what createSession fixes, and st, what transitions change. A field
-- of its own costs a transition ~2.6k Redis instructions to read and a
-- sprintf to write back (callgrind); two packed values cost the read of
-- two. The slots, in order, are load_meta's, pack_cfg's and save_meta's
-- (fullstate/render.go reads them too).
--
-- cmsgpack writes numbers without formatting them; the embedded dev Redis
-- (Lua in Go, redisconn.Embedded) has no cmsgpack, so there the same arrays
-- go through cjson. Each backend reads what it wrote.
local msgpack = rawget(_G, 'cmsgpack')
local pack = msgpack and msgpack.pack or cjson.encode
local unpack_value = msgpack and msgpack.unpack or cjson.decode

-- pack_cfg is the cfg value of m.
local function pack_cfg(m)
  return pack({ m.id, m.mode, m.n, m.total, m.per_cycle, m.incr, m.max, m.auto, m.meta, m.created_at,
    m.warn, m.life })
end

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

-- save_meta writes the fields a transition may change (keeping the packed st
-- in m.st_raw, for the message) and sets the TTL that
-- matches the new status on every key of the session. A transition that
-- keeps the status (a switch) keeps the TTL too: running sessions were made
-- persistent on the way in, and the switch is the hot path.
local function save_meta(k_meta, k_parts, k_index, m)
  local st = pack({ m.status, m.version, m.active, m.active_id, m.cycle_at, m.started_at, m.completed_at,
    m.updated_at, m.turn, m.used, m.warned or 0, m.bank or '', m.groups })
  m.st_raw = st
  if m.unpacked then
    m.cfg_raw = pack_cfg(m)
    rcall('DEL', k_meta)
    rcall('HSET', k_meta, 'cfg', m.cfg_raw, 'st', st)
    m.unpacked, m.loaded_status = nil, nil -- DEL dropped the TTL: set it again
  else
    rcall('HSET', k_meta, 'st', st)
  end
  if m.status == m.loaded_status then return end
  local ttl = TTL_FINISHED
  if m.status == 'running' or m.status == 'paused' then ttl = 0
  elseif m.status == 'pending' then ttl = TTL_PENDING end
  for _, k in ipairs({ k_meta, k_parts, k_index }) do
    if ttl == 0 then rcall('PERSIST', k) else rcall('PEXPIRE', k, ttl) end
  end
end
-- The participant fragments a transition changed, to write and publish.

-- Fragments to publish: changed = {{pos, fragment, written}, ...}; an
-- entry flagged written was stored already (sync_group).

-- held mirrors the parts hash of a session of at most FULL_MAX
-- participants for the rest of the call, once hold_parts read it: one
-- HMGET then serves every read of a participant and the whole-state
-- message, and every write goes through it too.
local held

local function hold_parts(k_parts, m)
  if m.n <= FULL_MAX then held = rcall('HMGET', k_parts, unpack(POSITIONS, 1, m.n)) end
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

local k_meta, k_parts = KEYS[1], KEYS[2]
local v = rcall('HMGET', k_meta, 'cfg', 'st')
if not v[2] then
  if rcall('EXISTS', k_meta) == 0 then return fail('SESSION_NOT_FOUND', { session_id = ARGV[1] }) end
  return {}
end
local n = unpack_value(v[1])[3]
return append_all(k_parts, n, { now_ms(), v[1], v[2] })
