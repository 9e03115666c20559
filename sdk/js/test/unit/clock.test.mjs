import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SyncKairos, ClockSync, sampleOf } from '../../dist/synckairos.js';
import { FakeTime, timeServer } from './fakes.mjs';

const OFFSET = 1_796_000_000_000; // server epoch ms minus the local monotonic base

function client(time, fetch, extra = {}) {
  let shift = 123_456; // the OS clock is wrong by 2 minutes
  const sk = new SyncKairos({
    baseUrl: 'http://sk.test', fetch, timers: time.timers, monotonic: time.now,
    wallClock: () => OFFSET + time.t + shift, ...extra,
  });
  return { sk, setShift: (v) => { shift = v; } };
}

// sync starts sk's clock sync and lets ms of fake time pass while it runs.
async function sync(time, sk, ms) {
  const p = sk.startSync();
  await time.advance(ms);
  await p;
}

// steppedServer answers in 2 ms each way with no processing time, its
// clock OFFSET plus what the test last stepped it to (0 at first).
function steppedServer(time) {
  let off = OFFSET;
  return { fetch: (url) => timeServer(time, off, () => [2, 2, 0])(url), step: (ms) => { off = OFFSET + ms; } };
}

test('sampleOf removes the server processing time from the round trip', () => {
  // 10 ms up, 30 ms in the server, 10 ms down; the server is +500 ms.
  const s = sampleOf(0, 50, { receivedMs: 510, sentMs: 540 });
  assert.equal(s.rtt, 20);
  assert.equal(s.offset, 500);
});

test('the intersected bounds hold the estimate near the fast symmetric sample among skewed ones', async () => {
  const time = new FakeTime();
  // up/down delays: sample 5 is the only symmetric, fast one; the others are
  // skewed by up to 40 ms one way, and the server spends 25 ms on each.
  const delays = [[60, 20, 25], [50, 20, 25], [55, 15, 25], [45, 15, 25], [40, 10, 25],
    [5, 5, 25], [70, 30, 25], [30, 20, 25]];
  const fetch = timeServer(time, OFFSET, (i) => delays[i % delays.length]);
  const { sk } = client(time, fetch);
  await sync(time, sk, 1500);
  assert.equal(fetch.calls.length, 8, 'a burst of 8 at connect');
  const err = sk.now() - (time.t + OFFSET);
  assert.equal(sk.clock.rttMs, 10);
  assert.equal(sk.clock.uncertaintyMs, 5, 'the intersection is the fast sample\'s own +-5 ms');
  assert.equal(sk.clock.samples, 8);
  assert.ok(Math.abs(err) <= 5, `error ${err} is within the bounds`);
  // A mean of the samples (timesync's way) is off by ~14 ms here (uplink slower).
  const mean = delays.reduce((a, [u, d]) => a + (u - d) / 2, 0) / delays.length;
  assert.ok(Math.abs(mean) > 10 && Math.abs(err) < Math.abs(mean) / 4, `mean error ${mean}, ours ${err}`);
  sk.close();
});

test('bounds from two skewed samples are tighter than either alone', async () => {
  const time = new FakeTime();
  // One fast request leg, one fast reply leg, in different samples.
  const delays = [[5, 40, 3], [40, 5, 3]];
  const fetch = timeServer(time, OFFSET, (i) => delays[i % 2]);
  const { sk } = client(time, fetch, { clock: { burst: 2 } });
  await sync(time, sk, 500);
  assert.equal(sk.clock.rttMs, 45, 'each sample alone: 45 ms RTT, +-17.5 ms off');
  assert.equal(sk.clock.uncertaintyMs, 5);
  assert.ok(Math.abs(sk.now() - (time.t + OFFSET)) < 1e-6);
  sk.close();
});

test('samples contradicting newer ones (a stepped server clock) are dropped', async () => {
  const time = new FakeTime();
  const { fetch, step } = steppedServer(time);
  const { sk } = client(time, fetch, { clock: { burst: 4, resyncBurst: 2, resyncMs: 1000, settleMs: 1000, window: 12 } });
  await sync(time, sk, 50);
  assert.equal(sk.clock.samples, 4);
  step(300);
  await time.advance(1100);
  assert.equal(sk.clock.samples, 2, 'the four old samples went');
  assert.ok(Math.abs(sk.now() - (time.t + OFFSET + 300)) < 1e-6);
  sk.close();
});

