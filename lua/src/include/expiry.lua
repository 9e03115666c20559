-- Running out of time: expiries, TIME_EXPIRED and TIME_WARNING, and the late
-- pause or complete that applies an expiry first.
-- @include prelude
-- @include meta
-- @include encoding
-- @include emit
-- @include modes
-- @include deadlines
-- @include groups
-- @include fragments
-- @include rotation

-- end_expired ends the session: its time ran out, or nobody is left.
-- @cold
local function end_expired(m, now)
  m.status, m.active, m.active_id, m.cycle_at, m.completed_at = 'expired', '', '', '', now
end

-- time_expired announces an expiry on the session's message channel
-- (pid nil: the session's own time ran out).
-- @cold
local function time_expired(ch, m, pid, now)
  if not ch or ch == '' then return end
  local who = 'null'
  if pid then who = '"' .. pid .. '"' end
  rcall('SPUBLISH', ch, '{"type":"TIME_EXPIRED","sessionId":"' .. m.id .. '","participant_id":' .. who
    .. ',"timestamp":' .. fmt('%d', now) .. ',"version":' .. fmt('%d', m.version) .. '}')
end

-- time_warning announces that the running turn has remaining ms left.
local function time_warning(ch, m, pid, remaining, now)
  if not ch or ch == '' then return end
  rcall('SPUBLISH', ch, '{"type":"TIME_WARNING","sessionId":"' .. m.id .. '","participant_id":"' .. pid
    .. '","remaining_ms":' .. fmt('%d', remaining) .. ',"timestamp":' .. fmt('%d', now) .. ',"version":' .. fmt('%d', m.version) .. '}')
end

-- ran_out reports whether the turn just charged on p ran its clock out
-- (was: p's has_expired before the charge): p's own limit or the session's.
local function ran_out(m, p, was)
  if p.has_expired and not was then return true end
  local sl = sess_left(m)
  return sl ~= nil and sl <= 0
end

-- expire_turn applies, as its own version, what expireSession applies when
-- the running turn's clock has run out: p (at pos) was charged e ms, up to
-- its limit, and changed holds its group-mates' fragments (sync_group).
-- When the session's own limit ran out it becomes expired (session_expired,
-- TIME_EXPIRED with participant_id null); else p has expired (in per_group
-- its whole group, which sync_group marked) and, with auto_advance, the
-- next participant who has not expired starts now (nobody left: expired,
-- session_expired); without, the clock stops (participant_expired). It
-- writes, publishes the state, appends the event, then publishes
-- TIME_EXPIRED on ks.msg, and returns the reply, the participant whose
-- turn it is now (nil when the session ended) and its position. ks holds
-- the script's keys and channels: {meta, parts, index, stream, dl, channel,
-- cap, msg}.
local function expire_turn(ks, m, p, pos, e, now, changed)
  m.version, m.updated_at = m.version + 1, now
  local who, active, apos, ev = p.participant_id, nil, nil, nil
  local sl = sess_left(m)
  if sl and sl <= 0 then
    p.is_active = false
    end_expired(m, now)
    ev, who = event_for('session_expired', p, e), nil
  else
    p.has_expired = true
    ev = event_for('participant_expired', p, e)
    if m.auto == '1' then
      p.is_active = false
      p.cycle_count = p.cycle_count + 1
      local np, nx = next_live(ks.parts, m, pos, p)
      if not np then
        end_expired(m, now)
        ev.type = 'session_expired'
      else
        nx.is_active = true
        begin_turn(m, nx, now)
        m.active, m.active_id = np, nx.participant_id
        set_frag(changed, np, enc_p(nx))
        active, apos = nx, np
      end
    else
      -- the clock stops at 0; the session waits for a switch or complete
      m.cycle_at = ''
      active, apos = p, pos
    end
  end
  table.insert(changed, 1, { pos, enc_p(p) })
  save_meta(ks.meta, ks.parts, ks.index, m, changed)
  sync_deadline(ks.dl, m, active)
  local r = emit(ks.parts, ks.stream, ks.channel, ks.cap, m, now, '', changed, ev)
  time_expired(ks.msg, m, who, now)
  return r, active, apos
end

-- late_room checks that the audit stream has room for a late transition's
-- two events (the expiry it applies first, then its own).
local function late_room(k_stream, cap)
  if cap > 0 and rcall('XLEN', k_stream) + 1 >= cap then return fail('STREAM_FULL', { stream_max = cap }) end
  return nil
end

-- stop_turn charges the running turn of p (at pos) up to now and rewrites
-- its group-mates (sync_group), for a transition that stops the clock
-- (pause, complete). A clock that ran out before any scheduler saw it gets
-- its expiry first, as its own version (expire_turn). ks as for
-- expire_turn. Returns {err} (STREAM_FULL: a late stop needs room for two
-- events), {done} (the reply, when that expiry ended the session), or
-- {p, pos, elapsed, first, changed}: whose turn it is now and its
-- position, the ms the caller's event charges, the expiry's fragments ({}
-- when there was none) and the caller's changed list.
local function stop_turn(ks, m, p, pos, now)
  local was = p.has_expired
  local elapsed = run_ms(m, p, now)
  charge(m, p, elapsed)
  local late = m.cycle_at ~= '' and ran_out(m, p, was)
  if late then
    local e = late_room(ks.stream, ks.cap)
    if e then return { err = e } end
  end
  local changed = {}
  sync_group(ks.parts, m, p, pos, changed)
  if not late then return { p = p, pos = pos, elapsed = elapsed, first = {}, changed = changed } end
  local r
  r, p, pos = expire_turn(ks, m, p, pos, elapsed, now, changed)
  if m.status ~= 'running' then return { done = r } end
  -- auto_advance's turn started now, or the clock stopped: nothing to charge
  return { p = p, pos = pos, elapsed = 0, first = changed, changed = {} }
end

-- merge_reply turns the delta reply r of a transition that applied an
-- expiry first into one delta from base (the version before both), with
-- the positions of both steps (later fragments win). A full reply is
-- already whole.
local function merge_reply(r, m, now, base, first, second)
  if m.n <= FULL_MAX then return r end
  local all, at = {}, {}
  for _, list in ipairs({ first, second }) do
    for _, c in ipairs(list) do
      if at[c[1]] then all[at[c[1]]][2] = c[2]
      else
        all[#all + 1] = { c[1], c[2] }
        at[c[1]] = #all
      end
    end
  end
  return delta(m, now, '', all, base)
end
