-- Generated from lua/src/readSession-2.lua by `go generate ./lua`: edit the source, not this file.
--[[ readSession: read a session as stored, for a caller that renders the v1 state
itself (Go's engine does: the head's JSON is then not built in Redis). Read-only. A caller
that wants the state as JSON calls getSession.

KEYS[1] meta   sk:{<shard>}:session:<id>
KEYS[2] parts  sk:{<shard>}:session:<id>:parts

ARGV[1] session_id  UUID

Returns: {now_ms, cfg, st, p0, p1, ..., pN-1}: the Redis time (integer ms), the
  session's packed cfg (meta hash) and st (parts hash: lua/README.md "The meta hash"), and the participant at
  rotation position i; or {} when the session is stored field by field (written before
  the packing and not since): read it with getSession.
Errors:  SESSION_NOT_FOUND {session_id}
Publishes: nothing
Time:    now_ms = Redis TIME in ms at the read (the state's server_time_ms).
]]
-- cold() returns the helpers marked @cold in lua/src/include, building them
-- on first use: only rare paths call them (the build routes their calls).
local cold
-- What every script starts with: the redis.call and string.format aliases
-- (fmt('%d', n) formats an integer: a helper for it would be one more
-- closure per call), error replies, and the size and lifetime constants.

-- Shared helpers, pasted into every script by the build (`make lua`).
local rcall = redis.call
local fmt = string.format
local floor = math.floor

-- FULL_MAX: sessions with at most this many participants publish and return
-- the full state; larger ones publish a delta of the participants that changed,
-- so a switch costs the same at 1000 participants as at 4.
-- FULL_MAX = 32: the build writes the value where the name is used
-- the hash fields of positions 0..FULL_MAX, as strings (field n holds st,
-- after a session's last participant): a number passed to redis.call is
-- formatted on every call
local POSITIONS = { '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15',
  '16', '17', '18', '19', '20', '21', '22', '23', '24', '25', '26', '27', '28', '29', '30', '31', '32' }
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
-- The binary layouts the scripts store, publish and record, and the readers
-- of the older ones.

-- Every value a transition writes is one tag byte, then its slots packed
-- by Redis's struct library, big-endian (lua/README.md "Layouts"; Go's
-- fullstate/binary.go and Node's testdata/node/packed.mjs read them).
-- struct.unpack hands the slots back as values, where cmsgpack built a
-- table one slot at a time (~1k Redis instructions a slot: bench/RESULTS.md
-- "Revision 4"). Hc0 and Ic0 are a 16- or 32-bit length, then the bytes.
-- The letters go without sizes (c and B 1 byte, H 2, i and I 4, l 8: struct's
-- native sizes on the LP64 platforms Redis runs on), so struct parses no
-- digits on every call; lua/README.md "Layouts" writes them as sizes.
-- CFG = '>cHc0Hc0IHc0Hc0Hc0Hc0Hc0Ic0lHc0l': the build writes the value where the name is used
-- ST = '>cHc0llHc0llllllilIc0': the build writes the value where the name is used
-- MSG = '>ccllllIIHI': the build writes the value where the name is used
-- NONE fills an integer slot that holds no number ("" in the older
-- layouts): the int64 minimum, which no time or count reaches.
-- NONE = (-2 ^ 63): the build writes the value where the name is used

-- The embedded dev Redis (Lua in Go, redisconn.Embedded) has neither
-- struct nor cmsgpack: there each layout's slots go as a JSON array, in
-- the same order. It never shares data with a real Redis.
local spack = rawget(_G, 'struct') and struct.pack
local sunpack = rawget(_G, 'struct') and struct.unpack
-- unpack_value reads an array of an older layout: revision 3's
-- MessagePack, or the embedded Redis's JSON.
local unpack_value = rawget(_G, 'cmsgpack') and cmsgpack.unpack or cjson.decode

-- cfg_slots returns a stored cfg's tag (or nil for an older layout), then
-- its 12 slots.
local function cfg_slots(c)
  if string.byte(c, 1) == 67 then return sunpack('>cHc0Hc0IHc0Hc0Hc0Hc0Hc0Ic0lHc0l', c) end -- 'C'
  return nil, unpack(unpack_value(c), 1, 12)
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
    bank, g = sunpack('>cHc0llHc0llllllilIc0', s)
  if active == (-2 ^ 63) then active = '' end
  if cycle_at == (-2 ^ 63) then cycle_at = '' end
  if started_at == (-2 ^ 63) then started_at = '' end
  if completed_at == (-2 ^ 63) then completed_at = '' end
  if bank == (-2 ^ 63) then bank = nil end
  local groups, at = {}, 1
  while at <= #g do
    local id, b
    id, b, at = sunpack('>Hc0l', g, at)
    groups[id] = b
  end
  return status, version, active, active_id, cycle_at, started_at, completed_at, updated_at, turn, used, warned,
    bank, groups
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
  local head = spack('>ccllllIIHI', 'M', kind, m.life, m.version, base, now, #cfg, #st, #expired, #parts)
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
-- The participant fragments a transition changed, to write and publish.

-- Fragments to publish: changed = {{pos, fragment, written}, ...}; an
-- entry flagged written was stored already (sync_group).

-- held mirrors the parts hash of a session of at most FULL_MAX
-- participants for the rest of the call, once read with st: one HMGET then
-- serves every read of a participant and the whole-state message, and
-- every write goes through it too. (The build keeps what a script's text
-- names, comments included, so this one names no function.)
local held = nil

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
    if n <= 32 then
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
    m = cold().load_unpacked(k_meta)
    if not m then return nil end
    m.loaded_status, m.warns = m.status, {}
    if m.n <= 32 then held = rcall('HMGET', k_parts, unpack(POSITIONS, 1, m.n)) end
  end
  -- warnings: thresholds (ms left, descending) and how many of them the
  -- current turn has passed
  if m.warn and m.warn ~= '' then
    for w in string.gmatch(m.warn, '%d+') do m.warns[#m.warns + 1] = tonumber(w) end
  end
  return m
end
cold = function()

-- fail is an error reply: CODE, then the details as JSON.
-- @cold
local function fail(code, details)
  return redis.error_reply(code .. ' ' .. cjson.encode(details))
end
-- The session: reading it, the checks every mutating script makes first,
-- and writing it back with the TTL its status gives.

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
  local t = { fail = fail, load_unpacked = load_unpacked }
  cold = function() return t end
  return t
end

local k_meta, k_parts = KEYS[1], KEYS[2]
local c = rcall('HGET', k_meta, 'cfg')
if not c then
  if rcall('EXISTS', k_meta) == 0 then return cold().fail('SESSION_NOT_FOUND', { session_id = ARGV[1] }) end
  return {}
end
local _, _, _, n = cfg_slots(c)
local out = { now_ms(), c }
-- st is the parts hash's field n (revisions 2 and 3 kept it in the meta
-- hash): load_meta's read, without decoding anything (a read through
-- load_meta costs 113k instructions against this one's 86k)
if n <= 32 then
  local r = rcall('HMGET', k_parts, unpack(POSITIONS, 1, n + 1))
  out[3] = r[n + 1] or rcall('HGET', k_meta, 'st')
  for i = 1, n do out[i + 3] = r[i] end
  return out
end
out[3] = rcall('HGET', k_parts, fmt('%d', n)) or rcall('HGET', k_meta, 'st')
return append_all(k_parts, n, out)
