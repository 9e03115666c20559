--[[ deleteSession2: remove every key of the session. Idempotent: deleting an
absent session is not an error and announces nothing.

KEYS[1] meta    sk:{<shard>}:session:<id>
KEYS[2] parts   sk:{<shard>}:session:<id>:parts
KEYS[3] index   sk:{<shard>}:session:<id>:index
KEYS[4] stream  sk:{<shard>}:events
KEYS[5] idem       sk:{<shard>}:session:<id>:idem:<key>   the Idempotency-Key record

ARGV[1] session_id        UUID
ARGV[2] channel           sk:{<shard>}:session:<id>:state
ARGV[3] event_cap         integer (see createSession)
ARGV[4] expected_version  integer or ""
ARGV[5] idem_fingerprint  the request's fingerprint, or ""/absent: no Idempotency-Key
ARGV[6] idem_ttl_ms       integer ms the record lives (when ARGV[5] is set)
ARGV[7] actor             who asked (a token's sub), or ""/absent; recorded in the event

Returns: 1 if the session existed, 0 if not; {"replay", "1"|"0"} repeats a call with the
  same Idempotency-Key and request, changing nothing.
Errors:  IDEMPOTENCY_KEY_REUSED {reason}; CONFLICT {expected_version, actual_version}; STREAM_FULL {stream_max}
Publishes: by SPUBLISH (sharded Pub/Sub), ARGV[2] <- {"type":"SESSION_DELETED","sessionId","timestamp","version","life"}
Events:  session_deleted (version = the deleted state's version + 1, life = the deleted life)
Time:    timestamp = Redis TIME in ms.
]]
-- @include prelude
-- @include clock
-- @include meta
-- @include idempotency

local k_meta, k_parts, k_index, k_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sid, channel, cap, expected = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local idem = (ARGV[5] or '') ~= '' and { key = KEYS[5], fp = ARGV[5], ttl = ARGV[6] } or nil -- nil: no key
local actor = ARGV[7] or ''
local replay = replayed(idem)
if replay then return replay end

local m = load_meta(k_meta, k_parts)
if not m then
  keep(idem, '0')
  return 0
end
local e = check_common(m, sid, expected, k_stream, cap)
if e then return e end

local now = now_ms()

rcall('DEL', k_meta, k_parts, k_index)
rcall('SPUBLISH', channel, '{"type":"SESSION_DELETED","sessionId":"' .. sid .. '","timestamp":' .. fmt('%d', now)
  .. ',"version":' .. fmt('%d', m.version + 1) .. ',"life":' .. fmt('%d', m.life) .. '}')
if cap > 0 then
  rcall('XADD', k_stream, '*', 'type', 'session_deleted', 'session_id', sid, 'version', fmt('%d', m.version + 1),
    'life', fmt('%d', m.life), 'participant_id', '', 'group_id', '', 'time_remaining_ms', '', 'time_elapsed_ms', '',
    'cycle_number', '', 'timestamp', fmt('%d', now), 'state_kind', '', 'state', '', 'actor', actor)
end
keep(idem, '1')
return 1
