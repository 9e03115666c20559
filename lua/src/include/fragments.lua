-- The participant fragments a transition changed, to write and publish.
-- @include prelude

-- Fragments to publish: changed = {{pos, fragment, written}, ...}; an
-- entry flagged written was stored already (sync_group).

-- held mirrors the parts hash of a session of at most FULL_MAX
-- participants for the rest of the call, once read with st: one HMGET then
-- serves every read of a participant and the whole-state message, and
-- every write goes through it too. (The build keeps what a script's text
-- names, comments included, so this one names no function.)
local held = nil

-- set_frag records pos's new fragment, replacing an earlier one.
local function set_frag(changed, pos, frag)
  for _, c in ipairs(changed) do
    if c[1] == pos then
      c[2], c[3] = frag, nil
      return
    end
  end
  changed[#changed + 1] = { pos, frag }
end

-- write_frags stores m's st (at field n) and the fragments of changed not
-- stored yet, in one HSET of the parts hash.
local function write_frags(k_parts, changed, m)
  local flat = { POSITIONS[m.n + 1] or fmt('%d', m.n), m.st_raw }
  for _, c in ipairs(changed) do
    if not c[3] then
      flat[#flat + 1] = POSITIONS[c[1] + 1] or fmt('%d', c[1]) -- a number would be formatted by %.17g
      flat[#flat + 1] = c[2]
      if held then held[c[1] + 1] = c[2] end
    end
  end
  hset_flat(k_parts, flat)
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
