--[[ getSession: read the whole state. Read-only.

KEYS[1] meta   sk:{<shard>}:session:<id>
KEYS[2] parts  sk:{<shard>}:session:<id>:parts

ARGV[1] session_id  UUID

Returns: {head, p0, p1, ..., pN-1}: head is the state without "participants",
  p<i> the participant at rotation position i. The state is
  head minus its closing brace .. ',"participants":[' .. join(p, ',') .. ']}'.
Errors:  SESSION_NOT_FOUND {session_id}
Publishes: nothing
Time:    server_time_ms = Redis TIME in ms at the read.
]]
-- @include prelude
-- @include clock
-- @include meta
-- @include encoding

local k_meta, k_parts = KEYS[1], KEYS[2]
local sid = ARGV[1]

local m = load_meta(k_meta)
if not m then return fail('SESSION_NOT_FOUND', { session_id = sid }) end

local now = now_ms()

local out = { head(m, now, '') }
for i = 0, m.n - 1, 200 do
  local idx = {}
  for j = i, math.min(i + 199, m.n - 1) do idx[#idx + 1] = j end
  local frags = rcall('HMGET', k_parts, unpack(idx))
  for _, f in ipairs(frags) do out[#out + 1] = f end
end
return out
