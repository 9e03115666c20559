--[[ pauseSession: running -> paused. The running turn's time is charged to
the active participant, who stays active; cycle_started_at becomes null.

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
Events:  session_paused
Time:    elapsed = now - cycle_started_at (Redis TIME, ms), capped where the
  clock ran out; the session leaves KEYS[5].
]]
-- @include common

local k_meta, k_parts, k_index, k_stream, k_dl = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local sid, channel, cap, expected = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

local m = load_meta(k_meta)
local e = check_common(m, sid, expected, k_stream, cap)
if e then return e end
if m.status ~= 'running' then return bad_transition(m, 'paused') end
local pos = tonumber(m.active)
local p = get_p(k_parts, pos)

local now = now_ms()

local elapsed = run_ms(m, p, now)
charge(m, p, elapsed)
local frag = enc_p(p)
rcall('HSET', k_parts, pos, frag)
m.status, m.version, m.cycle_at, m.updated_at = 'paused', m.version + 1, '', int(now)
save_meta(k_meta, k_parts, k_index, m)
sync_deadline(k_dl, m, p)

return emit(k_parts, k_stream, channel, cap, m, now, '', { { pos, frag } }, event_for('session_paused', p, elapsed))
