--[[ switchCycle5: end the active participant's turn and start the next one
who has not expired. The hot path: O(1) in the number of participants
(skipping expired participants reads one fragment each; in per_group the
charged group's other members are rewritten to show its bank: O(group size)).

KEYS[1] meta       sk:{<shard>}:session:<id>
KEYS[2] parts      sk:{<shard>}:session:<id>:parts
KEYS[3] index      sk:{<shard>}:session:<id>:index
KEYS[4] stream     sk:{<shard>}:events
KEYS[5] deadlines  sk:{<shard>}:deadlines
KEYS[6] idem       sk:{<shard>}:session:<id>:idem:<key>   the Idempotency-Key record
KEYS[7] budget     sk:{<shard>}:session:<id>:rl   string: the per-session switch budget's TAT,
                   epoch µs (GCRA, as in rateLimit-1); absent when the budget is full
KEYS[8] caller     the caller's request budget (rateLimit-1's KEYS[1]: sk:rl:ip:<ip> or
                   sk:rl:sub:<sub>), when ARGV[13] is set; on a single Redis only, for
                   it is in no session's slot. Otherwise any key of the session's slot
                   (the engine repeats KEYS[7]): it is not touched

ARGV[1] session_id              UUID
ARGV[2] channel                 sk:{<shard>}:session:<id>:state
ARGV[3] event_cap               integer (see createSession)
ARGV[4] expected_version        integer or ""
ARGV[5] current_participant_id  UUID or "": the caller says whose turn ends
ARGV[6] next_participant_id     UUID or "": "" = next not expired by participant_index, wrapping;
                                one that expires in this switch (the current participant, or
                                in per_group a group-mate of theirs) is replaced the same way
ARGV[7] message_channel         sk:{<shard>}:session:<id>:msg, or ""/absent: publish no TIME_EXPIRED
ARGV[8] idem_fingerprint  the request's fingerprint, or ""/absent: no Idempotency-Key
ARGV[9] idem_ttl_ms       integer ms the record lives (when ARGV[8] is set)
ARGV[10] actor             who asked (a token's sub), or ""/absent; recorded in the event
ARGV[11] budget_burst      integer >= 1: switches the session may make at once, or ""/absent:
                           no per-session budget (KEYS[7] is then not touched)
ARGV[12] budget_interval_us  integer µs >= 1: one switch earned back per interval
ARGV[13] caller_burst        integer >= 1: the caller's requests at once, or ""/absent: the
                             caller's budget is charged elsewhere (KEYS[8] is then not touched)
ARGV[14] caller_interval_us  integer µs >= 1: one request earned back per interval

Returns: the message (a bulk string: lua/README.md "Packed messages") of the
  state, whole up to 32 participants, above as a delta, or, with a budget,
  {message, budget_remaining, budget_reset_after_us}; the message's expired_id names
  the participant whose ending turn ran out of time ("expired_participant_id" in the head); or {"replay", payload}, the kept reply of a call
  with the same Idempotency-Key and request, which changed nothing (lua/README.md "Idempotency"),
  charging the session's budget nothing. With the caller's budget (ARGV[13]) the reply is
  always an array, and its last two elements are caller_remaining and
  caller_reset_after_us: {message, caller_remaining, caller_reset_after_us},
  {message, budget_remaining, budget_reset_after_us, caller_remaining, caller_reset_after_us}
  or {"replay", payload, caller_remaining, caller_reset_after_us}.
Errors:  IDEMPOTENCY_KEY_REUSED {reason}; RATE_LIMITED {budget, limit, retry_after_us, reset_after_us}
  (budget "caller" or "session" is spent and not charged, nothing changed; with "session" the
  caller's budget was charged); SESSION_NOT_FOUND {session_id}; CONFLICT {expected_version, actual_version}
  or {expected_participant_id, active_participant_id, actual_version};
  INVALID_STATE_TRANSITION {from, to, version}; PARTICIPANT_NOT_FOUND {participant_id};
  VALIDATION_ERROR {field, message} (next_participant_id has expired); STREAM_FULL {stream_max}
Publishes: by SPUBLISH (sharded Pub/Sub), ARGV[2] <- the same packed message; ARGV[7] <- TIME_EXPIRED when this
  switch is the first to see a clock run out
Events:  cycle_switched; participant_expired when the ending turn ran out here;
  session_expired when the session's time ran out or nobody is left
Budgets: the caller's first of all, replays included, as rateLimit-1 before the call would;
  then the session's, once the call is not a replay, before any other check, so a refused
  switch (CONFLICT, ...) costs one as an HTTP request did before it reached the script.
Time:    elapsed = now - cycle_started_at, capped where the clock ran out;
  cycle_started_at = now (Redis TIME, ms); the next deadline goes into KEYS[5].
]]
-- @include prelude
-- @include clock
-- @include meta
-- @include encoding
-- @include emit
-- @include idempotency
-- @include modes
-- @include deadlines
-- @include groups
-- @include fragments
-- @include rotation
-- @include expiry
-- @include gcra

local k_meta, k_parts, k_index, k_stream, k_dl = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local sid, channel, cap, expected = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local current_id, next_id, msg_ch = ARGV[5], ARGV[6], ARGV[7]
local idem = (ARGV[8] or '') ~= '' and { key = KEYS[6], fp = ARGV[8], ttl = ARGV[9] } or nil -- nil: no key
local actor = ARGV[10] or ''
local burst, interval = ARGV[11] and tonumber(ARGV[11]), ARGV[12] and tonumber(ARGV[12])
local c_burst, c_interval = ARGV[13] and tonumber(ARGV[13]), ARGV[14] and tonumber(ARGV[14])

-- time: one TIME serves the budgets (µs) and the switch (ms)
local now_u = now_us()
local now = floor(now_u / 1000)

-- spend charges one call to the budget at key (which names `budget` in a
-- refusal) and returns what remains and the µs until it is full; when it
-- is spent, nothing is stored and the third value is the RATE_LIMITED
-- error. Made only when a budget is given: a closure costs every call.
local spend
if burst or c_burst then
  spend = function(key, budget, burst, interval)
    local ok, rem, retry, reset, tat = gcra(rcall('GET', key), now_u, burst, interval, 1)
    if not ok then
      return nil, nil, fail('RATE_LIMITED', { budget = budget, limit = burst, retry_after_us = retry,
        reset_after_us = reset })
    end
    store_tat(key, tat, now_u)
    return rem, reset
  end
end
local c_rem, c_reset
if c_burst then
  local e
  c_rem, c_reset, e = spend(KEYS[8], 'caller', c_burst, c_interval)
  if e then return e end
end
local replay = replayed(idem)
if replay then
  if c_burst and not replay.err then return { replay[1], replay[2], c_rem, c_reset } end
  return replay
end
local b_rem, b_reset
if burst then
  local e
  b_rem, b_reset, e = spend(KEYS[7], 'session', burst, interval)
  if e then return e end
end

local m = load_meta(k_meta, k_parts)
local e = check_common(m, sid, expected, k_stream, cap)
if e then return e end
if m.status ~= 'running' then return bad_transition(m, 'running') end
if current_id ~= '' and current_id ~= m.active_id then
  return fail('CONFLICT', { expected_participant_id = current_id, active_participant_id = m.active_id,
    actual_version = m.version })
end
local cur_pos = tonumber(m.active)
local next_pos, named
if next_id ~= '' then
  next_pos = tonumber(rcall('HGET', k_index, next_id))
  if not next_pos then return fail('PARTICIPANT_NOT_FOUND', { participant_id = next_id }) end
  if next_pos ~= cur_pos then named = get_p(k_parts, next_pos) end
  if named and named.has_expired then
    return fail('VALIDATION_ERROR', { field = 'next_participant_id', message = 'has expired' })
  end
end
local cur = get_p(k_parts, cur_pos)

local was_expired = cur.has_expired
local elapsed = run_ms(m, cur, now)
charge(m, cur, elapsed)
cur.cycle_count = cur.cycle_count + 1
cur.is_active = false
local expired, announce = '', false
local ev = event_for('cycle_switched', cur, elapsed)
ev.actor = actor
local changed = {}
sync_group(k_parts, m, cur, cur_pos, changed)
local sl, pl = sess_left(m), part_left(m, cur)
m.version, m.updated_at = m.version + 1, now
if sl and sl <= 0 then
  end_expired(m, now)
  ev.type, announce = 'session_expired', true
else
  if was_expired or (pl and pl <= 0) then
    expired = cur.participant_id
    if not was_expired then
      cur.has_expired, ev.type, announce = true, 'participant_expired', true
    end
  elseif m.incr ~= '' and m.mode == 'per_participant' then
    cur.total_time_ms = cur.total_time_ms + tonumber(m.incr)
    ev.remaining = cur.total_time_ms
  end
end
local nxt
if m.status == 'running' then
  if next_id ~= '' then
    nxt = named or cur
    -- as read, unless sync_group rewrote it (a group-mate of the current)
    for _, c in ipairs(changed) do
      if c[1] == next_pos then nxt = dec_p(c[2]) end
    end
    -- the named next expired in this very switch (the current participant
    -- itself, or a group-mate of theirs): the rotation picks instead
    if nxt.has_expired then nxt = nil end
  end
  if not nxt then next_pos, nxt = next_live(k_parts, m, cur_pos, cur) end
  if not nxt then
    end_expired(m, now)
    ev.type, announce = 'session_expired', true
  else
    nxt.is_active = true
    begin_turn(m, nxt, now)
    m.active, m.active_id = next_pos, nxt.participant_id
  end
end
table.insert(changed, 1, { cur_pos, enc_p(cur) })
if nxt and next_pos ~= cur_pos then set_frag(changed, next_pos, enc_p(nxt)) end
save_meta(k_meta, k_parts, k_index, m, changed)
sync_deadline(k_dl, m, nxt)

local r = emit(k_parts, k_stream, channel, cap, m, now, expired, changed, ev)
if announce then
  local who
  if cur.has_expired and not was_expired then who = cur.participant_id end
  time_expired(msg_ch, m, who, now)
end
r = kept(idem, r, k_parts, m, now, expired)
if c_burst then
  if burst then return { r, b_rem, b_reset, c_rem, c_reset } end
  return { r, c_rem, c_reset }
end
if burst then return { r, b_rem, b_reset } end
return r
