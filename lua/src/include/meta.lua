-- The session-level hash: reading it, the checks every mutating script makes
-- first, and writing it back with the TTL its status gives.
-- @include prelude

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

-- check_common validates what every mutating script checks first.
local function check_common(m, sid, expected, stream, cap)
  if not m then return fail('SESSION_NOT_FOUND', { session_id = sid }) end
  if expected ~= '' and tonumber(expected) ~= m.version then
    return fail('CONFLICT', { expected_version = tonumber(expected), actual_version = m.version })
  end
  if cap > 0 and rcall('XLEN', stream) >= cap then
    return fail('STREAM_FULL', { stream_max = cap })
  end
  return nil
end

local function bad_transition(m, to)
  return fail('INVALID_STATE_TRANSITION', { from = m.status, to = to, version = m.version })
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
