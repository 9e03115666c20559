-- Publishing a change and appending its audit event.
-- @include prelude
-- @include encoding

-- emit publishes the change and appends its audit event, then returns the
-- reply {kind, json}: kind 'full' carries the whole state, 'delta' carries
-- the session head plus the participants at `changed` positions
-- (changed = {{pos, fragment}, ...}). ev.actor names who asked ('' when
-- nobody said: auth off, or the server's own expiry).
local function emit(k_parts, k_stream, channel, cap, m, now, extra, changed, ev)
  local kind, payload, msg
  if m.n <= FULL_MAX then
    kind = 'full'
    payload = full_state(k_parts, m, now, extra)
    msg = '{"type":"STATE_UPDATE","sessionId":"' .. m.id .. '","timestamp":' .. int(now)
      .. ',"version":' .. int(m.version) .. ',"life":' .. int(m.life) .. ',"state":' .. payload .. '}'
  else
    kind = 'delta'
    payload = delta(m, now, head(m, now, extra), changed, ev.base or (m.version - 1))
    msg = payload
  end
  rcall('SPUBLISH', channel, msg)
  if cap > 0 then
    rcall('XADD', k_stream, '*', 'type', ev.type, 'session_id', m.id, 'version', int(m.version),
      'life', int(m.life), 'participant_id', ev.pid or '', 'group_id', ev.gid or '',
      'time_remaining_ms', ev.remaining and int(ev.remaining) or '',
      'time_elapsed_ms', ev.elapsed and int(ev.elapsed) or '',
      'cycle_number', ev.cycle and int(ev.cycle) or '',
      'timestamp', int(now), 'state_kind', kind, 'state', payload, 'actor', ev.actor or '')
  end
  return { kind, payload }
end

-- event_for describes participant p for the audit event.
local function event_for(typ, p, elapsed)
  local remaining = p.total_time_ms
  if remaining < 0 then remaining = 0 end
  return { type = typ, pid = p.participant_id, gid = p.group_id, remaining = remaining,
    elapsed = elapsed, cycle = p.cycle_count }
end