test('moving the OS clock does not move now()', async () => {
  const time = new FakeTime();
  const fetch = timeServer(time, OFFSET, () => [3, 3, 0]);
  const { sk, setShift } = client(time, fetch);
  await sync(time, sk, 100);
  for (const shift of [10 * 60_000, -3 * 3600_000]) {
    const before = sk.now();
    setShift(shift);
    await time.advance(40);
    assert.equal(sk.now() - before, 40);
    assert.equal(sk.now(), time.t + OFFSET);
  }
  // offsetMs is reported against the (wrong) wall clock
  assert.equal(Math.round(sk.clock.offsetMs), 3 * 3600_000);
  sk.close();
});

test('a small correction slews, monotonic; a large one jumps with an event', async () => {
  const time = new FakeTime();
  const { fetch, step } = steppedServer(time);
  const { sk } = client(time, fetch, { clock: { resyncMs: 1000, resyncBurst: 1, window: 1, slewRate: 0.05, jumpMs: 100 } });
  const jumps = [];
  sk.on('jump', (d) => jumps.push(d));
  await sync(time, sk, 50);
  assert.ok(Math.abs(sk.now() - (time.t + OFFSET)) < 1e-6);

  // The server clock steps +40 ms (within jumpMs): worked in at 5%.
  step(40);
  await time.advance(1000 + 4); // the resync sample lands
  const t1 = time.t, v1 = sk.now();
  let prev = v1;
  for (let i = 0; i < 10; i++) {
    await time.advance(100);
    const v = sk.now();
    assert.ok(v > prev, 'monotonic');
    prev = v;
  }
  // 1000 ms later the estimate moved 1000 + 5% of 1000 = 1050 ms, or less once caught up.
  const moved = sk.now() - v1;
  assert.ok(moved > 1000 && moved <= 1050 + 1e-6, `moved ${moved}`);
  assert.equal(jumps.length, 0);
  await time.advance(1000);
  assert.ok(Math.abs(sk.now() - (time.t + OFFSET + 40)) < 1e-6, 'caught up');
  void t1;

  // +500 ms: beyond jumpMs, applied at once and announced.
  step(540);
  await time.advance(1000);
  assert.equal(jumps.length, 1);
  assert.ok(Math.abs(jumps[0] - 500) < 1e-6, `jump ${jumps[0]}`);
  assert.ok(Math.abs(sk.now() - (time.t + OFFSET + 540)) < 1e-6);
  sk.close();
});

test('resync bursts run periodically and failed samples are skipped', async () => {
  const time = new FakeTime();
  let n = 0;
  const ok = timeServer(time, OFFSET, () => [1, 1, 0]);
  const fetch = (url) => (n++ % 3 === 1 ? Promise.reject(new TypeError('network')) : ok(url));
  const { sk } = client(time, fetch, { clock: { resyncMs: 30_000, resyncBurst: 4, burst: 8, window: 12 } });
  await sync(time, sk, 100);
  assert.equal(sk.clock.samples, 8);
  assert.ok(sk.clock.synced);
  await time.advance(2_100);
  assert.equal(sk.clock.samples, 12, 'the settle burst 2 s after the first: 8 + 4');
  await time.advance(30_100);
  assert.equal(sk.clock.samples, 12, 'window of 12');
  sk.close();
  const calls = n;
  await time.advance(120_000);
  assert.equal(n, calls, 'close stops the resyncs');
});

test('ClockSync before any sample follows the wall clock', () => {
  const time = new FakeTime();
  const c = new ClockSync(time.now, () => 5_000_000, () => Promise.reject(new Error('x')), time.timers);
  assert.equal(c.now(), 5_000_000);
  assert.equal(c.info().synced, false);
  assert.equal(c.info().uncertaintyMs, Infinity);
});
