-- Generated from lua/src/createSession2-6.lua by `go generate ./lua`: edit the source, not this file.
--[[ createSession2: create a session in status `pending` at version 1, in a
new life: the shard's life counter (KEYS[6]) stamps it, so a session id
reused after a delete or a TTL is told apart from its earlier lives.

KEYS[1] meta    sk:{<shard>}:session:<id>         hash: session-level fields
KEYS[2] parts   sk:{<shard>}:session:<id>:parts   hash: position -> participant JSON;
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

Returns: {kind, json}; kind "full": json is the state; kind "delta": json is a
  STATE_DELTA carrying every participant (see lua/README.md); kind "replay": json is
  the kept reply of a call with the same Idempotency-Key and request, which changed nothing.
Errors:  IDEMPOTENCY_KEY_REUSED {reason}; SESSION_EXISTS {session_id}; VALIDATION_ERROR {field, message};
  STREAM_FULL {stream_max}
Publishes: by SPUBLISH (sharded Pub/Sub), ARGV[2] <- STATE_UPDATE (or STATE_DELTA above FULL_MAX participants)
Events:  session_created
Life:    the state's "life" is INCR KEYS[6] (an integer >= 1, unique per shard and
  rising); every later state, message and audit event of the session carries it.
Time:    created_at = updated_at = Redis TIME in ms.
]]
-- What every script starts with: the redis.call alias, integer formatting, error
-- replies, and the size and lifetime constants.

-- Shared helpers, pasted into every script by the build (`make lua`).
local rcall = redis.call
local fmt = string.format
local floor = math.floor

-- FULL_MAX: sessions with at most this many participants publish and return
-- the full state; larger ones publish a delta of the participants that changed,
-- so a switch costs the same at 1000 participants as at 4.
local FULL_MAX = 32
-- the hash fields of positions 0..FULL_MAX-1, as strings: a number passed
-- to redis.call is formatted on every call
local POSITIONS = { '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15',
  '16', '17', '18', '19', '20', '21', '22', '23', '24', '25', '26', '27', '28', '29', '30', '31' }

-- TTLs (ms). Running and paused sessions never expire.
local TTL_PENDING = 86400000
local TTL_FINISHED = 3600000

local function int(x)
  return fmt('%d', x)
end

-- hset_flat writes flat = {field, value, ...} to the hash key in chunks:
-- Lua's unpack has a C-stack limit of a few thousand values.
local function hset_flat(key, flat)
  for i = 1, #flat, 200 do rcall('HSET', key, unpack(flat, i, math.min(i + 199, #flat))) end
end

local function fail(code, details)
  return redis.error_reply(code .. ' ' .. cjson.encode(details))
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

