import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { SyncKairos, backoff } from '../../dist/synckairos.js';
import { FakeTime, FakeWS, timeServer, state } from './fakes.mjs';

const START = Date.parse('2026-01-01T00:00:00.000Z');

// A client whose server clock reads START + 10 s at local 1000 (10 s into the turn).
function setup(extra = {}) {
  FakeWS.reset();
  const time = new FakeTime(1000);
  const fetch = timeServer(time, START + 9000, () => [1, 1, 0]);
  const sk = new SyncKairos({
    baseUrl: 'http://sk.test', fetch, WebSocket: FakeWS, timers: time.timers, monotonic: time.now,
    wallClock: () => 42, random: () => 0.5, ...extra,
  });
  return { time, sk };
}

async function connected(time, s) {
  await time.advance(10);
  const ws = FakeWS.last();
  ws.deliver({ type: 'CONNECTED', sessionId: 'S', timestamp: 1 });
  return ws;
}

beforeEach(() => FakeWS.reset());

test('connect: CONNECTED, then RECONNECT for a STATE_SYNC; remaining time from server stamps', async () => {
  const { time, sk } = setup();
  const s = sk.session('S');
  const conns = [];
  s.on('connection', (c) => conns.push(c));
  const ws = await connected(time, s);
  assert.equal(ws.url, 'ws://sk.test/ws?sessionId=S');
  assert.deepEqual(ws.types(), ['RECONNECT']);
  ws.deliver({ type: 'STATE_SYNC', sessionId: 'S', version: 3, state: state(3) });
  assert.deepEqual(conns, ['connecting', 'resyncing', 'open']);
  assert.equal(s.state.version, 3);
  // clock synced at local ~1010: server time = START + 9000 + local
  const now = sk.now();
  assert.ok(Math.abs(s.remainingMs('A') - (60000 - (now - START))) < 1e-6);
  assert.equal(s.remainingMs('B'), 60000);
  assert.equal(s.activeRemainingMs(), s.remainingMs('A'));
  assert.equal(s.remainingMs('nobody'), undefined);
  s.close();
  sk.close();
});

test('gap detection: a skipped version asks for a STATE_SYNC; stale ones are dropped', async () => {
  const { time, sk } = setup();
  const s = sk.session('S');
  const ws = await connected(time, s);
  ws.deliver({ type: 'STATE_SYNC', version: 3, state: state(3) });
  const seen = [];
  s.on('state', (st) => seen.push(st.version));

  ws.deliver({ type: 'STATE_UPDATE', version: 4, state: state(4) });
  assert.deepEqual(ws.types(), ['RECONNECT'], 'no resync on the next version');
  ws.deliver({ type: 'STATE_UPDATE', version: 4, state: state(4) });
  ws.deliver({ type: 'STATE_UPDATE', version: 2, state: state(2) });
  assert.deepEqual(seen, [4], 'duplicates and stale versions are ignored');

  ws.deliver({ type: 'STATE_UPDATE', version: 7, state: state(7) });
  assert.deepEqual(ws.types(), ['RECONNECT', 'RECONNECT'], 'a gap (4 -> 7) asks again');
  assert.equal(s.connection, 'resyncing');
  assert.equal(s.state.version, 7, 'the newer full state is kept meanwhile');
  ws.deliver({ type: 'STATE_SYNC', version: 7, state: state(7) });
  assert.equal(s.connection, 'open');

  ws.deliver({ type: 'STATE_DELTA', version: 9 });
  assert.equal(ws.types().at(-1), 'RECONNECT', 'an unexpanded delta is a gap too');
  s.close();
  sk.close();
});

test('reconnect with capped exponential backoff and jitter, then resync', async () => {
  const { time, sk } = setup({ reconnect: { minDelayMs: 250, maxDelayMs: 2000 } });
  const s = sk.session('S');
  const infos = [];
  s.on('connection', (c, i) => c === 'closed' && infos.push(i.delayMs));
  let ws = await connected(time, s);
  ws.deliver({ type: 'STATE_SYNC', version: 3, state: state(3) });

  // Four failures in a row: delays 250, 500, 1000, 2000 (the cap), 2000, x0.75 (random 0.5).
  for (let i = 0; i < 5; i++) {
    const before = FakeWS.all.length;
    FakeWS.last().drop(1006);
    await time.advance(infos.at(-1) - 1);
    assert.equal(FakeWS.all.length, before, 'not before the delay');
    await time.advance(1);
    assert.equal(FakeWS.all.length, before + 1, 'a new socket after the delay');
  }
  assert.deepEqual(infos, [187.5, 375, 750, 1500, 1500]);
  ws = FakeWS.last();
  ws.deliver({ type: 'CONNECTED' });
  assert.deepEqual(ws.types(), ['RECONNECT']);
  ws.deliver({ type: 'STATE_SYNC', version: 5, state: state(5) });
  assert.equal(s.state.version, 5);

  // A success resets the backoff.
  ws.drop(1006);
  assert.equal(infos.at(-1), 187.5);
  s.close();
  sk.close();
});

