-- Issue 13's logic-free stand-in of a switch: only the calls a switch
-- cannot avoid. Read the session fields a switch needs and the two
-- participants it touches, TIME, write both participants and the session
-- back, SPUBLISH a message as large as a switch's (ARGV[1]: the caller
-- gives one as large as a 4-participant STATE_UPDATE, 1,430 bytes), XADD the
-- audit event. KEYS: a session hash, the parts hash, the channel, the stream.
local m = redis.call('HMGET', KEYS[1], 'status', 'version', 'life', 'n', 'active', 'active_id', 'mode', 'cycle_at',
  'turn', 'used', 'warned', 'incr', 'per_cycle', 'max', 'warn')
local a = redis.call('HGET', KEYS[2], '0')
local b = redis.call('HGET', KEYS[2], '1')
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], '0', a, '1', b)
redis.call('HSET', KEYS[1], 'status', 'running', 'version', '7', 'active', '1', 'active_id', 'x', 'cycle_at', t[1],
  'updated_at', t[1], 'turn', '0', 'used', '5', 'warned', '0')
redis.call('SPUBLISH', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[4], '*', 'type', 'cycle_switched', 'session_id', 'abc', 'version', '7', 'life', '1',
  'participant_id', 'p', 'group_id', '', 'time_remaining_ms', '100', 'time_elapsed_ms', '5', 'cycle_number', '3',
  'timestamp', t[1], 'state_kind', 'full', 'state', ARGV[1], 'actor', '')
return {'full', ARGV[1]}
