// The revision-4 layouts (P, C, S, E, M: Redis's `struct`, big-endian)
// as packed.mjs reads them, against the machine's Redis (REDIS_TEST_ADDR,
// 127.0.0.1:6379 by default): each value is made by struct.pack in an EVAL
// with the layout's format string, as lua/ writes it, and must decode to
// revision 3's slot array (the MessagePack one, cmsgpack.pack in the same
// EVAL, renders the same v1 JSON). Every malformed value must throw.
// run.mjs runs this file first; alone: node --test binary.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, commandOptions } from 'redis';
import { renderEvent, renderMessage, renderPart, unpack } from './packed.mjs';

const addr = process.env.REDIS_TEST_ADDR || '127.0.0.1:6379';
const client = createClient({ url: `redis://${addr}` });
before(() => client.connect());
after(() => client.quit());

// The writers, one per layout, with the spec's format strings; X3 packs the
// same slots as revision 3 did (cmsgpack; NONE there is '', booleans are
// booleans, groups a map).
const prelude = `
local NONE = -2^63
local function nz(v) if v == NONE then return '' end return v end
local function P(id, index, total, used, cycles, active, expired, group)
  return struct.pack('>c1Hc0i4i8i8i4BBHc0', 'P', #id, id, index, total, used, cycles, active, expired, #group, group)
end
local function P3(id, index, total, used, cycles, active, expired, group)
  return cmsgpack.pack({ id, index, total, used, cycles, active == 1, expired == 1, group })
end
local function C(id, mode, n, total, per_cycle, incr, max, auto, meta, created_at, warn, life)
  return struct.pack('>c1Hc0Hc0I4Hc0Hc0Hc0Hc0Hc0I4c0i8Hc0i8', 'C', #id, id, #mode, mode, n, #total, total,
    #per_cycle, per_cycle, #incr, incr, #max, max, #auto, auto, #meta, meta, created_at, #warn, warn, life)
end
local function C3(...) return cmsgpack.pack({ ... }) end
local function groups(gs)
  local out = {}
  for i, g in ipairs(gs) do out[i] = struct.pack('>Hc0i8', #g[1], g[1], g[2]) end
  return table.concat(out)
end
local function S(status, version, active, active_id, cycle_at, started_at, completed_at, updated_at, turn, used,
    warned, bank, gs)
  local g = groups(gs)
  return struct.pack('>c1Hc0i8i8Hc0i8i8i8i8i8i8i4i8I4c0', 'S', #status, status, version, active, #active_id,
    active_id, cycle_at, started_at, completed_at, updated_at, turn, used, warned, bank, #g, g)
end
local function S3(status, version, active, active_id, cycle_at, started_at, completed_at, updated_at, turn, used,
    warned, bank, gs)
  local g = {}
  for _, e in ipairs(gs) do g[e[1]] = e[2] end
  return cmsgpack.pack({ status, version, nz(active), active_id, nz(cycle_at), nz(started_at), nz(completed_at),
    updated_at, turn, used, warned, nz(bank), g })
end
local function E(version, life, pid, gid, remaining, elapsed, cycle, timestamp, actor)
  return struct.pack('>c1i8i8Hc0Hc0i8i8i8i8I4c0', 'E', version, life, #pid, pid, #gid, gid, remaining, elapsed,
    cycle, timestamp, #actor, actor)
end
local function E3(version, life, pid, gid, remaining, elapsed, cycle, timestamp, actor)
  return cmsgpack.pack({ version, life, pid, gid, nz(remaining), nz(elapsed), nz(cycle), timestamp, actor })
end
local function M(kind, life, version, base, now, cfg, st, expired, positions, parts)
  local head = struct.pack('>c1c1i8i8i8i8I4I4HI4', 'M', kind, life, version, base, now, #cfg, #st, #expired, #parts)
  if kind == 'd' then
    for _, pos in ipairs(positions) do head = head .. struct.pack('>I4', pos) end
  end
  return head .. expired .. cfg .. st .. table.concat(parts)
end
local function M3(...) return cmsgpack.pack({ ... }) end
`;

// lua runs body after the writers and returns its reply, every value a Buffer.
const lua = (body) => client.sendCommand(['EVAL', `${prelude}\n${body}`, '0'], commandOptions({ returnBuffers: true }));

const b = (s) => Buffer.from(s);
const none = Buffer.alloc(0); // NONE, and revision 3's ''