test('backoff: bounds and cap', () => {
  for (let a = 0; a < 12; a++) {
    const ceil = Math.min(5000, 250 * 2 ** a);
    assert.equal(backoff(a, 250, 5000, () => 0), ceil / 2);
    assert.equal(backoff(a, 250, 5000, () => 0.999999) < ceil, true);
  }
  assert.equal(backoff(1000, 250, 5000, () => 1), 5000);
});

test('a dead link (no frame for two ping periods) is dropped and retried', async () => {
  const { time, sk } = setup({ reconnect: { pingMs: 1000 } });
  const s = sk.session('S');
  const ws = await connected(time, s);
  ws.deliver({ type: 'STATE_SYNC', version: 3, state: state(3) });
  await time.advance(1000);
  assert.equal(ws.types().at(-1), 'PING');
  await time.advance(1000);
  ws.deliver({ type: 'PONG', timestamp: 1 });
  await time.advance(1000);
  assert.equal(ws.closed, false, 'a reply keeps it');
  await time.advance(2000);
  assert.equal(ws.closed, true);
  assert.notEqual(s.connection, 'open');
  s.close();
  sk.close();
});

test('SESSION_DELETED ends the view (no reconnect); so does SESSION_NOT_FOUND', async () => {
  for (const m of [{ type: 'SESSION_DELETED', sessionId: 'S' }, { type: 'ERROR', code: 'SESSION_NOT_FOUND' }]) {
    const { time, sk } = setup();
    const s = sk.session('S');
    const ws = await connected(time, s);
    const got = [];
    s.on('deleted', (x) => got.push(x.type));
    ws.deliver(m);
    assert.deepEqual(got, [m.type]);
    assert.equal(s.connection, 'closed');
    assert.equal(ws.closed, true);
    ws.drop(1000);
    await time.advance(60_000);
    assert.equal(FakeWS.all.length, 1, 'no reconnect');
    sk.close();
  }
});

test('expired and warning events', async () => {
  const { time, sk } = setup();
  const s = sk.session('S');
  const ws = await connected(time, s);
  const got = [];
  s.on('expired', (m) => got.push(['expired', m.participant_id]));
  s.on('warning', (m) => got.push(['warning', m.remaining_ms]));
  ws.deliver({ type: 'TIME_WARNING', participant_id: 'A', remaining_ms: 5000 });
  ws.deliver({ type: 'TIME_EXPIRED', participant_id: 'A' });
  assert.deepEqual(got, [['warning', 5000], ['expired', 'A']]);
  s.close();
  sk.close();
});

function jwt(expSec) {
  const b = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b({ alg: 'HS256' })}.${b({ exp: expSec, sub: 'u' })}.sig`;
}

test('tokens: getToken before connecting, AUTH before expiry, 4001 refreshes and reconnects at once', async () => {
  let n = 0;
  const serverNow = () => START + 9000 + time.t; // the fake server clock, epoch ms
  const { time, sk } = setup({
    getToken: async () => jwt(Math.floor(serverNow() / 1000) + 120 + 0 * n++) + '#' + n,
    reconnect: { pingMs: 1e9 }, // no liveness drops in this test
  });
  const s = sk.session('S');
  await time.advance(10);
  let ws = FakeWS.last();
  assert.equal(n, 1, 'called before the connection');
  assert.match(ws.url, /&token=.+%231$/);
  ws.deliver({ type: 'CONNECTED' });
  ws.deliver({ type: 'STATE_SYNC', version: 3, state: state(3) });

  // exp is 120 s away: refreshed 30 s before, sent as AUTH on the socket.
  await time.advance(89_000);
  assert.equal(n, 1);
  await time.advance(2_000);
  assert.equal(n, 2);
  assert.deepEqual(ws.sent.at(-1), { type: 'AUTH', token: ws.sent.at(-1).token });
  assert.match(ws.sent.at(-1).token, /#2$/);

  // 4001 token expired: a fresh token and a new socket with no backoff.
  ws.drop(4001, 'token expired');
  await time.advance(0);
  assert.equal(n, 3);
  ws = FakeWS.last();
  assert.equal(FakeWS.all.length, 2);
  assert.match(ws.url, /%233$/);
  s.close();
  sk.close();
});

test('a fixed token goes in the URL; no global WebSocket is a clear error', async () => {
  const { time, sk } = setup({ token: 'T0' });
  const s = sk.session('S');
  await time.advance(10);
  assert.match(FakeWS.last().url, /&token=T0$/);
  s.close();
  sk.close();
  const had = globalThis.WebSocket;
  try {
    delete globalThis.WebSocket;
    const c = new SyncKairos({ baseUrl: 'http://x' });
    assert.throws(() => c.wsCtor(), /pass one, e.g. \{ WebSocket \} from the ws package/);
  } finally {
    if (had) globalThis.WebSocket = had;
  }
});
