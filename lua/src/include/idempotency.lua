-- Idempotency-Key records (lua/README.md "Idempotency").
-- @include prelude
-- @include encoding

-- Idempotency-Key (lua/README.md "Idempotency"). idem = {key, fp, ttl}: the
-- record's key (KEYS), the request's fingerprint and how long the record
-- lives (ms); nil when the call has no key (no table is made for it). A
-- record is fp, a newline, then the reply's payload (a message, or JSON
-- kept by the revision-2 scripts); only calls that succeed leave one (an
-- error changed nothing).

-- replayed answers a repeat: {'replay', payload} for the same request,
-- IDEMPOTENCY_KEY_REUSED for another one, nil when the key is new.
local function replayed(idem)
  if not idem then return nil end
  if not string.match(idem.ttl or '', '^[1-9]%d*$') then
    return fail('VALIDATION_ERROR', { field = 'idem_ttl_ms', message = 'must be a positive integer' })
  end
  local rec = rcall('GET', idem.key)
  if not rec then return nil end
  local n = #idem.fp
  if string.sub(rec, 1, n) == idem.fp and string.byte(rec, n + 1) == 10 then
    return { 'replay', string.sub(rec, n + 2) }
  end
  return fail('IDEMPOTENCY_KEY_REUSED', { reason = 'the key was used for a different request' })
end

-- keep records payload as the reply of the call's key, if it has one.
local function keep(idem, payload)
  if idem then rcall('SET', idem.key, idem.fp .. '\n' .. payload, 'PX', idem.ttl) end
end

-- kept keeps the reply r of a transition and returns it; a delta is kept as
-- the whole state, which a replay can answer without a base.
local function kept(idem, r, k_parts, m, now, expired)
  if idem then
    if m.n > FULL_MAX then keep(idem, full(k_parts, m, now, expired)) else keep(idem, r) end
  end
  return r
end
