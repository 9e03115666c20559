-- Generated from lua/src/createSession4-6.lua by `go generate ./lua`: edit the source, not this file.
--[[ createSession4: create a session in status `pending` at version 1, in a
new life: the shard's life counter (KEYS[6]) stamps it, so a session id
reused after a delete or a TTL is told apart from its earlier lives.

KEYS[1] meta    sk:{<shard>}:session:<id>         hash: cfg, what create fixes (lua/README.md "The meta hash")
KEYS[2] parts   sk:{<shard>}:session:<id>:parts   hash: position -> participant; field n -> st;
                                                  per_group also g:<group_id> -> member positions
KEYS[3] index   sk:{<shard>}:session:<id>:index   hash: participant_id -> position
KEYS[4] stream  sk:{<shard>}:events               stream: audit events of the shard
KEYS[5] idem    sk:{<shard>}:session:<id>:idem:<key>  the Idempotency-Key record
KEYS[6] lives   sk:{<shard>}:lives                string: the shard's life counter (INCR)

ARGV[1]  session_id         UUID
ARGV[2]  channel            state channel, sk:{<shard>}:session:<id>:state
ARGV[3]  event_cap          integer; >0: refuse when the stream holds this many, 0: append no event
ARGV[4]  sync_mode          per_participant|per_cycle|per_group|global|count_up
ARGV[5]  total_time_ms      integer ms, "" = sum of the participants' banks
ARGV[6]  time_per_cycle_ms  integer ms or ""
ARGV[7]  increment_ms       integer ms or ""
ARGV[8]  max_time_ms        integer ms or ""
ARGV[9]  auto_advance       0|1
ARGV[10] metadata           a JSON object, stored and returned verbatim, or ""
ARGV[11] idem_fingerprint   the request's fingerprint, or "": no Idempotency-Key
ARGV[12] idem_ttl_ms        integer ms the record lives (when ARGV[11] is set)
ARGV[13] actor              who asked (a token's sub), or ""; recorded in the event
ARGV[14..] participants, four slots each: participant_id (UUID), participant_index
           (integer >= 0), total_time_ms (integer ms), group_id (UUID or "")
ARGV[last] optional, when the slots after ARGV[13] are 4n+1: warnings_ms, up to 5
           comma-separated integers ms ("10000,5000,1000"): TIME_WARNING thresholds

Per mode (lua/README.md "Modes"): per_cycle needs time_per_cycle_ms; per_group
needs every group_id, and a group's bank is its first member's total_time_ms.

Returns: the message (a bulk string: lua/README.md "Packed messages") of the
  state, whole up to 32 participants, above as a delta (from version 0,
  carrying every participant); or {"replay", payload}, the kept reply of a call
  with the same Idempotency-Key and request, which changed nothing (lua/README.md "Idempotency").
Errors:  IDEMPOTENCY_KEY_REUSED {reason}; SESSION_EXISTS {session_id}; VALIDATION_ERROR {field, message};
  STREAM_FULL {stream_max}
Publishes: by SPUBLISH (sharded Pub/Sub), ARGV[2] <- the same packed message
Events:  session_created
Life:    the state's "life" is INCR KEYS[6] (an integer >= 1, unique per shard and
  rising); every later state, message and audit event of the session carries it.
Time:    created_at = updated_at = Redis TIME in ms.
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

-- TTLs (ms). Running and paused sessions never expire.
-- TTL_PENDING = 86400000: the build writes the value where the name is used
-- TTL_FINISHED = 3600000: the build writes the value where the name is used


-- hset_flat writes flat = {field, value, ...} to the hash key in chunks:
-- Lua's unpack has a C-stack limit of a few thousand values.
local function hset_flat(key, flat)
  for i = 1, #flat, 200 do rcall('HSET', key, unpack(flat, i, math.min(i + 199, #flat))) end
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
-- PART = '>cHc0illiBBHc0': the build writes the value where the name is used
-- EVENT = '>cllHc0Hc0llllIc0': the build writes the value where the name is used
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

-- pack_cfg is the cfg value of m (tag C): what createSession fixes.
local function pack_cfg(m)
  if not spack then
    return cjson.encode({ m.id, m.mode, m.n, m.total, m.per_cycle, m.incr, m.max, m.auto, m.meta, m.created_at,
      m.warn, m.life })
  end
  return spack('>cHc0Hc0IHc0Hc0Hc0Hc0Hc0Ic0lHc0l', 'C', #m.id, m.id, #m.mode, m.mode, m.n, #m.total, m.total, #m.per_cycle, m.per_cycle,
    #m.incr, m.incr, #m.max, m.max, #m.auto, m.auto, #m.meta, m.meta, m.created_at, #m.warn, m.warn, m.life)
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
  if active == '' then active = (-2 ^ 63) end
  if cycle_at == '' then cycle_at = (-2 ^ 63) end
  if started_at == '' then started_at = (-2 ^ 63) end
  if completed_at == '' then completed_at = (-2 ^ 63) end
  return spack('>cHc0llHc0llllllilIc0', 'S', #m.status, m.status, m.version, active, #m.active_id, m.active_id, cycle_at, started_at,
    completed_at, m.updated_at, m.turn, m.used, m.warned or 0, m.bank or (-2 ^ 63), #g, g)
end

-- enc_p is participant p stored (tag P).
local function enc_p(p)
  local g = p.group_id or ''
  if not spack then
    return cjson.encode({ p.participant_id, p.participant_index, p.total_time_ms, p.time_used_ms, p.cycle_count,
      p.is_active, p.has_expired, g })
  end
  return spack('>cHc0illiBBHc0', 'P', #p.participant_id, p.participant_id, p.participant_index, p.total_time_ms,
    p.time_used_ms, p.cycle_count, p.is_active and 1 or 0, p.has_expired and 1 or 0, #g, g)
end

-- dec_p reads a stored participant of any layout: tag P, revision 3's
-- array, or the revision-2 JSON object (first byte '{').
local function dec_p(frag)
  local b = string.byte(frag, 1)
  if b == 80 then -- 'P'
    local _, id, index, total, used, cycles, active, expired, g = sunpack('>cHc0illiBBHc0', frag)
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
  return spack('>cllHc0Hc0llllIc0', 'E', m.version, m.life, #pid, pid, #gid, gid, ev.remaining or (-2 ^ 63), ev.elapsed or (-2 ^ 63),
    ev.cycle or (-2 ^ 63), now, #actor, actor)
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

-- write_frags stores m's st (at field n) and the fragments of changed not
-- stored yet, in one HSET of the parts hash.
local function write_frags(k_parts, changed, m)
  local flat = { POSITIONS[m.n + 1] or fmt('%d', m.n), m.st_raw }
  for _, c in ipairs(changed) do
    if not c[3] then
      flat[#flat + 1] = POSITIONS[c[1] + 1] or fmt('%d', c[1]) -- a number would be formatted by %.17g
      flat[#flat + 1] = c[2]
      if held then held[c[1] + 1] = c[2] end
    end
  end
  hset_flat(k_parts, flat)
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

-- check_common validates what every mutating script checks first.
local function check_common(m, sid, expected, stream, cap)
  if not m then return cold().fail('SESSION_NOT_FOUND', { session_id = sid }) end
  if expected ~= '' and tonumber(expected) ~= m.version then
    return cold().fail('CONFLICT', { expected_version = tonumber(expected), actual_version = m.version })
  end
  if cap > 0 and rcall('XLEN', stream) >= cap then
    return cold().fail('STREAM_FULL', { stream_max = cap })
  end
  return nil
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
  if spack and (m.unpacked or m.old_cfg) then cold().restore_parts(k_parts, m) end
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
  local ttl = 3600000
  if m.status == 'running' or m.status == 'paused' then ttl = 0
  elseif m.status == 'pending' then ttl = 86400000 end
  for _, k in ipairs({ k_meta, k_parts, k_index }) do
    if ttl == 0 then rcall('PERSIST', k) else rcall('PEXPIRE', k, ttl) end
  end
end

-- all_parts reads every participant's fragment, in rotation order.
local function all_parts(k_parts, m)
  if held then return held end
  if m.n <= 32 then return rcall('HMGET', k_parts, unpack(POSITIONS, 1, m.n)) end
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
-- Publishing a change and appending its audit event.

-- emit publishes the change and appends its audit event, then returns the
-- reply, the message itself (a table reply costs Redis ~6k instructions
-- more to convert): the whole state up to FULL_MAX participants,
-- above it the participants at `changed` positions (changed = {{pos,
-- fragment}, ...}), from version ev.base (default: the one before). One
-- message serves the channel, the stream and the reply. expired names the
-- participant whose ending turn ran out ('' for none). ev.actor names who
-- asked ('' when nobody said: auth off, or the server's own expiry).
local function emit(k_parts, k_stream, channel, cap, m, now, expired, changed, ev)
  local msg
  if m.n <= 32 then msg = full(k_parts, m, now, expired)
  else msg = delta(m, now, expired, changed, ev.base or (m.version - 1)) end
  rcall('SPUBLISH', channel, msg)
  if cap > 0 then
    -- the event's figures go packed in one field: a number passed to
    -- redis.call is formatted by sprintf
    rcall('XADD', k_stream, '*', 'type', ev.type, 'session_id', m.id, 'event', pack_event(m, ev, now),
      'state', msg)
  end
  return msg
end
-- Idempotency-Key records (lua/README.md "Idempotency").

-- Idempotency-Key (lua/README.md "Idempotency"). idem = {key, fp, ttl}: the
-- record's key (KEYS), the request's fingerprint and how long the record
-- lives (ms); nil when the call has no key (no table is made for it). A
-- record is fp, a newline, then the reply's payload (a message, or JSON
-- kept by the revision-2 scripts); only calls that succeed leave one (an
-- error changed nothing).

-- replayed answers a repeat: {'replay', payload} for the same request,
-- IDEMPOTENCY_KEY_REUSED for another one, nil when the key is new.
local function replayed(idem)
  if not idem then return nil end
  if not string.match(idem.ttl or '', '^[1-9]%d*$') then
    return cold().fail('VALIDATION_ERROR', { field = 'idem_ttl_ms', message = 'must be a positive integer' })
  end
  local rec = rcall('GET', idem.key)
  if not rec then return nil end
  local n = #idem.fp
  if string.sub(rec, 1, n) == idem.fp and string.byte(rec, n + 1) == 10 then
    return { 'replay', string.sub(rec, n + 2) }
  end
  return cold().fail('IDEMPOTENCY_KEY_REUSED', { reason = 'the key was used for a different request' })
end

-- keep records payload as the reply of the call's key, if it has one.
local function keep(idem, payload)
  if idem then rcall('SET', idem.key, idem.fp .. '\n' .. payload, 'PX', idem.ttl) end
end

-- kept keeps the reply r of a transition and returns it; a delta is kept as
-- the whole state, which a replay can answer without a base.
local function kept(idem, r, k_parts, m, now, expired)
  if idem then
    if m.n > 32 then keep(idem, full(k_parts, m, now, expired)) else keep(idem, r) end
  end
  return r
end
cold = function()

-- fail is an error reply: CODE, then the details as JSON.
-- @cold
local function fail(code, details)
  return redis.error_reply(code .. ' ' .. cjson.encode(details))
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
  local t = { fail = fail, restore_parts = restore_parts }
  cold = function() return t end
  return t
end

local k_meta, k_parts, k_index, k_stream, k_lives = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6]
local sid, channel, cap = ARGV[1], ARGV[2], tonumber(ARGV[3])
local mode, total, per_cycle, incr, max = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local auto, metadata = ARGV[9], ARGV[10]
local idem = (ARGV[11] or '') ~= '' and { key = KEYS[5], fp = ARGV[11], ttl = ARGV[12] } or nil -- nil: no key
local actor = ARGV[13]
local FIRST = 14 -- the first participant slot

local replay = replayed(idem)
if replay then return replay end

-- read and validate
if rcall('EXISTS', k_meta) == 1 then return cold().fail('SESSION_EXISTS', { session_id = sid }) end
local uuid = '^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$'
if not string.match(sid, uuid) then
  return cold().fail('VALIDATION_ERROR', { field = 'session_id', message = 'must be a UUID' })
end
local modes = { per_participant = 1, per_cycle = 1, per_group = 1, global = 1, count_up = 1 }
if not modes[mode] then
  return cold().fail('VALIDATION_ERROR', { field = 'sync_mode', message = 'unknown sync_mode' })
end
-- numbers are spliced into the state as they are, so only plain integers
-- pass (no floats, exponents or hex in replies); metadata must be an object
-- (at most 15 characters, so exact in a Lua number)
local function is_int(v) return #v <= 15 and string.match(v, '^%-?%d+$') ~= nil end
for _, f in ipairs({ { 'total_time_ms', total }, { 'time_per_cycle_ms', per_cycle }, { 'increment_ms', incr },
  { 'max_time_ms', max } }) do
  if f[2] ~= '' and not is_int(f[2]) then
    return cold().fail('VALIDATION_ERROR', { field = f[1], message = 'must be an integer or ""' })
  end
end
if auto ~= '0' and auto ~= '1' then
  return cold().fail('VALIDATION_ERROR', { field = 'auto_advance', message = 'must be 0 or 1' })
end
if metadata ~= '' then
  local ok, v = pcall(cjson.decode, metadata)
  if not ok or type(v) ~= 'table' or string.sub(metadata, 1, 1) ~= '{' then
    return cold().fail('VALIDATION_ERROR', { field = 'metadata', message = 'must be a JSON object' })
  end
end
local nargs, warn = #ARGV - (FIRST - 1), ''
if nargs % 4 == 1 then
  warn, nargs = ARGV[#ARGV], nargs - 1
  local ws = {}
  for w in string.gmatch(warn, '[^,]+') do
    if not is_int(w) or tonumber(w) <= 0 then ws = nil break end
    ws[#ws + 1] = tonumber(w)
  end
  if not ws or #ws > 5 then
    return cold().fail('VALIDATION_ERROR', { field = 'warnings_ms', message = 'up to 5 positive integers, comma-separated' })
  end
  table.sort(ws, function(a, b) return a > b end)
  for i, w in ipairs(ws) do ws[i] = fmt('%d', w) end
  warn = table.concat(ws, ',')
end
if nargs < 4 or nargs % 4 ~= 0 then
  return cold().fail('VALIDATION_ERROR', { field = 'participants', message = 'need 4 slots per participant' })
end
local ps, seen, sum = {}, {}, 0
for i = FIRST, FIRST - 1 + nargs, 4 do
  local p = { participant_id = ARGV[i], participant_index = tonumber(ARGV[i + 1]),
    total_time_ms = tonumber(ARGV[i + 2]), group_id = ARGV[i + 3], order = #ps,
    time_used_ms = 0, cycle_count = 0, is_active = false, has_expired = false }
  if not string.match(p.participant_id, uuid) or seen[p.participant_id] then
    return cold().fail('VALIDATION_ERROR', { field = 'participants', message = 'participant_id must be a unique UUID' })
  end
  if p.group_id ~= '' and not string.match(p.group_id, uuid) then
    return cold().fail('VALIDATION_ERROR', { field = 'participants', message = 'group_id must be a UUID' })
  end
  if not is_int(ARGV[i + 1]) or not is_int(ARGV[i + 2]) or p.participant_index < 0 then
    return cold().fail('VALIDATION_ERROR', { field = 'participants', message = 'participant_index (>= 0) and total_time_ms must be integers' })
  end
  seen[p.participant_id] = true
  sum = sum + p.total_time_ms
  ps[#ps + 1] = p
end
if mode == 'per_cycle' and per_cycle == '' then
  return cold().fail('VALIDATION_ERROR', { field = 'time_per_cycle_ms', message = 'required by sync_mode per_cycle' })
end
local groups = {}
for _, p in ipairs(ps) do
  if mode == 'per_group' then
    if p.group_id == '' then
      return cold().fail('VALIDATION_ERROR', { field = 'participants', message = 'group_id is required by sync_mode per_group' })
    end
    if not groups[p.group_id] then groups[p.group_id] = p.total_time_ms end
  end
end
local e = check_common({ version = 0 }, sid, '', k_stream, cap)
if e then return e end
-- rotation order: participant_index, ties in the order given
table.sort(ps, function(a, b)
  if a.participant_index ~= b.participant_index then return a.participant_index < b.participant_index end
  return a.order < b.order
end)

local now = now_ms()

-- write
if total == '' then total = fmt('%d', sum) end
local life = rcall('INCR', k_lives)
local m = { id = sid, mode = mode, status = 'pending', version = 1, life = life, n = #ps, active = '',
  active_id = '', total = total, per_cycle = per_cycle, incr = incr, max = max, auto = auto, meta = metadata,
  cycle_at = '', started_at = '', completed_at = '', created_at = fmt('%d', now), updated_at = fmt('%d', now),
  turn = 0, used = 0, groups = groups, warn = warn }
if mode == 'global' then m.bank = tonumber(total) end
m.cfg_raw = pack_cfg(m)
rcall('HSET', k_meta, 'cfg', m.cfg_raw)
local changed, flat_parts, flat_index, members = {}, {}, {}, {}
for pos, p in ipairs(ps) do
  local frag = enc_p(p)
  changed[pos] = { pos - 1, frag }
  flat_parts[#flat_parts + 1] = pos - 1
  flat_parts[#flat_parts + 1] = frag
  flat_index[#flat_index + 1] = p.participant_id
  flat_index[#flat_index + 1] = pos - 1
  if mode == 'per_group' then
    if not members[p.group_id] then
      members[p.group_id] = {}
      members[#members + 1] = p.group_id
    end
    local l = members[p.group_id]
    l[#l + 1] = fmt('%d', pos - 1)
  end
end
-- per_group: each group's member positions, so a charge rewrites its
-- members without scanning everyone
for _, g in ipairs(members) do
  flat_parts[#flat_parts + 1] = 'g:' .. g
  flat_parts[#flat_parts + 1] = table.concat(members[g], ',')
end
hset_flat(k_parts, flat_parts)
hset_flat(k_index, flat_index)
save_meta(k_meta, k_parts, k_index, m)

-- publish and return
local r = emit(k_parts, k_stream, channel, cap, m, now, '', changed, { type = 'session_created', base = 0, actor = actor })
return kept(idem, r, k_parts, m, now, '')
