-- Generated from lua/src/readSession-2.lua by `go generate ./lua`: edit the source, not this file.
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
-- cold() returns the helpers marked @cold in lua/src/include, building them
-- on first use: only rare paths call them (the build routes their calls).
local cold
-- What every script starts with: the redis.call and string.format aliases
-- (fmt('%d', n) formats an integer: a helper for it would be one more
-- closure per call), error replies, and the size and lifetime constants.

-- Shared helpers, pasted into every script by the build (`make lua`).
local rcall = redis.call
local fmt = string.format
local floor = math.floor

-- FULL_MAX: sessions with at most this many participants publish and return
-- the full state; larger ones publish a delta of the participants that changed,
-- so a switch costs the same at 1000 participants as at 4.
-- FULL_MAX = 32: the build writes the value where the name is used
-- the hash fields of positions 0..FULL_MAX, as strings (field n holds st,
-- after a session's last participant): a number passed to redis.call is
-- formatted on every call
local POSITIONS = { '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15',
  '16', '17', '18', '19', '20', '21', '22', '23', '24', '25', '26', '27', '28', '29', '30', '31', '32' }
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
-- The binary layouts the scripts store, publish and record, and the readers
-- of the older ones.

-- Every value a transition writes is one tag byte, then its slots packed
-- by Redis's struct library, big-endian (lua/README.md "Layouts"; Go's
-- fullstate/binary.go and Node's testdata/node/packed.mjs read them).
-- struct.unpack hands the slots back as values, where cmsgpack built a
-- table one slot at a time (~1k Redis instructions a slot: bench/RESULTS.md
-- "Revision 4"). Hc0 and Ic0 are a 16- or 32-bit length, then the bytes.
-- The letters go without sizes (c and B 1 byte, H 2, i and I 4, l 8: struct's
-- native sizes on the LP64 platforms Redis runs on), so struct parses no
-- digits on every call; lua/README.md "Layouts" writes them as sizes.
-- CFG = '>cHc0Hc0IHc0Hc0Hc0Hc0Hc0Ic0lHc0l': the build writes the value where the name is used
local sunpack = rawget(_G, 'struct') and struct.unpack
-- unpack_value reads an array of an older layout: revision 3's
-- MessagePack, or the embedded Redis's JSON.
local unpack_value = rawget(_G, 'cmsgpack') and cmsgpack.unpack or cjson.decode

-- cfg_slots returns a stored cfg's tag (or nil for an older layout), then
-- its 12 slots.
local function cfg_slots(c)
  if string.byte(c, 1) == 67 then return sunpack('>cHc0Hc0IHc0Hc0Hc0Hc0Hc0Ic0lHc0l', c) end -- 'C'
  return nil, unpack(unpack_value(c), 1, 12)
end

-- append_all appends the fragments of positions 0..n-1 to out, one HMGET
-- per 200 (Lua's unpack has a C-stack limit of a few thousand values).
local function append_all(k_parts, n, out)
  for i = 0, n - 1, 200 do
    local idx = {}
    for j = i, math.min(i + 199, n - 1) do idx[#idx + 1] = j end
    local frags = rcall('HMGET', k_parts, unpack(idx))
    for _, f in ipairs(frags) do out[#out + 1] = f end
  end
  return out
end
cold = function()

-- fail is an error reply: CODE, then the details as JSON.
-- @cold
local function fail(code, details)
  return redis.error_reply(code .. ' ' .. cjson.encode(details))
end
  local t = { fail = fail }
  cold = function() return t end
  return t
end

local k_meta, k_parts = KEYS[1], KEYS[2]
local c = rcall('HGET', k_meta, 'cfg')
if not c then
  if rcall('EXISTS', k_meta) == 0 then return cold().fail('SESSION_NOT_FOUND', { session_id = ARGV[1] }) end
  return {}
end
local _, _, _, n = cfg_slots(c)
local out = { now_ms(), c }
-- st is the parts hash's field n (revisions 2 and 3 kept it in the meta hash)
if n <= 32 then
  local r = rcall('HMGET', k_parts, unpack(POSITIONS, 1, n + 1))
  out[3] = r[n + 1] or rcall('HGET', k_meta, 'st')
  for i = 1, n do out[i + 3] = r[i] end
  return out
end
out[3] = rcall('HGET', k_parts, fmt('%d', n)) or rcall('HGET', k_meta, 'st')
return append_all(k_parts, n, out)
