--[[ resumeSession4: paused -> running; the active participant's turn goes on
from now (a participant whose clock ran out stays stopped).

KEYS[1] meta       sk:{<shard>}:session:<id>
KEYS[2] parts      sk:{<shard>}:session:<id>:parts
KEYS[3] index      sk:{<shard>}:session:<id>:index
KEYS[4] stream     sk:{<shard>}:events
KEYS[5] deadlines  sk:{<shard>}:deadlines
KEYS[6] idem       sk:{<shard>}:session:<id>:idem:<key>   the Idempotency-Key record

ARGV[1] session_id        UUID
ARGV[2] channel           sk:{<shard>}:session:<id>:state
ARGV[3] event_cap         integer (see createSession)
ARGV[4] expected_version  integer or ""
ARGV[5] idem_fingerprint  the request's fingerprint, or ""/absent: no Idempotency-Key
ARGV[6] idem_ttl_ms       integer ms the record lives (when ARGV[5] is set)
ARGV[7] actor             who asked (a token's sub), or ""/absent; recorded in the event

Returns: the message (a bulk string: lua/README.md "Packed messages") of the
  state, whole up to 32 participants, above as a delta; or {"replay", payload}, the kept reply of a call
  with the same Idempotency-Key and request, which changed nothing (lua/README.md "Idempotency")
Errors:  IDEMPOTENCY_KEY_REUSED {reason}; SESSION_NOT_FOUND; CONFLICT; INVALID_STATE_TRANSITION; STREAM_FULL
Publishes: by SPUBLISH (sharded Pub/Sub), ARGV[2] <- the same packed message
Events:  session_resumed
Time:    cycle_started_at = updated_at = Redis TIME in ms; the turn's
  deadline goes into KEYS[5].
]]
-- @include prelude
-- @include clock
-- @include meta
-- @include encoding
-- @include emit
-- @include idempotency
-- @include modes
-- @include deadlines

local k_meta, k_parts, k_index, k_stream, k_dl = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local sid, channel, cap, expected = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local idem = (ARGV[5] or '') ~= '' and { key = KEYS[6], fp = ARGV[5], ttl = ARGV[6] } or nil -- nil: no key
local actor = ARGV[7] or ''
local replay = replayed(idem)
if replay then return replay end

local m = load_meta(k_meta, k_parts)
local e = check_common(m, sid, expected, k_stream, cap)
if e then return e end
if m.status ~= 'paused' then return bad_transition(m, 'running') end
local pos = tonumber(m.active)
local p = get_p(k_parts, pos)

local now = now_ms()

-- a resumed turn keeps what it ran before the pause, and its warnings
local turn, warned = m.turn, m.warned
begin_turn(m, p, now)
m.turn, m.warned = turn, warned
m.status, m.version, m.updated_at = 'running', m.version + 1, now
save_meta(k_meta, k_parts, k_index, m)
sync_deadline(k_dl, m, p)

local ev = event_for('session_resumed', p, 0)
ev.actor = actor
return kept(idem, emit(k_parts, k_stream, channel, cap, m, now, '', {}, ev), k_parts, m, now, '')
