-- The session-level hash: reading it, the checks every mutating script makes
-- first, and writing it back with the TTL its status gives.
-- @include prelude

-- load_meta returns the session's meta hash as a table, or nil.
local function load_meta(key)
  local flat = rcall('HGETALL', key)
  if #flat == 0 then return nil end
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  m.version = tonumber(m.version)
  -- a session created before lives were stamped is life 0
  m.life = tonumber(m.life) or 0
  m.n = tonumber(m.n)
  m.loaded_status = m.status
  m.turn = tonumber(m.turn) or 0
  m.used = tonumber(m.used) or 0
  m.bank = tonumber(m.bank)
  -- a global session created before banks were stored starts from its total
  if m.mode == 'global' and not m.bank then m.bank = tonumber(m.total) - m.used end
  -- warnings: thresholds (ms left, descending) and how many of them the
  -- current turn has passed
  m.warns = {}
  if m.warn and m.warn ~= '' then
    for w in string.gmatch(m.warn, '%d+') do m.warns[#m.warns + 1] = tonumber(w) end
  end
  m.warned = tonumber(m.warned) or 0
  -- per_group banks are the g:<group_id> fields (only per_group has them:
  -- the scan costs a string per field)
  m.groups = {}
  if m.mode == 'per_group' then
    for i = 1, #flat, 2 do
      if string.sub(flat[i], 1, 2) == 'g:' then m.groups[string.sub(flat[i], 3)] = tonumber(flat[i + 1]) end
    end
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

-- save_meta writes the fields a transition may change and sets the TTL that
-- matches the new status on every key of the session. A transition that
-- keeps the status (a switch) keeps the TTL too: running sessions were made
-- persistent on the way in, and the switch is the hot path.
local function save_meta(k_meta, k_parts, k_index, m)
  rcall('HSET', k_meta, 'status', m.status, 'version', int(m.version), 'active', m.active,
    'active_id', m.active_id, 'cycle_at', m.cycle_at, 'started_at', m.started_at,
    'completed_at', m.completed_at, 'updated_at', m.updated_at, 'turn', int(m.turn), 'used', int(m.used),
    'warned', int(m.warned or 0))
  if m.bank then rcall('HSET', k_meta, 'bank', int(m.bank)) end
  if m.gdirty then
    for g, v in pairs(m.groups) do rcall('HSET', k_meta, 'g:' .. g, int(v)) end
  end
  if m.status == m.loaded_status then return end
  local ttl = TTL_FINISHED
  if m.status == 'running' or m.status == 'paused' then ttl = 0
  elseif m.status == 'pending' then ttl = TTL_PENDING end
  for _, k in ipairs({ k_meta, k_parts, k_index }) do
    if ttl == 0 then rcall('PERSIST', k) else rcall('PEXPIRE', k, ttl) end
  end
end
