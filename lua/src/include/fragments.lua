-- The participant fragments a transition changed, to write and publish.
-- @include prelude

-- Fragments to publish: changed = {{pos, fragment, written}, ...}; an
-- entry flagged written was stored already (sync_group).

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

-- write_frags stores the fragments of changed not stored yet.
local function write_frags(k_parts, changed)
  local flat = {}
  for _, c in ipairs(changed) do
    if not c[3] then
      flat[#flat + 1] = c[1]
      flat[#flat + 1] = c[2]
    end
  end
  hset_flat(k_parts, flat)
end
