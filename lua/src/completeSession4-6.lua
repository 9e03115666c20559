--[[ completeSession4: pending|running|paused -> completed. A running turn is
charged first; then nobody is active.

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
ARGV[5] message_channel   sk:{<shard>}:session:<id>:msg, or ""/absent: publish no TIME_EXPIRED
ARGV[6] idem_fingerprint  the request's fingerprint, or ""/absent: no Idempotency-Key
ARGV[7] idem_ttl_ms       integer ms the record lives (when ARGV[6] is set)
ARGV[8] actor             who asked (a token's sub), or ""/absent; recorded in the event

A complete that lands after the running turn's deadline, before any
scheduler applied it, first applies that expiry exactly as expireSession
does (its own version, event and TIME_EXPIRED), then completes unless the
expiry ended the session (`expired` stays).

Returns: the message (a bulk string: lua/README.md "Packed messages") of the
  state, whole up to 32 participants, above as a delta; or {"replay", payload}, the kept reply of a call
  with the same Idempotency-Key and request, which changed nothing (lua/README.md "Idempotency"). A late complete
  (one that applies an expiry first) replies with the state after both steps (above 32
  participants a delta from the version before both), or the expired state when the
  expiry ended the session.
Errors:  IDEMPOTENCY_KEY_REUSED {reason}; SESSION_NOT_FOUND; CONFLICT; INVALID_STATE_TRANSITION; STREAM_FULL
  (a late complete needs room for two events)
Publishes: by SPUBLISH (sharded Pub/Sub), ARGV[2] <- the same packed message; a late complete first
  publishes the expiry's state on ARGV[2], then TIME_EXPIRED on ARGV[5]
Events:  session_completed; a late complete first participant_expired or session_expired
Time:    session_completed_at = updated_at = Redis TIME in ms; the running
  turn is charged up to where its clock ran out; the session leaves KEYS[5].
]]
-- @include prelude
-- @include clock
-- @include meta
-- @include encoding
-- @include emit
-- @include idempotency
-- @include deadlines
-- @include fragments
-- @include expiry

local k_meta, k_parts, k_index, k_stream, k_dl = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local sid, channel, cap, expected, msg_ch = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local idem = (ARGV[6] or '') ~= '' and { key = KEYS[6], fp = ARGV[6], ttl = ARGV[7] } or nil -- nil: no key
local actor = ARGV[8] or ''
local replay = replayed(idem)
if replay then return replay end

local m = load_meta(k_meta, k_parts)
local e = check_common(m, sid, expected, k_stream, cap)
if e then return e end
if m.status ~= 'pending' and m.status ~= 'running' and m.status ~= 'paused' then
  return bad_transition(m, 'completed')
end
local pos, p = tonumber(m.active), nil
if pos then p = get_p(k_parts, pos) end

local now = now_ms()

local changed, ev, elapsed = {}, { type = 'session_completed' }, 0
local base, first = m.version, {}
if p and m.status == 'running' then
  local st = stop_turn({ meta = k_meta, parts = k_parts, index = k_index, stream = k_stream, dl = k_dl,
    channel = channel, cap = cap, msg = msg_ch }, m, p, pos, now)
  if st.err then return st.err end
  if st.done then return kept(idem, st.done, k_parts, m, now, '') end
  p, pos, elapsed, first, changed = st.p, st.pos, st.elapsed, st.first, st.changed
end
if p then
  p.is_active = false
  table.insert(changed, 1, { pos, enc_p(p) })
  ev = event_for('session_completed', p, elapsed)
end
m.status, m.version, m.active, m.active_id = 'completed', m.version + 1, '', ''
m.cycle_at, m.completed_at, m.updated_at = '', now, now
save_meta(k_meta, k_parts, k_index, m, changed)
sync_deadline(k_dl, m, nil)

ev.actor = actor
local r = emit(k_parts, k_stream, channel, cap, m, now, '', changed, ev)
if m.version > base + 1 then r = merge_reply(r, m, now, base, first, changed) end
return kept(idem, r, k_parts, m, now, '')
