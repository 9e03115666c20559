-- per_group: a bank shared by a group's members.
-- @include prelude
-- @include encoding

-- group_members returns the rotation positions of group gid's members: the
-- list createSession stores in the parts hash (field g:<gid>, positions
-- comma-separated). A session created before the lists were stored has
-- none: one scan of every participant builds and stores them all.
local function group_members(k_parts, m, gid)
  local v = rcall('HGET', k_parts, 'g:' .. gid)
  if not v then
    local lists, flat = {}, {}
    for i = 0, m.n - 1 do
      local g = get_p(k_parts, i).group_id
      if g then
        if not lists[g] then lists[g] = {} end
        lists[g][#lists[g] + 1] = fmt('%d', i)
      end
    end
    for g, l in pairs(lists) do
      flat[#flat + 1] = 'g:' .. g
      flat[#flat + 1] = table.concat(l, ',')
    end
    hset_flat(k_parts, flat)
    v = lists[gid] and table.concat(lists[gid], ',') or ''
  end
  local out = {}
  for x in string.gmatch(v, '%d+') do out[#out + 1] = tonumber(x) end
  return out
end

-- sync_group, after p's turn was charged in per_group, rewrites the
-- fragments of the other members of p's group (p, at skip, is the
-- caller's) so that each shows the group's bank, and has expired once it
-- ran out; it stores them and appends them to changed. O(group size): one
-- HGET, and an HMGET and HSET per 200 members.
local function sync_group(k_parts, m, p, skip, changed)
  if m.mode ~= 'per_group' or not p.group_id then return end
  local bank = m.groups[p.group_id]
  if not bank then return end
  local out = bank <= 0
  local members, flat = group_members(k_parts, m, p.group_id), {}
  for i = 1, #members, 200 do
    local idx = {}
    for j = i, math.min(i + 199, #members) do idx[#idx + 1] = members[j] end
    local frags
    if held then
      frags = {}
      for j = 1, #idx do frags[j] = held[idx[j] + 1] end
    else
      frags = rcall('HMGET', k_parts, unpack(idx))
    end
    for j = 1, #idx do
      if idx[j] ~= skip and frags[j] then
        local q = dec_p(frags[j])
        if q.total_time_ms ~= bank or (out and not q.has_expired) then
          q.total_time_ms = bank
          if out then q.has_expired = true end
          local f = enc_p(q)
          flat[#flat + 1] = idx[j]
          flat[#flat + 1] = f
          if held then held[idx[j] + 1] = f end
          changed[#changed + 1] = { idx[j], f, true }
        end
      end
    end
  end
  hset_flat(k_parts, flat)
end
