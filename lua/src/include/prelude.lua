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
local FULL_MAX = 32
-- the hash fields of positions 0..FULL_MAX, as strings (field n holds st,
-- after a session's last participant): a number passed to redis.call is
-- formatted on every call
local POSITIONS = { '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15',
  '16', '17', '18', '19', '20', '21', '22', '23', '24', '25', '26', '27', '28', '29', '30', '31', '32' }

-- TTLs (ms). Running and paused sessions never expire.
local TTL_PENDING = 86400000
local TTL_FINISHED = 3600000


-- hset_flat writes flat = {field, value, ...} to the hash key in chunks:
-- Lua's unpack has a C-stack limit of a few thousand values.
local function hset_flat(key, flat)
  for i = 1, #flat, 200 do rcall('HSET', key, unpack(flat, i, math.min(i + 199, #flat))) end
end

-- fail is an error reply: CODE, then the details as JSON.
-- @cold
local function fail(code, details)
  return redis.error_reply(code .. ' ' .. cjson.encode(details))
end
