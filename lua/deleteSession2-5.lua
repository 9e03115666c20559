-- Generated from lua/src/deleteSession2-5.lua by `go generate ./lua`: edit the source, not this file.
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
-- What every script starts with: the redis.call alias, integer formatting, error
-- replies, and the size and lifetime constants.

-- Shared helpers, pasted into every script by the build (`make lua`).
local rcall = redis.call
local fmt = string.format
local floor = math.floor

local function int(x)
  return fmt('%d', x)
end

local function fail(code, details)
  return redis.error_reply(code .. ' ' .. cjson.encode(details))
end
-- The clock: Redis TIME in ms, and ISO 8601 formatting of instants.

-- now_us is the only clock: Redis TIME in whole µs. seconds * 1e6 + µs
-- stays below 2^53, so a Lua number holds it exactly.
local function now_us()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- now_ms is the clock truncated to whole milliseconds, the unit of states.
local function now_ms()
  return floor(now_us() / 1000)
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
-- Idempotency-Key records (lua/README.md "Idempotency").

-- Idempotency-Key (lua/README.md "Idempotency"). idem = {key, fp, ttl}: the
-- record's key (KEYS), the request's fingerprint ("" = the call has no key)
-- and how long the record lives (ms). A record is fp, a newline, then the
-- reply's JSON; only calls that succeed leave one (an error changed nothing).

-- replayed answers a repeat: {'replay', json} for the same request,
-- IDEMPOTENCY_KEY_REUSED for another one, nil when the key is new.
local function replayed(idem)
  if idem.fp == '' then return nil end
  if not string.match(idem.ttl or '', '^[1-9]%d*$') then
    return fail('VALIDATION_ERROR', { field = 'idem_ttl_ms', message = 'must be a positive integer' })
  end
  local rec = rcall('GET', idem.key)
  if not rec then return nil end
  local n = #idem.fp
  if string.sub(rec, 1, n) == idem.fp and string.byte(rec, n + 1) == 10 then
    return { 'replay', string.sub(rec, n + 2) }
  end
  return fail('IDEMPOTENCY_KEY_REUSED', { reason = 'the key was used for a different request' })
end

-- keep records json as the reply of the call's key, if it has one.
local function keep(idem, json)
  if idem.fp ~= '' then rcall('SET', idem.key, idem.fp .. '\n' .. json, 'PX', idem.ttl) end
end

local k_meta, k_parts, k_index, k_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sid, channel, cap, expected = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local idem = { key = KEYS[5], fp = ARGV[5] or '', ttl = ARGV[6] }
local actor = ARGV[7] or ''
local replay = replayed(idem)
if replay then return replay end

local vl = rcall('HMGET', k_meta, 'version', 'life')
local version, life = tonumber(vl[1]), tonumber(vl[2]) or 0
if not version then
  keep(idem, '0')
  return 0
end
local e = check_common({ version = version }, sid, expected, k_stream, cap)
if e then return e end

local now = now_ms()

rcall('DEL', k_meta, k_parts, k_index)
rcall('SPUBLISH', channel, '{"type":"SESSION_DELETED","sessionId":"' .. sid .. '","timestamp":' .. int(now)
  .. ',"version":' .. int(version + 1) .. ',"life":' .. int(life) .. '}')
if cap > 0 then
  rcall('XADD', k_stream, '*', 'type', 'session_deleted', 'session_id', sid, 'version', int(version + 1),
    'life', int(life), 'participant_id', '', 'group_id', '', 'time_remaining_ms', '', 'time_elapsed_ms', '',
    'cycle_number', '', 'timestamp', int(now), 'state_kind', '', 'state', '', 'actor', actor)
end
keep(idem, '1')
return 1
