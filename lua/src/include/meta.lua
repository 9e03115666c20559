-- The session: reading it, the checks every mutating script makes first,
-- and writing it back with the TTL its status gives.
-- @include prelude
-- @include layout
-- @include fragments

-- A session's fields are two packed values (lua/README.md "The meta
-- hash"): cfg, what createSession fixes, in the meta hash, and st, what
-- transitions change, in the parts hash beside the participants. A field
-- of its own costs a transition ~2.6k Redis instructions to read and a
-- sprintf to write back (callgrind). layout.lua packs and reads them.

-- load_unpacked reads a session stored before the packing: one hash field
-- each, per_group banks as g:<group_id> fields. The next save packs it.
-- @cold
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

-- load_meta returns the session as a table, or nil: cfg from the meta
-- hash, st from the parts hash, where it is the field after the last
-- position (n), so that the participants of a session of at most FULL_MAX
-- come with it (held: one HMGET of positions 0..n). Revisions 2 and 3 kept
-- st in the meta hash, and a session stored before the packing has a
-- field each there; the next save stores either as revision 4 does.
local function load_meta(k_meta, k_parts)
  local c = rcall('HGET', k_meta, 'cfg')
  local m
  if c then
    local tag, id, mode, n, total, per_cycle, incr, max, auto, meta, created_at, warn, life = cfg_slots(c)
    local s
    if n <= FULL_MAX then
      held = rcall('HMGET', k_parts, unpack(POSITIONS, 1, n + 1))
      s, held[n + 1] = held[n + 1], nil
    else
      s = rcall('HGET', k_parts, fmt('%d', n))
    end
    local old_st = not s
    if old_st then s = rcall('HGET', k_meta, 'st') end
    if not s then return nil end
    local status, version, active, active_id, cycle_at, started_at, completed_at, updated_at, turn, used, warned,
      bank, groups = st_slots(s)
    -- one constructor: the table is made at its size, not grown field by field
    m = { cfg_raw = c, id = id, mode = mode, n = n, total = total, per_cycle = per_cycle, incr = incr,
      max = max, auto = auto, meta = meta, created_at = created_at, warn = warn or '', life = life,
      status = status, version = version, active = active, active_id = active_id, cycle_at = cycle_at,
      started_at = started_at, completed_at = completed_at, updated_at = updated_at, turn = turn, used = used,
      warned = warned, bank = bank, groups = groups, loaded_status = status, warns = {}, old_st = old_st,
      -- a cfg of an older layout is stored again in this one at the next save
      old_cfg = spack and not tag }
  else
    m = load_unpacked(k_meta)
    if not m then return nil end
    m.loaded_status, m.warns = m.status, {}
    if m.n <= FULL_MAX then held = rcall('HMGET', k_parts, unpack(POSITIONS, 1, m.n)) end
  end
  -- warnings: thresholds (ms left, descending) and how many of them the
  -- current turn has passed
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

-- @cold
local function bad_transition(m, to)
  return fail('INVALID_STATE_TRANSITION', { from = m.status, to = to, version = m.version })
end

-- restore_parts stores every participant of a session stored before
-- revision 4 in layout P (once: its cfg is stored again at the same save),
-- so that a message's participants are all of one layout.
-- @cold
local function restore_parts(k_parts, m)
  local all, flat = held or append_all(k_parts, m.n, {}), {}
  for i, f in ipairs(all) do
    if string.byte(f, 1) ~= 80 then -- not 'P'
      local p = enc_p(dec_p(f))
      flat[#flat + 1] = POSITIONS[i] or fmt('%d', i - 1)
      flat[#flat + 1] = p
      if held then held[i] = p end
    end
  end
  hset_flat(k_parts, flat)
end

-- save_meta writes st (keeping it in m.st_raw, for the message) with the
-- participants of changed ({{pos, fragment}, ...}, or nil) in one HSET of
-- the parts hash, and sets the TTL that matches the new status on every
-- key of the session. A transition that keeps the status (a switch) keeps
-- the TTL too: running sessions were made persistent on the way in, and
-- the switch is the hot path.
local function save_meta(k_meta, k_parts, k_index, m, changed)
  local st = pack_st(m)
  m.st_raw = st
  if spack and (m.unpacked or m.old_cfg) then restore_parts(k_parts, m) end
  write_frags(k_parts, changed or {}, m)
  if m.unpacked then
    m.cfg_raw = pack_cfg(m)
    rcall('DEL', k_meta)
    rcall('HSET', k_meta, 'cfg', m.cfg_raw)
    m.unpacked, m.loaded_status = nil, nil -- DEL dropped the TTL: set it again
  elseif m.old_cfg or m.old_st then
    if m.old_cfg then m.cfg_raw = pack_cfg(m) end
    rcall('HSET', k_meta, 'cfg', m.cfg_raw)
    rcall('HDEL', k_meta, 'st')
    m.old_cfg, m.old_st = nil, nil
  end
  if m.status == m.loaded_status then return end
  local ttl = TTL_FINISHED
  if m.status == 'running' or m.status == 'paused' then ttl = 0
  elseif m.status == 'pending' then ttl = TTL_PENDING end
  for _, k in ipairs({ k_meta, k_parts, k_index }) do
    if ttl == 0 then rcall('PERSIST', k) else rcall('PEXPIRE', k, ttl) end
  end
end
