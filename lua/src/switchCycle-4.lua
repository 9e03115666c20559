--[[ switchCycle: end the active participant's turn and start the next one.
The hot path: O(1) in the number of participants.

KEYS[1] meta    sk:{<shard>}:session:<id>
KEYS[2] parts   sk:{<shard>}:session:<id>:parts
KEYS[3] index   sk:{<shard>}:session:<id>:index
KEYS[4] stream  sk:{<shard>}:events

ARGV[1] session_id              UUID
ARGV[2] channel                 sk:{<shard>}:session:<id>:state
ARGV[3] event_cap               integer (see createSession)
ARGV[4] expected_version        integer or ""
ARGV[5] current_participant_id  UUID or "": the caller says whose turn ends
ARGV[6] next_participant_id     UUID or "": "" = next by participant_index, wrapping

Returns: {kind, json}; the state (or delta head) carries
  "expired_participant_id" when the ending turn ran out of time.
Errors:  SESSION_NOT_FOUND {session_id}; CONFLICT {expected_version, actual_version}
  or {expected_participant_id, active_participant_id, actual_version};
  INVALID_STATE_TRANSITION {from, to, version}; PARTICIPANT_NOT_FOUND {participant_id};
  STREAM_FULL {stream_max}
Publishes: ARGV[2] <- STATE_UPDATE or STATE_DELTA
Events:  cycle_switched, or participant_expired when the ending turn ran out
Time:    elapsed = now - cycle_started_at; cycle_started_at = now (Redis TIME, ms).
]]
-- @include common

local k_meta, k_parts, k_index, k_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sid, channel, cap, expected = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local current_id, next_id = ARGV[5], ARGV[6]

local m = load_meta(k_meta)
local e = check_common(m, sid, expected, k_stream, cap)
if e then return e end
if m.status ~= 'running' then return bad_transition(m, 'running') end
if current_id ~= '' and current_id ~= m.active_id then
  return fail('CONFLICT', { expected_participant_id = current_id, active_participant_id = m.active_id,
    actual_version = m.version })
end
local cur_pos = tonumber(m.active)
local next_pos
if next_id ~= '' then
  next_pos = tonumber(rcall('HGET', k_index, next_id))
  if not next_pos then return fail('PARTICIPANT_NOT_FOUND', { participant_id = next_id }) end
else
  next_pos = (cur_pos + 1) % m.n
end
local cur = get_p(k_parts, cur_pos)

local now = now_ms()

local elapsed = now - tonumber(m.cycle_at)
fold(cur, elapsed)
cur.cycle_count = cur.cycle_count + 1
cur.is_active = false
local extra = ''
local ev = event_for('cycle_switched', cur, elapsed)
if cur.has_expired then
  extra = ',"expired_participant_id":"' .. cur.participant_id .. '"'
  ev.type = 'participant_expired'
elseif m.incr ~= '' then
  cur.total_time_ms = cur.total_time_ms + tonumber(m.incr)
  ev.remaining = cur.total_time_ms
end
local nxt = cur
if next_pos ~= cur_pos then nxt = get_p(k_parts, next_pos) end
nxt.is_active = true
local changed = { { cur_pos, enc_p(cur) } }
if next_pos ~= cur_pos then changed[2] = { next_pos, enc_p(nxt) } end
for _, c in ipairs(changed) do rcall('HSET', k_parts, c[1], c[2]) end
m.version, m.active, m.active_id = m.version + 1, int(next_pos), nxt.participant_id
m.cycle_at, m.updated_at = int(now), int(now)
save_meta(k_meta, k_parts, k_index, m)

return emit(k_parts, k_stream, channel, cap, m, now, extra, changed, ev)
