-- The shard deadline index the expiry scheduler polls.
-- @include prelude
-- @include modes

-- sync_deadline keeps the shard's deadline index true: the session is in
-- it, scored by the ms its running turn runs out, exactly when there is one.
-- The score is the next warning's time when one is pending (warnings ride
-- the same index; expireSession sends them).
local function sync_deadline(k_dl, m, p)
  if m.status == 'running' and m.cycle_at ~= '' and p then
    local l = turn_left(m, p)
    if l then
      l = math.max(l, 0)
      if m.warned < #m.warns then l = math.max(l - m.warns[m.warned + 1], 0) end
      rcall('ZADD', k_dl, fmt('%d', tonumber(m.cycle_at) + l), m.id)
      return
    end
  end
  rcall('ZREM', k_dl, m.id)
end