-- iso formats epoch ms as ISO 8601 UTC with milliseconds, using integer
-- civil-from-days arithmetic (Lua in Redis has no os.date). A state often
-- holds one instant twice (a switch's cycle_started_at and updated_at), so
-- each run formats a value once.
local iso_memo = {}
local function iso(ms)
  local hit = iso_memo[ms]
  if hit then return hit end
  -- x - x % d is x rounded down to a multiple of d: VM arithmetic, where
  -- math.floor is a function call
  local rem = ms % 86400000
  local z = (ms - rem) / 86400000 + 719468
  local doe = z % 146097
  local era = (z - doe) / 146097
  local yoe = doe - (doe - doe % 1460) / 1460 + (doe - doe % 36524) / 36524 - (doe - doe % 146096) / 146096
  yoe = (yoe - yoe % 365) / 365
  local doy = doe - (365 * yoe + (yoe - yoe % 4) / 4 - (yoe - yoe % 100) / 100)
  local mp = 5 * doy + 2
  mp = (mp - mp % 153) / 153
  local d = 153 * mp + 2
  d = doy - (d - d % 5) / 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  local ms_ = rem % 1000
  local s = (rem - ms_) / 1000
  local sec = s % 60
  local mi = (s - sec) / 60
  local h = (mi - mi % 60) / 60
  hit = fmt('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d, h, mi % 60, sec, ms_)
  iso_memo[ms] = hit
  return hit
end

local function iso_or_null(v)
  if v == nil or v == '' then return 'null' end
  return '"' .. iso(tonumber(v)) .. '"'
end
-- The session-level hash: reading it, the checks every mutating script makes
-- first, and writing it back with the TTL its status gives.

-- The meta hash holds two packed arrays (lua/README.md "The meta hash"):
-- cfg, what createSession fixes, and st, what transitions change. A field
-- of its own costs a transition ~2.6k Redis instructions to read and a
-- sprintf to write back (callgrind); two packed values cost the read of
-- two. CFG and ST name the slots, in order (engine/head.go reads them too).
--
-- cmsgpack writes numbers without formatting them; the embedded dev Redis
-- (Lua in Go, redisconn.Embedded) has no cmsgpack, so there the same arrays
-- go through cjson. Each backend reads what it wrote.
local msgpack = rawget(_G, 'cmsgpack')
local pack = msgpack and msgpack.pack or cjson.encode
local CFG = { 'id', 'mode', 'n', 'total', 'per_cycle', 'incr', 'max', 'auto', 'meta', 'created_at', 'warn', 'life' }
local ST = { 'status', 'version', 'active', 'active_id', 'cycle_at', 'started_at', 'completed_at', 'updated_at',
  'turn', 'used', 'warned', 'bank', 'groups' }

-- pack_cfg is the cfg value of m.
local function pack_cfg(m)
  return pack({ m.id, m.mode, m.n, m.total, m.per_cycle, m.incr, m.max, m.auto, m.meta, m.created_at,
    m.warn, m.life })
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

-- save_meta writes the fields a transition may change and sets the TTL that
-- matches the new status on every key of the session. A transition that
-- keeps the status (a switch) keeps the TTL too: running sessions were made
-- persistent on the way in, and the switch is the hot path.
local function save_meta(k_meta, k_parts, k_index, m)
  local st = pack({ m.status, m.version, m.active, m.active_id, m.cycle_at, m.started_at, m.completed_at,
    m.updated_at, m.turn, m.used, m.warned or 0, m.bank or '', m.groups })
  if m.unpacked then
    rcall('DEL', k_meta)
    rcall('HSET', k_meta, 'cfg', pack_cfg(m), 'st', st)
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
-- JSON encoding of participants, the state head, the full state and a STATE_DELTA.

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
-- Publishing a change and appending its audit event.

-- emit publishes the change and appends its audit event, then returns the
-- reply {kind, json}: kind 'full' carries the whole state, 'delta' carries
-- the session head plus the participants at `changed` positions
-- (changed = {{pos, fragment}, ...}). ev.actor names who asked ('' when
-- nobody said: auth off, or the server's own expiry).
local function emit(k_parts, k_stream, channel, cap, m, now, extra, changed, ev)
  local kind, payload, msg
  if m.n <= FULL_MAX then
    kind = 'full'
    payload = full_state(k_parts, m, now, extra)
    msg = '{"type":"STATE_UPDATE","sessionId":"' .. m.id .. '","timestamp":' .. int(now)
      .. ',"version":' .. int(m.version) .. ',"life":' .. int(m.life) .. ',"state":' .. payload .. '}'
  else
    kind = 'delta'
    payload = delta(m, now, head(m, now, extra), changed, ev.base or (m.version - 1))
    msg = payload
  end
  rcall('SPUBLISH', channel, msg)
  if cap > 0 then
    rcall('XADD', k_stream, '*', 'type', ev.type, 'session_id', m.id, 'version', int(m.version),
      'life', int(m.life), 'participant_id', ev.pid or '', 'group_id', ev.gid or '',
      'time_remaining_ms', ev.remaining and int(ev.remaining) or '',
      'time_elapsed_ms', ev.elapsed and int(ev.elapsed) or '',
      'cycle_number', ev.cycle and int(ev.cycle) or '',
      'timestamp', int(now), 'state_kind', kind, 'state', payload, 'actor', ev.actor or '')
  end
  return { kind, payload }
end
-- Idempotency-Key records (lua/README.md "Idempotency").

-- Idempotency-Key (lua/README.md "Idempotency"). idem = {key, fp, ttl}: the
-- record's key (KEYS), the request's fingerprint ("" = the call has no key)
-- and how long the record lives (ms). A record is fp, a newline, then the
-- reply's JSON; only calls that succeed leave one (an error changed nothing).

-- replayed answers a repeat: {'replay', json} for the same request,
-- IDEMPOTENCY_KEY_REUSED for another one, nil when the key is new.
local function replayed(idem)
  if idem.fp == '' then return nil end
  if not string.match(idem.ttl or '', '^[1-9]%d*$') then
    return fail('VALIDATION_ERROR', { field = 'idem_ttl_ms', message = 'must be a positive integer' })
  end
  local rec = rcall('GET', idem.key)
  if not rec then return nil end
  local n = #idem.fp
  if string.sub(rec, 1, n) == idem.fp and string.byte(rec, n + 1) == 10 then
    return { 'replay', string.sub(rec, n + 2) }
  end
  return fail('IDEMPOTENCY_KEY_REUSED', { reason = 'the key was used for a different request' })
end

-- keep records json as the reply of the call's key, if it has one.
local function keep(idem, json)
  if idem.fp ~= '' then rcall('SET', idem.key, idem.fp .. '\n' .. json, 'PX', idem.ttl) end
end

-- kept keeps the reply r of a transition and returns it; a delta is kept as
-- the full state, which a replay can answer without a base.
local function kept(idem, r, k_parts, m, now, extra)
  if idem.fp ~= '' then
    if r[1] == 'delta' then keep(idem, full_state(k_parts, m, now, extra)) else keep(idem, r[2]) end
  end
  return r
end

local k_meta, k_parts, k_index, k_stream, k_lives = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6]
local sid, channel, cap = ARGV[1], ARGV[2], tonumber(ARGV[3])
local mode, total, per_cycle, incr, max = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local auto, metadata = ARGV[9], ARGV[10]
local idem = { key = KEYS[5], fp = ARGV[11], ttl = ARGV[12] }
local actor = ARGV[13]
local FIRST = 14 -- the first participant slot

local replay = replayed(idem)
if replay then return replay end

-- read and validate
if rcall('EXISTS', k_meta) == 1 then return fail('SESSION_EXISTS', { session_id = sid }) end
local uuid = '^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$'
if not string.match(sid, uuid) then
  return fail('VALIDATION_ERROR', { field = 'session_id', message = 'must be a UUID' })
end
local modes = { per_participant = 1, per_cycle = 1, per_group = 1, global = 1, count_up = 1 }
if not modes[mode] then
  return fail('VALIDATION_ERROR', { field = 'sync_mode', message = 'unknown sync_mode' })
end
-- numbers are spliced into the state as they are, so only plain integers
-- pass (no floats, exponents or hex in replies); metadata must be an object
-- (at most 15 characters, so exact in a Lua number)
local function is_int(v) return #v <= 15 and string.match(v, '^%-?%d+$') ~= nil end
for _, f in ipairs({ { 'total_time_ms', total }, { 'time_per_cycle_ms', per_cycle }, { 'increment_ms', incr },
  { 'max_time_ms', max } }) do
  if f[2] ~= '' and not is_int(f[2]) then
    return fail('VALIDATION_ERROR', { field = f[1], message = 'must be an integer or ""' })
  end
end
if auto ~= '0' and auto ~= '1' then
  return fail('VALIDATION_ERROR', { field = 'auto_advance', message = 'must be 0 or 1' })
end
if metadata ~= '' then
  local ok, v = pcall(cjson.decode, metadata)
  if not ok or type(v) ~= 'table' or string.sub(metadata, 1, 1) ~= '{' then
    return fail('VALIDATION_ERROR', { field = 'metadata', message = 'must be a JSON object' })
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
    return fail('VALIDATION_ERROR', { field = 'warnings_ms', message = 'up to 5 positive integers, comma-separated' })
  end
  table.sort(ws, function(a, b) return a > b end)
  for i, w in ipairs(ws) do ws[i] = int(w) end
  warn = table.concat(ws, ',')
end
if nargs < 4 or nargs % 4 ~= 0 then
  return fail('VALIDATION_ERROR', { field = 'participants', message = 'need 4 slots per participant' })
end
local ps, seen, sum = {}, {}, 0
for i = FIRST, FIRST - 1 + nargs, 4 do
  local p = { participant_id = ARGV[i], participant_index = tonumber(ARGV[i + 1]),
    total_time_ms = tonumber(ARGV[i + 2]), group_id = ARGV[i + 3], order = #ps,
    time_used_ms = 0, cycle_count = 0, is_active = false, has_expired = false }
  if not string.match(p.participant_id, uuid) or seen[p.participant_id] then
    return fail('VALIDATION_ERROR', { field = 'participants', message = 'participant_id must be a unique UUID' })
  end
  if p.group_id ~= '' and not string.match(p.group_id, uuid) then
    return fail('VALIDATION_ERROR', { field = 'participants', message = 'group_id must be a UUID' })
  end
  if not is_int(ARGV[i + 1]) or not is_int(ARGV[i + 2]) or p.participant_index < 0 then
    return fail('VALIDATION_ERROR', { field = 'participants', message = 'participant_index (>= 0) and total_time_ms must be integers' })
  end
  seen[p.participant_id] = true
  sum = sum + p.total_time_ms
  ps[#ps + 1] = p
end
if mode == 'per_cycle' and per_cycle == '' then
  return fail('VALIDATION_ERROR', { field = 'time_per_cycle_ms', message = 'required by sync_mode per_cycle' })
end
local groups = {}
for _, p in ipairs(ps) do
  if mode == 'per_group' then
    if p.group_id == '' then
      return fail('VALIDATION_ERROR', { field = 'participants', message = 'group_id is required by sync_mode per_group' })
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
if total == '' then total = int(sum) end
local life = rcall('INCR', k_lives)
local m = { id = sid, mode = mode, status = 'pending', version = 1, life = life, n = #ps, active = '',
  active_id = '', total = total, per_cycle = per_cycle, incr = incr, max = max, auto = auto, meta = metadata,
  cycle_at = '', started_at = '', completed_at = '', created_at = int(now), updated_at = int(now),
  turn = 0, used = 0, groups = groups, warn = warn }
if mode == 'global' then m.bank = tonumber(total) end
rcall('HSET', k_meta, 'cfg', pack_cfg(m))
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
    l[#l + 1] = int(pos - 1)
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
