-- JSON encoding of participants, the state head, the full state and a STATE_DELTA.
-- @include prelude
-- @include clock

local function enc_p(p)
  local g = ''
  if p.group_id and p.group_id ~= '' then g = ',"group_id":"' .. p.group_id .. '"' end
  local remaining = p.total_time_ms
  if remaining < 0 then remaining = 0 end
  return fmt('{"participant_id":"%s","participant_index":%d,"total_time_ms":%d,"time_used_ms":%d,'
    .. '"time_remaining_ms":%d,"cycle_count":%d,"is_active":%s,"has_expired":%s%s}',
    p.participant_id, p.participant_index, p.total_time_ms, p.time_used_ms, remaining,
    p.cycle_count, tostring(p.is_active), tostring(p.has_expired), g)
end

local function get_p(key, pos)
  return cjson.decode(rcall('HGET', key, pos))
end

local function num_or_null(v)
  if v == nil or v == '' then return 'null' end
  return v
end

-- head_open encodes every session-level field of the state, without the
-- closing brace; extra ('' or ',"k":v') comes last.
local function head_open(m, now, extra)
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

local function head(m, now, extra)
  return head_open(m, now, extra) .. '}'
end

-- delta encodes a STATE_DELTA from base to m.version: head h and the
-- participants at `changed` positions.
local function delta(m, now, h, changed, base)
  local pos, frags = {}, {}
  for i, c in ipairs(changed) do
    pos[i] = int(c[1])
    frags[i] = c[2]
  end
  return '{"type":"STATE_DELTA","sessionId":"' .. m.id .. '","timestamp":' .. int(now)
    .. ',"version":' .. int(m.version) .. ',"life":' .. int(m.life) .. ',"base_version":' .. int(base)
    .. ',"participant_count":' .. int(m.n) .. ',"session":' .. h
    .. ',"positions":[' .. table.concat(pos, ',') .. '],"participants":[' .. table.concat(frags, ',') .. ']}'
end

-- full_state encodes the whole v1 state: the head and every participant, in
-- one buffer and one concat (every string Lua builds is copied, interned and
-- later swept, ~10 instructions a byte: callgrind).
local function full_state(k_parts, m, now, extra)
  local pos = POSITIONS
  if m.n > FULL_MAX then
    pos = {}
    for i = 1, m.n do pos[i] = int(i - 1) end
  end
  local frags = rcall('HMGET', k_parts, unpack(pos, 1, m.n))
  local buf = { head_open(m, now, extra), ',"participants":[' }
  for i = 1, m.n do
    buf[2 * i + 1] = frags[i]
    buf[2 * i + 2] = ','
  end
  buf[2 * m.n + 2] = ']}'
  return table.concat(buf)
end