// The samples: a session of each mode's values, in both revisions.
const T0 = 1767225600123; // 2026-01-01T00:00:00.123Z
const samples = `
local parts = { P('p-1', 0, -1500, 61500, 4, 1, 0, ''), P('p-2', 1, 30000, 0, 3, 0, 1, 'g2') }
local parts3 = { P3('p-1', 0, -1500, 61500, 4, 1, 0, ''), P3('p-2', 1, 30000, 0, 3, 0, 1, 'g2') }
local cfg = C('s-1', 'per_group', 2, '60000', '', '500', '', '1', '{"a":[1,2]}', ${T0}, '10000,5000', 3)
local cfg3 = C3('s-1', 'per_group', 2, '60000', '', '500', '', '1', '{"a":[1,2]}', ${T0}, '10000,5000', 3)
local gs = { { 'g1', -250 }, { 'g2', 30000 } }
local st = S('running', 9, 0, 'p-1', ${T0 + 1000}, ${T0 + 10}, NONE, ${T0 + 2000}, 1, 61500, 2, NONE, gs)
local st3 = S3('running', 9, 0, 'p-1', ${T0 + 1000}, ${T0 + 10}, NONE, ${T0 + 2000}, 1, 61500, 2, NONE, gs)
local gcfg = C('s-2', 'global', 40, '90000', '30000', '', '120000', '0', '', ${T0}, '', 1)
local gcfg3 = C3('s-2', 'global', 40, '90000', '30000', '', '120000', '0', '', ${T0}, '', 1)
local gst = S('paused', 12, NONE, '', NONE, ${T0 + 10}, NONE, ${T0 + 3000}, 0, 0, 0, -42, {})
local gst3 = S3('paused', 12, NONE, '', NONE, ${T0 + 10}, NONE, ${T0 + 3000}, 0, 0, 0, -42, {})
`;

test('participant: negative total, an empty group id, booleans', async () => {
  const [a, c, m, d] = await lua(`return { P('p-1', 0, -1500, 61500, 4, 1, 0, ''), P('p-2', 2147483647, 9007199254740991,
    -9007199254740991, 0, 0, 1, 'g-1'), P3('p-1', 0, -1500, 61500, 4, 1, 0, ''), P('', -2147483648, 0, 0, -1, 0, 0, '') }`);
  assert.equal(a[0], 0x50);
  assert.deepEqual(unpack(a, 'participant'), [b('p-1'), 0, -1500, 61500, 4, true, false, none]);
  assert.deepEqual(unpack(d), [none, -(2 ** 31), 0, 0, -1, false, false, none]); // i4 is signed
  assert.deepEqual(unpack(c), [b('p-2'), 2147483647, 2 ** 53 - 1, -(2 ** 53 - 1), 0, false, true, b('g-1')]);
  assert.deepEqual(unpack(a), unpack(m), 'the MessagePack slots are the same');
  assert.equal(renderPart(a), renderPart(m));
  assert.equal(renderPart(a), '{"participant_id":"p-1","participant_index":0,"total_time_ms":-1500,"time_used_ms":61500,'
    + '"time_remaining_ms":0,"cycle_count":4,"is_active":true,"has_expired":false}');
});

test('cfg: decimal text as strings, "" for none', async () => {
  const [cfg, gcfg] = await lua(`${samples} return { cfg, gcfg }`);
  assert.deepEqual(unpack(cfg, 'cfg'), [b('s-1'), b('per_group'), 2, b('60000'), none, b('500'), none, b('1'),
    b('{"a":[1,2]}'), T0, b('10000,5000'), 3]);
  assert.deepEqual(unpack(gcfg, 'cfg'), [b('s-2'), b('global'), 40, b('90000'), b('30000'), none, b('120000'), b('0'),
    none, T0, none, 1]);
});

test('st: NONE as "", per_group groups as a map, no groups as {}', async () => {
  const [st, gst, two] = await lua(`${samples} return { st, gst,
    S('running', 1, 1, 'p-2', 5, 5, NONE, 5, 0, 0, -1, NONE, { { '', 7 }, { 'g\\0x', -9 }, { 'gé', 0 } }) }`);
  assert.deepEqual(unpack(st, 'st'), [b('running'), 9, 0, b('p-1'), T0 + 1000, T0 + 10, none, T0 + 2000, 1, 61500, 2,
    none, { g1: -250, g2: 30000 }]);
  assert.deepEqual(unpack(gst, 'st'), [b('paused'), 12, none, none, none, T0 + 10, none, T0 + 3000, 0, 0, 0, -42, {}]);
  // an empty group id, a NUL byte within one, UTF-8: group ids like any other
  assert.deepEqual(unpack(two, 'st').slice(10), [-1, none, { '': 7, 'g\0x': -9, 'gé': 0 }]);
});

