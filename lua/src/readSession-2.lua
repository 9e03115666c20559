--[[ readSession: read a session as stored, for a caller that renders the v1 state
itself (Go's engine does: the head's JSON is then not built in Redis). Read-only. A caller
that wants the state as JSON calls getSession.

KEYS[1] meta   sk:{<shard>}:session:<id>
KEYS[2] parts  sk:{<shard>}:session:<id>:parts

ARGV[1] session_id  UUID

Returns: {now_ms, cfg, st, p0, p1, ..., pN-1}: the Redis time (integer ms), the meta
  hash's packed cfg and st (lua/README.md "The meta hash"), and the participant at
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
local v = rcall('HMGET', k_meta, 'cfg', 'st')
if not v[2] then
  if rcall('EXISTS', k_meta) == 0 then return fail('SESSION_NOT_FOUND', { session_id = ARGV[1] }) end
  return {}
end
local _, _, _, n = cfg_slots(v[1])
return append_all(k_parts, n, { now_ms(), v[1], v[2] })
