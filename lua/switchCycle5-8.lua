-- Generated from lua/src/switchCycle5-8.lua by `go generate ./lua`: edit the source, not this file.
--[[ switchCycle5: end the active participant's turn and start the next one
who has not expired. The hot path: O(1) in the number of participants
(skipping expired participants reads one fragment each; in per_group the
charged group's other members are rewritten to show its bank: O(group size)).

KEYS[1] meta       sk:{<shard>}:session:<id>
KEYS[2] parts      sk:{<shard>}:session:<id>:parts
KEYS[3] index      sk:{<shard>}:session:<id>:index
KEYS[4] stream     sk:{<shard>}:events
KEYS[5] deadlines  sk:{<shard>}:deadlines
KEYS[6] idem       sk:{<shard>}:session:<id>:idem:<key>   the Idempotency-Key record
KEYS[7] budget     sk:{<shard>}:session:<id>:rl   string: the per-session switch budget's TAT,
                   epoch µs (GCRA, as in rateLimit-1); absent when the budget is full
KEYS[8] caller     the caller's request budget (rateLimit-1's KEYS[1]: sk:rl:ip:<ip> or
                   sk:rl:sub:<sub>), when ARGV[13] is set; on a single Redis only, for
                   it is in no session's slot. Otherwise any key of the session's slot
                   (the engine repeats KEYS[7]): it is not touched

ARGV[1] session_id              UUID
ARGV[2] channel                 sk:{<shard>}:session:<id>:state
ARGV[3] event_cap               integer (see createSession)
ARGV[4] expected_version        integer or ""
ARGV[5] current_participant_id  UUID or "": the caller says whose turn ends
ARGV[6] next_participant_id     UUID or "": "" = next not expired by participant_index, wrapping;
                                one that expires in this switch (the current participant, or
                                in per_group a group-mate of theirs) is replaced the same way
ARGV[7] message_channel         sk:{<shard>}:session:<id>:msg, or ""/absent: publish no TIME_EXPIRED
ARGV[8] idem_fingerprint  the request's fingerprint, or ""/absent: no Idempotency-Key
ARGV[9] idem_ttl_ms       integer ms the record lives (when ARGV[8] is set)
ARGV[10] actor             who asked (a token's sub), or ""/absent; recorded in the event
ARGV[11] budget_burst      integer >= 1: switches the session may make at once, or ""/absent:
                           no per-session budget (KEYS[7] is then not touched)
ARGV[12] budget_interval_us  integer µs >= 1: one switch earned back per interval
ARGV[13] caller_burst        integer >= 1: the caller's requests at once, or ""/absent: the
                             caller's budget is charged elsewhere (KEYS[8] is then not touched)
ARGV[14] caller_interval_us  integer µs >= 1: one request earned back per interval

Returns: the message (a bulk string: lua/README.md "Packed messages") of the
  state, whole up to 32 participants, above as a delta, or, with a budget,
  {message, budget_remaining, budget_reset_after_us}; the message's expired_id names
  the participant whose ending turn ran out of time ("expired_participant_id" in the head); or {"replay", payload}, the kept reply of a call
  with the same Idempotency-Key and request, which changed nothing (lua/README.md "Idempotency"),
  charging the session's budget nothing. With the caller's budget (ARGV[13]) the reply is
  always an array, and its last two elements are caller_remaining and
  caller_reset_after_us: {message, caller_remaining, caller_reset_after_us},
  {message, budget_remaining, budget_reset_after_us, caller_remaining, caller_reset_after_us}
  or {"replay", payload, caller_remaining, caller_reset_after_us}.
Errors:  IDEMPOTENCY_KEY_REUSED {reason}; RATE_LIMITED {budget, limit, retry_after_us, reset_after_us}
  (budget "caller" or "session" is spent and not charged, nothing changed; with "session" the
  caller's budget was charged); SESSION_NOT_FOUND {session_id}; CONFLICT {expected_version, actual_version}
  or {expected_participant_id, active_participant_id, actual_version};
  INVALID_STATE_TRANSITION {from, to, version}; PARTICIPANT_NOT_FOUND {participant_id};
  VALIDATION_ERROR {field, message} (next_participant_id has expired); STREAM_FULL {stream_max}
Publishes: by SPUBLISH (sharded Pub/Sub), ARGV[2] <- the same packed message; ARGV[7] <- TIME_EXPIRED when this
  switch is the first to see a clock run out
Events:  cycle_switched; participant_expired when the ending turn ran out here;
  session_expired when the session's time ran out or nobody is left
Budgets: the caller's first of all, replays included, as rateLimit-1 before the call would;
  then the session's, once the call is not a replay, before any other check, so a refused
  switch (CONFLICT, ...) costs one as an HTTP request did before it reached the script.
Time:    elapsed = now - cycle_started_at, capped where the clock ran out;
  cycle_started_at = now (Redis TIME, ms); the next deadline goes into KEYS[5].
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

-- cfg_slots returns a stored cfg's tag (or nil for an older layout), then
-- its 12 slots.
local function cfg_slots(c)
  if string.byte(c, 1) == 67 then return sunpack('>cHc0Hc0IHc0Hc0Hc0Hc0Hc0Ic0lHc0l', c) end -- 'C'
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
  if active == '' then active = (-2 ^ 63) end
  if cycle_at == '' then cycle_at = (-2 ^ 63) end
  if started_at == '' then started_at = (-2 ^ 63) end
  if completed_at == '' then completed_at = (-2 ^ 63) end
  return spack('>cHc0llHc0llllllilIc0', 'S', #m.status, m.status, m.version, active, #m.active_id, m.active_id, cycle_at, started_at,
    completed_at, m.updated_at, m.turn, m.used, m.warned or 0, m.bank or (-2 ^ 63), #g, g)
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

-- set_frag records pos's new fragment, replacing an earlier one.
local function set_frag(changed, pos, frag)
  for _, c in ipairs(changed) do
    if c[1] == pos then
      c[2], c[3] = frag, nil
      return
    end
  end
  changed[#changed + 1] = { pos, frag }
end

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
-- Participants read and as JSON, the state head as JSON (getSession), and
-- the packed messages of transitions (layout.lua packs each value).

local function get_p(key, pos)
  if held then return dec_p(held[pos + 1]) end
  return dec_p(rcall('HGET', key, POSITIONS[pos + 1] or fmt('%d', pos)))
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

-- event_for describes participant p for the audit event.
local function event_for(typ, p, elapsed)
  local remaining = p.total_time_ms
  if remaining < 0 then remaining = 0 end
  return { type = typ, pid = p.participant_id, gid = p.group_id, remaining = remaining,
    elapsed = elapsed, cycle = p.cycle_count }
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
-- How each sync_mode charges time.

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
-- The shard deadline index the expiry scheduler polls.

-- sync_deadline keeps the shard's deadline index true: the session is in
-- it, scored by the ms its running turn runs out, exactly when there is one.
-- The score is the next warning's time when one is pending (warnings ride
-- the same index; expireSession sends them).
local function sync_deadline(k_dl, m, p)
  if m.status == 'running' and m.cycle_at ~= '' and p then
    local l = turn_left(m, p)
    if l then
      l = math.max(l, 0)
      if m.warned < #m.warns then l = math.max(l - m.warns[m.warned + 1], 0) end
      rcall('ZADD', k_dl, fmt('%d', tonumber(m.cycle_at) + l), m.id)
      return
    end
  end
  rcall('ZREM', k_dl, m.id)
end
-- per_group: a bank shared by a group's members.

-- group_members returns the rotation positions of group gid's members: the
-- list createSession stores in the parts hash (field g:<gid>, positions
-- comma-separated). A session created before the lists were stored has
-- none: one scan of every participant builds and stores them all.
local function group_members(k_parts, m, gid)
  local v = rcall('HGET', k_parts, 'g:' .. gid)
  if not v then
    local lists, flat = {}, {}
    for i = 0, m.n - 1 do
      local g = get_p(k_parts, i).group_id
      if g then
        if not lists[g] then lists[g] = {} end
        lists[g][#lists[g] + 1] = fmt('%d', i)
      end
    end
    for g, l in pairs(lists) do
      flat[#flat + 1] = 'g:' .. g
      flat[#flat + 1] = table.concat(l, ',')
    end
    hset_flat(k_parts, flat)
    v = lists[gid] and table.concat(lists[gid], ',') or ''
  end
  local out = {}
  for x in string.gmatch(v, '%d+') do out[#out + 1] = tonumber(x) end
  return out
end

-- sync_group, after p's turn was charged in per_group, rewrites the
-- fragments of the other members of p's group (p, at skip, is the
-- caller's) so that each shows the group's bank, and has expired once it
-- ran out; it stores them and appends them to changed. O(group size): one
-- HGET, and an HMGET and HSET per 200 members.
local function sync_group(k_parts, m, p, skip, changed)
  if m.mode ~= 'per_group' or not p.group_id then return end
  local bank = m.groups[p.group_id]
  if not bank then return end
  local out = bank <= 0
  local members, flat = group_members(k_parts, m, p.group_id), {}
  for i = 1, #members, 200 do
    local idx = {}
    for j = i, math.min(i + 199, #members) do idx[#idx + 1] = members[j] end
    local frags
    if held then
      frags = {}
      for j = 1, #idx do frags[j] = held[idx[j] + 1] end
    else
      frags = rcall('HMGET', k_parts, unpack(idx))
    end
    for j = 1, #idx do
      if idx[j] ~= skip and frags[j] then
        local q = dec_p(frags[j])
        if q.total_time_ms ~= bank or (out and not q.has_expired) then
          q.total_time_ms = bank
          if out then q.has_expired = true end
          local f = enc_p(q)
          flat[#flat + 1] = idx[j]
          flat[#flat + 1] = f
          if held then held[idx[j] + 1] = f end
          changed[#changed + 1] = { idx[j], f, true }
        end
      end
    end
  end
  hset_flat(k_parts, flat)
end
-- Turn order: the next participant who has not expired.

-- next_live finds the next participant after position from (wrapping, cur
-- is the in-memory participant at from) who has not expired.
local function next_live(k_parts, m, from, cur)
  for k = 1, m.n do
    local pos = (from + k) % m.n
    local q = cur
    if pos ~= from then q = get_p(k_parts, pos) end
    if not q.has_expired then return pos, q end
  end
  return nil, nil
end
-- GCRA (shared by the rateLimit scripts and the switch's budgets: its spend).
-- A budget is `burst` requests at
-- once, refilled at one per `interval` µs; its key holds the theoretical
-- arrival time (TAT) in epoch µs. gcra returns whether `cost` more fits, the
-- requests remaining, the µs until one is allowed (when refused), the µs
-- until the budget is full, and the new TAT to store.

local function gcra(tat, now, burst, interval, cost)
  tat = tat and tonumber(tat)
  if not tat or tat < now then tat = now end
  local new_tat = tat + interval * cost
  local diff = now - (new_tat - burst * interval)
  if diff < 0 then
    return false, 0, -diff, tat - now, tat
  end
  return true, math.floor(diff / interval), 0, new_tat - now, new_tat
end

-- store_tat keeps a TAT until the budget is full again (then the key is gone).
local function store_tat(key, tat, now)
  redis.call('SET', key, string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
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
-- Running out of time: expiries, TIME_EXPIRED and TIME_WARNING, and the late
-- pause or complete that applies an expiry first.

-- end_expired ends the session: its time ran out, or nobody is left.
-- @cold
local function end_expired(m, now)
  m.status, m.active, m.active_id, m.cycle_at, m.completed_at = 'expired', '', '', '', now
end

-- time_expired announces an expiry on the session's message channel
-- (pid nil: the session's own time ran out).
-- @cold
local function time_expired(ch, m, pid, now)
  if not ch or ch == '' then return end
  local who = 'null'
  if pid then who = '"' .. pid .. '"' end
  rcall('SPUBLISH', ch, '{"type":"TIME_EXPIRED","sessionId":"' .. m.id .. '","participant_id":' .. who
    .. ',"timestamp":' .. fmt('%d', now) .. ',"version":' .. fmt('%d', m.version) .. '}')
end
  local t = { fail = fail, load_unpacked = load_unpacked, bad_transition = bad_transition, restore_parts = restore_parts, end_expired = end_expired, time_expired = time_expired }
  cold = function() return t end
  return t
end

local k_meta, k_parts, k_index, k_stream, k_dl = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local sid, channel, cap, expected = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local current_id, next_id, msg_ch = ARGV[5], ARGV[6], ARGV[7]
local idem = (ARGV[8] or '') ~= '' and { key = KEYS[6], fp = ARGV[8], ttl = ARGV[9] } or nil -- nil: no key
local actor = ARGV[10] or ''
local burst, interval = ARGV[11] and tonumber(ARGV[11]), ARGV[12] and tonumber(ARGV[12])
local c_burst, c_interval = ARGV[13] and tonumber(ARGV[13]), ARGV[14] and tonumber(ARGV[14])

-- time: one TIME serves the budgets (µs) and the switch (ms)
local now_u = now_us()
local now = floor(now_u / 1000)

-- spend charges one call to the budget at key (which names `budget` in a
-- refusal) and returns what remains and the µs until it is full; when it
-- is spent, nothing is stored and the third value is the RATE_LIMITED
-- error. Made only when a budget is given: a closure costs every call.
local spend
if burst or c_burst then
  spend = function(key, budget, burst, interval)
    local ok, rem, retry, reset, tat = gcra(rcall('GET', key), now_u, burst, interval, 1)
    if not ok then
      return nil, nil, cold().fail('RATE_LIMITED', { budget = budget, limit = burst, retry_after_us = retry,
        reset_after_us = reset })
    end
    store_tat(key, tat, now_u)
    return rem, reset
  end
end
local c_rem, c_reset
if c_burst then
  local e
  c_rem, c_reset, e = spend(KEYS[8], 'caller', c_burst, c_interval)
  if e then return e end
end
local replay = replayed(idem)
if replay then
  if c_burst and not replay.err then return { replay[1], replay[2], c_rem, c_reset } end
  return replay
end
local b_rem, b_reset
if burst then
  local e
  b_rem, b_reset, e = spend(KEYS[7], 'session', burst, interval)
  if e then return e end
end

local m = load_meta(k_meta, k_parts)
local e = check_common(m, sid, expected, k_stream, cap)
if e then return e end
if m.status ~= 'running' then return cold().bad_transition(m, 'running') end
if current_id ~= '' and current_id ~= m.active_id then
  return cold().fail('CONFLICT', { expected_participant_id = current_id, active_participant_id = m.active_id,
    actual_version = m.version })
end
local cur_pos = tonumber(m.active)
local next_pos, named
if next_id ~= '' then
  next_pos = tonumber(rcall('HGET', k_index, next_id))
  if not next_pos then return cold().fail('PARTICIPANT_NOT_FOUND', { participant_id = next_id }) end
  if next_pos ~= cur_pos then named = get_p(k_parts, next_pos) end
  if named and named.has_expired then
    return cold().fail('VALIDATION_ERROR', { field = 'next_participant_id', message = 'has expired' })
  end
end
local cur = get_p(k_parts, cur_pos)

local was_expired = cur.has_expired
local elapsed = run_ms(m, cur, now)
charge(m, cur, elapsed)
cur.cycle_count = cur.cycle_count + 1
cur.is_active = false
local expired, announce = '', false
local ev = event_for('cycle_switched', cur, elapsed)
ev.actor = actor
local changed = {}
sync_group(k_parts, m, cur, cur_pos, changed)
local sl, pl = sess_left(m), part_left(m, cur)
m.version, m.updated_at = m.version + 1, now
if sl and sl <= 0 then
  cold().end_expired(m, now)
  ev.type, announce = 'session_expired', true
else
  if was_expired or (pl and pl <= 0) then
    expired = cur.participant_id
    if not was_expired then
      cur.has_expired, ev.type, announce = true, 'participant_expired', true
    end
  elseif m.incr ~= '' and m.mode == 'per_participant' then
    cur.total_time_ms = cur.total_time_ms + tonumber(m.incr)
    ev.remaining = cur.total_time_ms
  end
end
local nxt
if m.status == 'running' then
  if next_id ~= '' then
    nxt = named or cur
    -- as read, unless sync_group rewrote it (a group-mate of the current)
    for _, c in ipairs(changed) do
      if c[1] == next_pos then nxt = dec_p(c[2]) end
    end
    -- the named next expired in this very switch (the current participant
    -- itself, or a group-mate of theirs): the rotation picks instead
    if nxt.has_expired then nxt = nil end
  end
  if not nxt then next_pos, nxt = next_live(k_parts, m, cur_pos, cur) end
  if not nxt then
    cold().end_expired(m, now)
    ev.type, announce = 'session_expired', true
  else
    nxt.is_active = true
    begin_turn(m, nxt, now)
    m.active, m.active_id = next_pos, nxt.participant_id
  end
end
table.insert(changed, 1, { cur_pos, enc_p(cur) })
if nxt and next_pos ~= cur_pos then set_frag(changed, next_pos, enc_p(nxt)) end
save_meta(k_meta, k_parts, k_index, m, changed)
sync_deadline(k_dl, m, nxt)

local r = emit(k_parts, k_stream, channel, cap, m, now, expired, changed, ev)
if announce then
  local who
  if cur.has_expired and not was_expired then who = cur.participant_id end
  cold().time_expired(msg_ch, m, who, now)
end
r = kept(idem, r, k_parts, m, now, expired)
if c_burst then
  if burst then return { r, b_rem, b_reset, c_rem, c_reset } end
  return { r, c_rem, c_reset }
end
if burst then return { r, b_rem, b_reset } end
return r
