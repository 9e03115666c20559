-- Publishing a change and appending its audit event.
-- @include prelude
-- @include encoding

-- emit publishes the change and appends its audit event, then returns the
-- reply, the message itself (a table reply costs Redis ~6k instructions
-- more to convert): the whole state up to FULL_MAX participants,
-- above it the participants at `changed` positions (changed = {{pos,
-- fragment}, ...}), from version ev.base (default: the one before). One
-- message serves the channel, the stream and the reply. expired names the
-- participant whose ending turn ran out ('' for none). ev.actor names who
-- asked ('' when nobody said: auth off, or the server's own expiry).
local function emit(k_parts, k_stream, channel, cap, m, now, expired, changed, ev)
  local msg
  if m.n <= FULL_MAX then msg = full(k_parts, m, now, expired)
  else msg = delta(m, now, expired, changed, ev.base or (m.version - 1)) end
  rcall('SPUBLISH', channel, msg)
  if cap > 0 then
    -- the event's figures go packed in one field: a number passed to
    -- redis.call is formatted by sprintf
    rcall('XADD', k_stream, '*', 'type', ev.type, 'session_id', m.id, 'event', pack_event(m, ev, now),
      'state', msg)
  end
  return msg
end

-- event_for describes participant p for the audit event.
local function event_for(typ, p, elapsed)
  local remaining = p.total_time_ms
  if remaining < 0 then remaining = 0 end
  return { type = typ, pid = p.participant_id, gid = p.group_id, remaining = remaining,
    elapsed = elapsed, cycle = p.cycle_count }
end
