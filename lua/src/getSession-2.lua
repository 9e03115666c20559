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
-- @include fragments

local k_meta, k_parts = KEYS[1], KEYS[2]
local sid = ARGV[1]

local m = load_meta(k_meta, k_parts)
if not m then return fail('SESSION_NOT_FOUND', { session_id = sid }) end

local now = now_ms()

-- fragments are stored packed: each is rendered as v1 JSON here
local out = { json_head(m, now, '') }
for i, f in ipairs(all_parts(k_parts, m)) do out[i + 1] = json_p(f) end
return out
