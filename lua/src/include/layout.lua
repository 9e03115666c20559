-- The binary layouts the scripts store, publish and record, and the readers
-- of the older ones.
-- @include prelude

-- Every value a transition writes is one tag byte, then its slots packed
-- by Redis's struct library, big-endian (lua/README.md "Layouts"; Go's
-- fullstate/binary.go and Node's testdata/node/packed.mjs read them).
-- struct.unpack hands the slots back as values, where cmsgpack built a
-- table one slot at a time (~1k Redis instructions a slot: bench/RESULTS.md
-- "Revision 4"). Hc0 and Ic0 are a 16- or 32-bit length, then the bytes.
-- The letters go without sizes (c and B 1 byte, H 2, i and I 4, l 8: struct's
-- native sizes on the LP64 platforms Redis runs on), so struct parses no
-- digits on every call; lua/README.md "Layouts" writes them as sizes.
local CFG = '>cHc0Hc0IHc0Hc0Hc0Hc0Hc0Ic0lHc0l' -- tag C
local ST = '>cHc0llHc0llllllilIc0' -- tag S
local PART = '>cHc0illiBBHc0' -- tag P
local EVENT = '>cllHc0Hc0llllIc0' -- tag E
local MSG = '>ccllllIIHI' -- tag M: its head (see message)
-- NONE fills an integer slot that holds no number ("" in the older
-- layouts): the int64 minimum, which no time or count reaches.
local NONE = -2 ^ 63

-- The embedded dev Redis (Lua in Go, redisconn.Embedded) has neither
-- struct nor cmsgpack: there each layout's slots go as a JSON array, in
-- the same order. It never shares data with a real Redis.
local spack = rawget(_G, 'struct') and struct.pack
local sunpack = rawget(_G, 'struct') and struct.unpack
-- unpack_value reads an array of an older layout: revision 3's
-- MessagePack, or the embedded Redis's JSON.
local unpack_value = rawget(_G, 'cmsgpack') and cmsgpack.unpack or cjson.decode