test('event: NONE figures as "", an actor of any length', async () => {
  const [e, e3, full, actor] = await lua(`local a = string.rep('x', 70000)
    return { E(4, 2, 'p-1', '', NONE, NONE, NONE, ${T0}, ''), E3(4, 2, 'p-1', '', NONE, NONE, NONE, ${T0}, ''),
      E(5, 2, 'p-2', 'g2', -30, 1200, 7, ${T0 + 1}, a), a }`);
  assert.deepEqual(unpack(e, 'event'), [4, 2, b('p-1'), none, none, none, none, T0, none]);
  assert.deepEqual(unpack(e), unpack(e3));
  assert.deepEqual(unpack(full, 'event'), [5, 2, b('p-2'), b('g2'), -30, 1200, 7, T0 + 1, actor]);
});

test('message f: two parts, no positions; renders as revision 3 does', async () => {
  const [m, m3, cfg, st, p1, p2] = await lua(`${samples} return { M('f', 3, 9, 8, ${T0 + 2000}, cfg, st, '', {}, parts),
    M3('f', 3, 9, 8, ${T0 + 2000}, cfg3, st3, '', {}, parts3), cfg, st, parts[1], parts[2] }`);
  assert.deepEqual(unpack(m, 'message'), [b('f'), 3, 9, 8, T0 + 2000, cfg, st, none, [], [p1, p2]]);
  const got = renderMessage(m);
  const want = renderMessage(m3);
  assert.equal(got.published, want.published);
  assert.deepEqual(got.reply, want.reply);
  assert.match(got.published, /^\{"type":"STATE_UPDATE","sessionId":"s-1",.*"group_remaining_ms":\{"g1":0,"g2":30000\}/);
  assert.match(got.published, /"session_completed_at":null,/);
  assert.deepEqual([got.kind, got.life, got.version, got.base, got.now, got.n, got.positions], ['f', 3, 9, 8, T0 + 2000, 2, []]);
});

test('message d: positions and parts; an expired id; an older cfg and st inside', async () => {
  const r = await lua(`${samples}
    local ps = { P('p-7', 7, 100, 200, 1, 1, 0, ''), P('p-3', 3, 0, 900, 2, 0, 1, '') }
    local ps3 = { P3('p-7', 7, 100, 200, 1, 1, 0, ''), P3('p-3', 3, 0, 900, 2, 0, 1, '') }
    return { M('d', 1, 12, 11, ${T0 + 3000}, gcfg, gst, 'p-3', { 7, 3 }, ps),
      M3('d', 1, 12, 11, ${T0 + 3000}, gcfg3, gst3, 'p-3', { 7, 3 }, ps3),
      M('d', 1, 12, 11, ${T0 + 3000}, gcfg3, gst3, 'p-3', { 7, 3 }, ps),
      gcfg, gst, ps[1], ps[2] }`);
  const [m, m3, mixed, gcfg, gst, p7, p3] = r;
  assert.deepEqual(unpack(m, 'message'), [b('d'), 1, 12, 11, T0 + 3000, gcfg, gst, b('p-3'), [7, 3], [p7, p3]]);
  const got = renderMessage(m);
  const want = renderMessage(m3);
  assert.equal(got.published, want.published);
  assert.equal(renderMessage(mixed).published, want.published, 'cfg and st of revision 3 inside a revision-4 message');
  assert.match(got.published, /"base_version":11,"participant_count":40,.*"time_remaining_ms":0,.*"positions":\[7,3\]/);
  assert.match(got.published, /"expired_participant_id":"p-3"/);
  assert.deepEqual(got.positions, [7, 3]);
});

test('an audit entry renders as revision 3 does', async () => {
  const [e, e3, m, m3] = await lua(`${samples} return { E(9, 3, 'p-1', 'g1', 0, 1500, NONE, ${T0 + 2000}, 'u-1'),
    E3(9, 3, 'p-1', 'g1', 0, 1500, NONE, ${T0 + 2000}, 'u-1'),
    M('f', 3, 9, 8, ${T0 + 2000}, cfg, st, '', {}, parts), M3('f', 3, 9, 8, ${T0 + 2000}, cfg3, st3, '', {}, parts3) }`);
  const got = renderEvent('cycle_switched', 's-1', e, m);
  assert.deepEqual(got, renderEvent('cycle_switched', 's-1', e3, m3));
  assert.deepEqual(got.slice(0, 20), ['type', 'cycle_switched', 'session_id', 's-1', 'version', '9', 'life', '3',
    'participant_id', 'p-1', 'group_id', 'g1', 'time_remaining_ms', '0', 'time_elapsed_ms', '1500', 'cycle_number', '',
    'timestamp', String(T0 + 2000)]);
});

test('JSON and MessagePack values read as before', async () => {
  const [j, mp] = await lua(`return { cjson.encode({ 'p-1', 0, 5, 6, 1, true, false, '' }),
    cmsgpack.pack({ 'p-1', 0, 5, 6, 1, true, false, '' }) }`);
  const want = [b('p-1'), 0, 5, 6, 1, true, false, none];
  assert.deepEqual(unpack(j, 'participant'), want);
  assert.deepEqual(unpack(mp, 'participant'), want);
});

test('malformed values throw', async () => {
  const [p, cfg, st, e, mf, md, ...bad] = await lua(`${samples} return {
    parts[1], cfg, st, E(5, 2, 'p-2', 'g2', -30, 1200, 7, 1, 'u'),
    M('f', 3, 9, 8, 1, cfg, st, '', {}, parts), M('d', 1, 12, 11, 1, gcfg, gst, 'p-3', { 7, 3 }, parts),
    P('p-1', 0, 1, 2, 3, 2, 0, ''),
    P('p-1', 0, 1, 2, 3, 0, 255, ''),
    struct.pack('>c1c1i8i8i8i8I4I4HI4', 'M', 'x', 1, 1, 0, 1, 0, 0, 0, 0),
    struct.pack('>c1Hc0', 'P', 4, 'p-1'),
    P('p-1', 0, 1, 2, 3, 0, 0, '') .. struct.pack('>i4', 0),
    P('p-1', 0, NONE, 2, 3, 0, 0, ''),
    S('running', NONE, 0, 'p-1', 1, 1, NONE, 1, 0, 0, 0, NONE, {}),
    E(2^53, 1, '', '', 0, 0, 0, 1, ''),
    E(1, 1, '', '', -2^53, 0, 0, 1, ''),
    S('running', 1, 0, 'p-1', 1, 1, NONE, 1, 0, 0, 0, NONE, { { 'g1', 1 }, { 'g1', 2 } }),
    S('running', 1, 0, 'p-1', 1, 1, NONE, 1, 0, 0, 0, NONE, { { 'g1', NONE } }),
    struct.pack('>c1Hc0i8i8Hc0i8i8i8i8i8i8i4i8I4c0', 'S', 1, 'r', 1, 0, 0, '', 1, 1, 1, 1, 0, 0, 0, 0, 8,
      struct.pack('>Hc0i4', 2, 'g1', 5)),
    struct.pack('>c1c1i8i8i8i8I4I4HI4', 'M', 'f', 1, 1, 0, 1, 0, 0, 0, 2) .. P('p-1', 0, 1, 2, 3, 0, 0, ''),
    struct.pack('>c1c1i8i8i8i8I4I4HI4', 'M', 'f', 1, 1, 0, 1, 0, 0, 0, 1) .. cmsgpack.pack({ 'p-1', 0, 5, 6, 1, true, false, '' }),
  }`);
  const cases = [
    [bad[0], /is_active is 2, not 0 or 1/],
    [bad[1], /has_expired is 255, not 0 or 1/],
    [bad[2], /kind is 0x78, not f or d/],
    [bad[3], /participant_id needs 4 bytes, 3 left/],
    [bad[4], /4 bytes after its last field/],
    [bad[5], /total_time_ms is NONE/],
    [bad[6], /version is NONE/],
    [bad[7], /version 9007199254740992 is beyond/],
    [bad[8], /time_remaining_ms -9007199254740992 is beyond/],
    [bad[9], /group "g1" twice/],
    [bad[10], /group "g1"'s bank is NONE/],
    [bad[11], /groups: group "g1"'s bank needs 8 bytes, 4 left/],
    [bad[12], /part 1 needs 1 byte, 0 left/],
    [bad[13], /part 0 is not of layout P/],
  ];
  for (const [v, re] of cases) assert.throws(() => unpack(v), re, v.toString('hex'));
  // every value cut short anywhere throws, and so does one with a byte more
  for (const v of [p, cfg, st, e, mf, md]) {
    for (let k = 1; k < v.length; k++) {
      assert.throws(() => unpack(v.subarray(0, k)), /malformed .* needs \d+ bytes?, \d+ left/, `${k} of ${v.length}`);
    }
    assert.throws(() => unpack(Buffer.concat([v, Buffer.from([0])])), /: 1 byte after its last field/);
  }
  // a tag must be the layout's wanted
  assert.throws(() => unpack(p, 'cfg'), /malformed packed cfg: tag P is a participant's/);
  assert.throws(() => renderMessage(cfg), /malformed packed message: tag C is a cfg's/);
  assert.throws(() => renderPart(st), /malformed packed participant: tag S/);
});
