--[[ expireSession4: apply the expiry of the running turn, if its clock has
really run out. Idempotent: it recomputes the deadline from the state, so
running it early, twice, or from many instances at once changes nothing
but the first time it is due.

KEYS[1] meta       sk:{<shard>}:session:<id>
KEYS[2] parts      sk:{<shard>}:session:<id>:parts
KEYS[3] index      sk:{<shard>}:session:<id>:index
KEYS[4] stream     sk:{<shard>}:events
KEYS[5] deadlines  sk:{<shard>}:deadlines

ARGV[1] session_id       UUID
ARGV[2] channel          sk:{<shard>}:session:<id>:state
ARGV[3] event_cap        integer (see createSession)
ARGV[4] message_channel  sk:{<shard>}:session:<id>:msg

Returns: 0 when nothing was due (the session is gone, not running, its clock
  is stopped, or its deadline is still ahead: KEYS[5] is corrected); 1 when
  it only sent a TIME_WARNING; else the message, like the other transitions.
Errors:  STREAM_FULL {stream_max} (nothing written; the deadline stays due)
Publishes: by SPUBLISH (sharded Pub/Sub), ARGV[2] <- the same packed message; then ARGV[4] <-
  {"type":"TIME_EXPIRED","sessionId","participant_id"|null,"timestamp","version"}
  (participant_id null when the session's own time ran out). Before the
  deadline, once per warnings_ms threshold and turn, only ARGV[4] <-
  {"type":"TIME_WARNING","sessionId","participant_id","remaining_ms","timestamp","version"}
Events:  participant_expired, or session_expired when the session ends
Time:    the turn is charged exactly up to its deadline; with auto_advance the
  next participant's clock starts at now (Redis TIME, ms).
]]
-- @include prelude
-- @include clock
-- @include meta
-- @include encoding
-- @include modes
-- @include deadlines
-- @include groups
-- @include expiry

local k_meta, k_parts, k_index, k_stream, k_dl = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local sid, channel, cap, msg_ch = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

local m = load_meta(k_meta, k_parts)
if not m or m.status ~= 'running' or m.cycle_at == '' then
  rcall('ZREM', k_dl, sid)
  return 0
end
local pos = tonumber(m.active)
local p = get_p(k_parts, pos)
local left = turn_left(m, p)
if not left then
  rcall('ZREM', k_dl, sid)
  return 0
end
left = math.max(left, 0)

local now = now_ms()

local due = tonumber(m.cycle_at) + left
if now < due then
  -- not over yet, but a warning threshold may have been passed: announce
  -- the lowest one passed, once per turn (m.warned)
  local remaining, passed = due - now, m.warned
  while passed < #m.warns and m.warns[passed + 1] >= remaining do passed = passed + 1 end
  local warned = passed > m.warned
  if warned then
    m.warned = passed
    save_meta(k_meta, k_parts, k_index, m)
    time_warning(msg_ch, m, p.participant_id, remaining, now)
  end
  sync_deadline(k_dl, m, p)
  return warned and 1 or 0
end
if cap > 0 and rcall('XLEN', k_stream) >= cap then return fail('STREAM_FULL', { stream_max = cap }) end

charge(m, p, left)
local changed = {}
sync_group(k_parts, m, p, pos, changed)
local ks = { meta = k_meta, parts = k_parts, index = k_index, stream = k_stream, dl = k_dl, channel = channel,
  cap = cap, msg = msg_ch }
return (expire_turn(ks, m, p, pos, left, now, changed))