-- pack_cfg is the cfg value of m (tag C): what createSession fixes.
local function pack_cfg(m)
  if not spack then
    return cjson.encode({ m.id, m.mode, m.n, m.total, m.per_cycle, m.incr, m.max, m.auto, m.meta, m.created_at,
      m.warn, m.life })
  end
  return spack(CFG, 'C', #m.id, m.id, #m.mode, m.mode, m.n, #m.total, m.total, #m.per_cycle, m.per_cycle,
    #m.incr, m.incr, #m.max, m.max, #m.auto, m.auto, #m.meta, m.meta, m.created_at, #m.warn, m.warn, m.life)
end

-- cfg_slots returns a stored cfg's tag (or nil for an older layout), then
-- its 12 slots.
local function cfg_slots(c)
  if string.byte(c, 1) == 67 then return sunpack(CFG, c) end -- 'C'
  return nil, unpack(unpack_value(c), 1, 12)
end

-- pack_st is the st value of m (tag S): what transitions change.
local function pack_st(m)
  if not spack then
    return cjson.encode({ m.status, m.version, m.active, m.active_id, m.cycle_at, m.started_at, m.completed_at,
      m.updated_at, m.turn, m.used, m.warned or 0, m.bank or '', m.groups })
  end
  local g = ''
  if m.mode == 'per_group' then
    local out = {}
    for id, bank in pairs(m.groups) do out[#out + 1] = spack('>Hc0l', #id, id, bank) end
    g = table.concat(out)
  end
  local active, cycle_at, started_at, completed_at = m.active, m.cycle_at, m.started_at, m.completed_at
  if active == '' then active = NONE end
  if cycle_at == '' then cycle_at = NONE end
  if started_at == '' then started_at = NONE end
  if completed_at == '' then completed_at = NONE end
  return spack(ST, 'S', #m.status, m.status, m.version, active, #m.active_id, m.active_id, cycle_at, started_at,
    completed_at, m.updated_at, m.turn, m.used, m.warned or 0, m.bank or NONE, #g, g)
end

-- st_slots returns a stored st's 13 slots, "" where there is no number
-- (the bank nil), the groups a table group_id -> bank.
local function st_slots(s)
  if string.byte(s, 1) ~= 83 then -- not 'S': an older layout
    local a = unpack_value(s)
    if a[12] == '' then a[12] = nil end
    return unpack(a, 1, 13)
  end
  local _, status, version, active, active_id, cycle_at, started_at, completed_at, updated_at, turn, used, warned,
    bank, g = sunpack(ST, s)
  if active == NONE then active = '' end
  if cycle_at == NONE then cycle_at = '' end
  if started_at == NONE then started_at = '' end
  if completed_at == NONE then completed_at = '' end
  if bank == NONE then bank = nil end
  local groups, at = {}, 1
  while at <= #g do
    local id, b
    id, b, at = sunpack('>Hc0l', g, at)
    groups[id] = b
  end
  return status, version, active, active_id, cycle_at, started_at, completed_at, updated_at, turn, used, warned,
    bank, groups
end

-- enc_p is participant p stored (tag P).
local function enc_p(p)
  local g = p.group_id or ''
  if not spack then
    return cjson.encode({ p.participant_id, p.participant_index, p.total_time_ms, p.time_used_ms, p.cycle_count,
      p.is_active, p.has_expired, g })
  end
  return spack(PART, 'P', #p.participant_id, p.participant_id, p.participant_index, p.total_time_ms,
    p.time_used_ms, p.cycle_count, p.is_active and 1 or 0, p.has_expired and 1 or 0, #g, g)
end

-- dec_p reads a stored participant of any layout: tag P, revision 3's
-- array, or the revision-2 JSON object (first byte '{').
local function dec_p(frag)
  local b = string.byte(frag, 1)
  if b == 80 then -- 'P'
    local _, id, index, total, used, cycles, active, expired, g = sunpack(PART, frag)
    if g == '' then g = nil end
    return { participant_id = id, participant_index = index, total_time_ms = total, time_used_ms = used,
      cycle_count = cycles, is_active = active == 1, has_expired = expired == 1, group_id = g }
  end
  if b == 123 then return cjson.decode(frag) end
  local a = unpack_value(frag)
  local g = a[8]
  if g == '' then g = nil end
  return { participant_id = a[1], participant_index = a[2], total_time_ms = a[3], time_used_ms = a[4],
    cycle_count = a[5], is_active = a[6], has_expired = a[7], group_id = g }
end

-- pack_event is an audit event's figures (tag E); ev's numbers may be nil.
local function pack_event(m, ev, now)
  local pid, gid, actor = ev.pid or '', ev.gid or '', ev.actor or ''
  if not spack then
    return cjson.encode({ m.version, m.life, pid, gid, ev.remaining or '', ev.elapsed or '', ev.cycle or '', now,
      actor })
  end
  return spack(EVENT, 'E', m.version, m.life, #pid, pid, #gid, gid, ev.remaining or NONE, ev.elapsed or NONE,
    ev.cycle or NONE, now, #actor, actor)
end

-- message packs what a transition publishes, returns and records (tag M):
-- its head, then (kind 'd') the positions of the participants it carries,
-- then expired, cfg and st, then the participants back to back: kind 'f'
-- every one in rotation order, kind 'd' those at `positions`. A
-- participant in layout P says where it ends, so the parts need no
-- lengths (an older session's first save stores every participant in
-- layout P, before its first message). Go renders the v1 JSON.
local function message(kind, m, now, expired, base, positions, parts)
  if not spack then
    return cjson.encode({ kind, m.life, m.version, base, now, m.cfg_raw, m.st_raw, expired, positions, parts })
  end
  local cfg, st = m.cfg_raw, m.st_raw
  local head = spack(MSG, 'M', kind, m.life, m.version, base, now, #cfg, #st, #expired, #parts)
  if kind == 'd' then
    for i = 1, #positions, 200 do
      local j = math.min(i + 199, #positions)
      head = head .. spack('>' .. string.rep('I', j - i + 1), unpack(positions, i, j))
    end
  end
  if #parts > 200 then return head .. expired .. cfg .. st .. table.concat(parts) end
  -- one string made, not two: Redis's Lua hashes every byte of each
  return table.concat({ head, expired, cfg, st, unpack(parts) })
end
