-- How each sync_mode charges time.
-- @include prelude

-- Modes (lua/README.md "Modes"). m.turn is the ms the running turn was
-- charged before its last pause, m.used the ms charged in the whole
-- session, m.bank the global bank, m.groups[gid] the per_group banks.

-- part_left is what participant p may still run this turn by its own
-- clock (nil: no limit).
local function part_left(m, p)
  local mode = m.mode
  if mode == 'per_participant' then
    local r = p.total_time_ms
    if m.per_cycle ~= '' then r = math.min(r, tonumber(m.per_cycle) - m.turn) end
    return r
  elseif mode == 'per_cycle' then
    return math.min(tonumber(m.per_cycle) - m.turn, p.total_time_ms)
  elseif mode == 'per_group' and p.group_id then
    return m.groups[p.group_id] or p.total_time_ms
  end
  return nil
end

-- sess_left is what the session may still run (global bank, max_time_ms).
local function sess_left(m)
  local r
  if m.mode == 'global' then r = m.bank end
  if m.max ~= '' then
    local x = tonumber(m.max) - m.used
    if r == nil or x < r then r = x end
  end
  return r
end

-- turn_left is the ms the running turn may still run from cycle_at.
local function turn_left(m, p)
  local a, b = part_left(m, p), sess_left(m)
  if a == nil then return b end
  if b == nil or a < b then return a end
  return b
end

-- run_ms is how long the turn has run since cycle_at, capped where its
-- time ran out: a clock stops at 0 even when nobody noticed in time.
local function run_ms(m, p, now)
  if m.cycle_at == '' then return 0 end
  local e = now - tonumber(m.cycle_at)
  local l = turn_left(m, p)
  if l and e > l then e = math.max(l, 0) end
  return e
end

-- charge books e ms of the running turn on p, its group or the session.
local function charge(m, p, e)
  m.turn, m.used = m.turn + e, m.used + e
  p.time_used_ms = p.time_used_ms + e
  if m.mode == 'global' then
    m.bank = m.bank - e
  elseif m.mode == 'per_group' and p.group_id then
    local g = (m.groups[p.group_id] or p.total_time_ms) - e
    m.groups[p.group_id] = g
    p.total_time_ms = g
  elseif m.mode ~= 'count_up' then
    p.total_time_ms = p.total_time_ms - e
  end
  -- a clock at 0 has expired, whoever noticed (a pause or complete that
  -- lands after the deadline, before the scheduler)
  local l = part_left(m, p)
  if l and l <= 0 then p.has_expired = true end
end

-- begin_turn starts p's clock at now, unless p has expired: its clock then
-- stays stopped (cycle_started_at null) until a switch or complete.
local function begin_turn(m, p, now)
  m.turn = 0
  if m.mode == 'per_group' and m.groups[p.group_id] then p.total_time_ms = m.groups[p.group_id] end
  if p.has_expired then m.cycle_at = '' else m.cycle_at = now end
  -- a turn that starts below a warning threshold is not warned of it
  m.warned = 0
  local l = turn_left(m, p)
  if l then
    while m.warned < #m.warns and m.warns[m.warned + 1] >= l do m.warned = m.warned + 1 end
  end
end
