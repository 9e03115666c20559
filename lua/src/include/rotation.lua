-- Turn order: the next participant who has not expired.
-- @include encoding

-- next_live finds the next participant after position from (wrapping, cur
-- is the in-memory participant at from) who has not expired.
local function next_live(k_parts, m, from, cur)
  for k = 1, m.n do
    local pos = (from + k) % m.n
    local q = cur
    if pos ~= from then q = get_p(k_parts, pos) end
    if not q.has_expired then return pos, q end
  end
  return nil, nil
end
