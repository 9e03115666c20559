--[[ completeSession: pending|running|paused -> completed. A running turn is
charged first; then nobody is active.

KEYS[1] meta       sk:{<shard>}:session:<id>
KEYS[2] parts      sk:{<shard>}:session:<id>:parts
KEYS[3] index      sk:{<shard>}:session:<id>:index
KEYS[4] stream     sk:{<shard>}:events
KEYS[5] deadlines  sk:{<shard>}:deadlines

ARGV[1] session_id        UUID
ARGV[2] channel           sk:{<shard>}:session:<id>:state
ARGV[3] event_cap         integer (see createSession)
ARGV[4] expected_version  integer or ""

Returns: {kind, json} (see lua/README.md)
Errors:  SESSION_NOT_FOUND; CONFLICT; INVALID_STATE_TRANSITION; STREAM_FULL
Publishes: ARGV[2] <- STATE_UPDATE or STATE_DELTA
Events:  session_completed
Time:    session_completed_at = updated_at = Redis TIME in ms; the running
  turn is charged up to where its clock ran out; the session leaves KEYS[5].
]]
-- @include common

local k_meta, k_parts, k_index, k_stream, k_dl = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local sid, channel, cap, expected = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

local m = load_meta(k_meta)
local e = check_common(m, sid, expected, k_stream, cap)
if e then return e end
if m.status ~= 'pending' and m.status ~= 'running' and m.status ~= 'paused' then
  return bad_transition(m, 'completed')
end
local pos, p = tonumber(m.active), nil
if pos then p = get_p(k_parts, pos) end

local now = now_ms()

local changed, ev, elapsed = {}, { type = 'session_completed' }, 0
if p then
  if m.status == 'running' then
    elapsed = run_ms(m, p, now)
    charge(m, p, elapsed)
  end
  p.is_active = false
  local frag = enc_p(p)
  rcall('HSET', k_parts, pos, frag)
  changed[1] = { pos, frag }
  ev = event_for('session_completed', p, elapsed)
end
m.status, m.version, m.active, m.active_id = 'completed', m.version + 1, '', ''
m.cycle_at, m.completed_at, m.updated_at = '', int(now), int(now)
save_meta(k_meta, k_parts, k_index, m)
sync_deadline(k_dl, m, nil)

return emit(k_parts, k_stream, channel, cap, m, now, '', changed, ev)
