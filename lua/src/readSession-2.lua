--[[ readSession: read a session as stored, for a caller that renders the v1 state
itself (Go's engine does: the head's JSON is then not built in Redis). Read-only. A caller
that wants the state as JSON calls getSession.

KEYS[1] meta   sk:{<shard>}:session:<id>
KEYS[2] parts  sk:{<shard>}:session:<id>:parts

ARGV[1] session_id  UUID

Returns: {now_ms, cfg, st, p0, p1, ..., pN-1}: the Redis time (integer ms), the
  session's packed cfg (meta hash) and st (parts hash: lua/README.md "The meta hash"), and the participant at
  rotation position i; or {} when the session is stored field by field (written before
  the packing and not since): read it with getSession.
Errors:  SESSION_NOT_FOUND {session_id}
Publishes: nothing
Time:    now_ms = Redis TIME in ms at the read (the state's server_time_ms).
]]
-- @include prelude
-- @include clock
-- @include meta
-- @include fragments

local k_meta, k_parts = KEYS[1], KEYS[2]
local c = rcall('HGET', k_meta, 'cfg')
if not c then
  if rcall('EXISTS', k_meta) == 0 then return fail('SESSION_NOT_FOUND', { session_id = ARGV[1] }) end
  return {}
end
local _, _, _, n = cfg_slots(c)
local out = { now_ms(), c }
-- st is the parts hash's field n (revisions 2 and 3 kept it in the meta
-- hash): load_meta's read, without decoding anything (a read through
-- load_meta costs 113k instructions against this one's 86k)
if n <= FULL_MAX then
  local r = rcall('HMGET', k_parts, unpack(POSITIONS, 1, n + 1))
  out[3] = r[n + 1] or rcall('HGET', k_meta, 'st')
  for i = 1, n do out[i + 3] = r[i] end
  return out
end
out[3] = rcall('HGET', k_parts, fmt('%d', n)) or rcall('HGET', k_meta, 'st')
return append_all(k_parts, n, out)
