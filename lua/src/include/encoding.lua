-- Participants read and as JSON, the state head as JSON (getSession), and
-- the packed messages of transitions (layout.lua packs each value).
-- @include prelude
-- @include clock
-- @include meta
-- @include fragments

local function get_p(key, pos)
  if held then return dec_p(held[pos + 1]) end
  return dec_p(rcall('HGET', key, POSITIONS[pos + 1] or fmt('%d', pos)))
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
  if m.mode == 'global' and m.bank then opt = opt .. ',"time_remaining_ms":' .. fmt('%d', math.max(m.bank, 0)) end
  if m.mode == 'per_group' then
    local ids, gs = {}, {}
    for g in pairs(m.groups) do ids[#ids + 1] = g end
    table.sort(ids)
    for i, g in ipairs(ids) do gs[i] = '"' .. g .. '":' .. fmt('%d', math.max(m.groups[g], 0)) end
    opt = opt .. ',"group_remaining_ms":{' .. table.concat(gs, ',') .. '}'
  end
  return '{"session_id":"' .. m.id .. '","sync_mode":"' .. m.mode .. '","status":"' .. m.status
    .. '","version":' .. fmt('%d', m.version) .. ',"life":' .. fmt('%d', m.life) .. ',"active_participant_id":' .. active
    .. ',"total_time_ms":' .. m.total .. ',"time_per_cycle_ms":' .. num_or_null(m.per_cycle)
    .. opt .. ',"auto_advance":' .. (m.auto == '1' and 'true' or 'false')
    .. ',"cycle_started_at":' .. iso_or_null(m.cycle_at)
    .. ',"session_started_at":' .. iso_or_null(m.started_at)
    .. ',"session_completed_at":' .. iso_or_null(m.completed_at)
    .. ',"created_at":"' .. iso(tonumber(m.created_at)) .. '","updated_at":"' .. iso(tonumber(m.updated_at))
    .. '","server_time_ms":' .. fmt('%d', now) .. extra
end

local function json_head(m, now, extra)
  return json_head_open(m, now, extra) .. '}'
end

-- all_parts reads every participant's fragment, in rotation order.
local function all_parts(k_parts, m)
  if held then return held end
  if m.n <= FULL_MAX then return rcall('HMGET', k_parts, unpack(POSITIONS, 1, m.n)) end
  return append_all(k_parts, m.n, {})
end

-- full packs the whole state (kind 'f').
local function full(k_parts, m, now, expired)
  return message('f', m, now, expired, m.version - 1, {}, all_parts(k_parts, m))
end

-- delta packs the participants at `changed` positions ({{pos, fragment}, ...})
-- as a change from version base (kind 'd').
local function delta(m, now, expired, changed, base)
  local pos, frags = {}, {}
  for i, c in ipairs(changed) do
    pos[i] = c[1]
    frags[i] = c[2]
  end
  return message('d', m, now, expired, base, pos, frags)
end
