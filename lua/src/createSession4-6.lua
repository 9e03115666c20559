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
-- @include prelude
-- @include clock
-- @include meta
-- @include encoding
-- @include emit
-- @include idempotency

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
  for i, w in ipairs(ws) do ws[i] = fmt('%d', w) end
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
