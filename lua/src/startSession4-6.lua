--[[ startSession4: pending -> running; the participant with the lowest
participant_index becomes active.

KEYS[1] meta       sk:{<shard>}:session:<id>
KEYS[2] parts      sk:{<shard>}:session:<id>:parts
KEYS[3] index      sk:{<shard>}:session:<id>:index
KEYS[4] stream     sk:{<shard>}:events
KEYS[5] deadlines  sk:{<shard>}:deadlines   zset: session_id -> next deadline (ms)
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
Errors:  IDEMPOTENCY_KEY_REUSED {reason}; SESSION_NOT_FOUND {session_id}; CONFLICT {expected_version, actual_version};
  INVALID_STATE_TRANSITION {from, to, version}; STREAM_FULL {stream_max}
Publishes: by SPUBLISH (sharded Pub/Sub), ARGV[2] <- the same packed message
Events:  session_started
Time:    cycle_started_at = session_started_at = updated_at = Redis TIME in ms;
  the turn's deadline goes into KEYS[5].
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
if m.status ~= 'pending' then return bad_transition(m, 'running') end
local p = get_p(k_parts, 0)

local now = now_ms()

p.is_active = true
begin_turn(m, p, now)
local frag = enc_p(p)
m.status, m.version, m.active, m.active_id = 'running', m.version + 1, '0', p.participant_id
m.started_at, m.updated_at = now, now
save_meta(k_meta, k_parts, k_index, m, { { 0, frag } })
sync_deadline(k_dl, m, p)

local ev = event_for('session_started', p, 0)
ev.actor = actor
return kept(idem, emit(k_parts, k_stream, channel, cap, m, now, '', { { 0, frag } }, ev), k_parts, m, now, '')
