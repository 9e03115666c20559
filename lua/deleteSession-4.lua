--[[ deleteSession: remove every key of the session. Idempotent: deleting an
absent session is not an error and announces nothing.

KEYS[1] meta    sk:{<shard>}:session:<id>
KEYS[2] parts   sk:{<shard>}:session:<id>:parts
KEYS[3] index   sk:{<shard>}:session:<id>:index
KEYS[4] stream  sk:{<shard>}:events

ARGV[1] session_id        UUID
ARGV[2] channel           sk:{<shard>}:session:<id>:state
ARGV[3] event_cap         integer (see createSession)
ARGV[4] expected_version  integer or ""

Returns: 1 if the session existed, 0 if not.
Errors:  CONFLICT {expected_version, actual_version}; STREAM_FULL {stream_max}
Publishes: ARGV[2] <- {"type":"SESSION_DELETED","sessionId","timestamp","version"}
Events:  session_deleted (version = the deleted state's version + 1)
Time:    timestamp = Redis TIME in ms.
]]
-- Generated from lua/src by `make lua`: edit the source, not this file.
-- Shared helpers, pasted into every script by the build (`make lua`).
local rcall = redis.call
local fmt = string.format
local floor = math.floor

local function int(x)
  return fmt('%d', x)
end

-- now_ms is the only clock: Redis TIME, truncated to whole milliseconds.
local function now_ms()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
end

local function fail(code, details)
  return redis.error_reply(code .. ' ' .. cjson.encode(details))
end

-- check_common validates what every mutating script checks first.
local function check_common(m, sid, expected, stream, cap)
  if not m then return fail('SESSION_NOT_FOUND', { session_id = sid }) end
  if expected ~= '' and tonumber(expected) ~= m.version then
    return fail('CONFLICT', { expected_version = tonumber(expected), actual_version = m.version })
  end
  if cap > 0 and rcall('XLEN', stream) >= cap then
    return fail('STREAM_FULL', { stream_max = cap })
  end
  return nil
end

local k_meta, k_parts, k_index, k_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sid, channel, cap, expected = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

local version = tonumber(rcall('HGET', k_meta, 'version'))
if not version then return 0 end
local e = check_common({ version = version }, sid, expected, k_stream, cap)
if e then return e end

local now = now_ms()

rcall('DEL', k_meta, k_parts, k_index)
rcall('PUBLISH', channel, '{"type":"SESSION_DELETED","sessionId":"' .. sid .. '","timestamp":' .. int(now)
  .. ',"version":' .. int(version + 1) .. '}')
if cap > 0 then
  rcall('XADD', k_stream, '*', 'type', 'session_deleted', 'session_id', sid, 'version', int(version + 1),
    'participant_id', '', 'group_id', '', 'time_remaining_ms', '', 'time_elapsed_ms', '',
    'cycle_number', '', 'timestamp', int(now), 'state_kind', '', 'state', '')
end
return 1
