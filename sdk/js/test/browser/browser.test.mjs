// Browser tier: Debian's Chromium driven by playwright-core, through the
// demo page and the SDK bundle served by the real server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { Server } from '../server.mjs';
import { spawnJitterProxy } from '../jitterproxy.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMESYNC = join(here, '../../node_modules/timesync/dist/timesync.min.js');
const results = {};
const ROUNDS = 8; // jitter rounds: fresh page, our sync and timesync's, one reading // figures for bench/RESULTS.md, written at the end

let srv, browser;
before(async () => {
  srv = await Server.start();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true, // launch() also gives it a new, empty user data dir of its own
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
after(async () => {
  await browser?.close();
  await srv?.stop();
  const out = process.env.SDK_BROWSER_RESULTS;
  if (out) {
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
  }
});

async function demoPage(base, path = '/demo/', setup) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  if (setup) await setup(page);
  await page.goto(base + path);
  page.errors = errors;
  return page;
}

const synced = (page) => page.waitForFunction(() => window.demo?.sk.clock.synced, null, { timeout: 10000 });

/**
 * atHost reads fn in the page bracketed by the host clock (the server's:
 * Redis TIME on this machine); it keeps the tightest of n readings.
 */
async function atHost(page, fn, n = 10) {
  let best;
  for (let i = 0; i < n; i++) {
    const a = performance.timeOrigin + performance.now();
    const v = await page.evaluate(fn);
    const b = performance.timeOrigin + performance.now();
    if (!best || b - a < best.width) best = { v, host: (a + b) / 2, width: b - a };
  }
  return best;
}

async function createViaUI(page, players = 2) {
  await page.selectOption('#players', String(players));
  await page.fill('#minutes', '5');
  await page.click('#setup button[type=submit]');
  await page.waitForFunction(() => window.demo.rendered?.status === 'pending');
  return page.inputValue('#link');
}

test('two pages on one session agree: same active participant, remainingMs within 5 ms', async () => {
  const p1 = await demoPage(srv.base);
  await synced(p1);
  const link = await createViaUI(p1, 3);
  assert.match(link, /\/demo\/\?session=[0-9a-f-]{36}$/);
  await p1.click('[data-op=start]');
  await p1.waitForFunction(() => window.demo.rendered?.status === 'running');
  const p2 = await demoPage(srv.base, new URL(link).pathname + new URL(link).search);
  await synced(p2);
  await p2.waitForFunction(() => window.demo.rendered?.status === 'running');
  await p1.keyboard.press('Space'); // switch on the space bar
  for (const p of [p1, p2]) await p.waitForFunction(() => window.demo.rendered?.version === 3);
  const active = await Promise.all([p1, p2].map((p) => p.evaluate(() => ({
    id: window.demo.view.state.active_participant_id,
    dom: document.querySelector('.clock.active')?.dataset.pid,
  }))));
  assert.equal(active[0].id, active[1].id);
  assert.equal(active[0].dom, active[0].id, 'page 1 highlights it');
  assert.equal(active[1].dom, active[0].id, 'page 2 highlights it');

  // remainingMs of both pages brought to one instant (it falls 1 ms per ms).
  // Each page stamps its reading with performance.timeOrigin + now(): the
  // machine's clock, shared by both pages, read in the page with no
  // round trip to the test in between.
  const read = () => {
    const a = performance.timeOrigin + performance.now();
    const r = window.demo.view.activeRemainingMs();
    const b = performance.timeOrigin + performance.now();
    return { r, at: (a + b) / 2, width: b - a };
  };
  const diffs = [];
  for (let round = 0; round < 5; round++) {
    const [r1, r2] = await Promise.all([p1.evaluate(read), p2.evaluate(read)]);
    const diff = (r1.r + (r1.at - r2.at)) - r2.r;
    diffs.push({ diff, bracket: (r1.width + r2.width) / 2, apartMs: Math.abs(r1.at - r2.at) });
    await new Promise((r) => setTimeout(r, 100));
  }
  const worst = Math.max(...diffs.map((d) => Math.abs(d.diff)));
  console.log(`# two pages: |remainingMs difference| max ${worst.toFixed(2)} ms over 5 rounds (${diffs.map((d) => d.diff.toFixed(2)).join(', ')})`);
  results.twoPages = { maxDiffMs: worst, rounds: diffs };
  assert.ok(worst <= 5, JSON.stringify(diffs));
  assert.deepEqual([...p1.errors, ...p2.errors], []);
  await p1.context().close();
  await p2.context().close();
});

test('page clock moved +10 min and -3 h (Playwright clock): sk.now() stays within 5 ms of the server', async () => {
  const sk0 = await fetch(srv.base + '/v1/sessions', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ session_id: crypto.randomUUID(), sync_mode: 'per_participant', participants: [
      { participant_id: crypto.randomUUID(), participant_index: 0, total_time_ms: 60000 },
      { participant_id: crypto.randomUUID(), participant_index: 1, total_time_ms: 60000 }] }),
  }).then((r) => r.json());
  const path = '/demo/?session=' + sk0.data.session_id;
  results.shiftedClock = {};
  const check = async (page, label, shiftMs) => {
    const r = await atHost(page, () => ({ now: window.demo.sk.now(), date: Date.now(), shown: document.getElementById('offset').textContent }));
    const err = r.v.now - r.host;
    const pageShift = r.v.date - r.host;
    console.log(`# clock ${label}: page Date off by ${(pageShift / 60000).toFixed(2)} min, sk.now() - server ${err.toFixed(2)} ms (±${(r.width / 2).toFixed(2)}), footer offset ${r.v.shown}`);
    assert.ok(Math.abs(pageShift - shiftMs) < 2000, `the page clock is shifted (${pageShift})`);
    assert.ok(Math.abs(err) <= 5, `${label}: sk.now() is ${err} ms off`);
    results.shiftedClock[label] = { errorMs: err, bracketMs: r.width / 2 };
  };

  // Shifted before the page loads: the first sync must not trust Date.
  for (const [label, shift] of [['+10min', 10 * 60_000], ['-3h', -3 * 3600_000]]) {
    const page = await demoPage(srv.base, path, (p) => p.clock.install({ time: Date.now() + shift }));
    // once the sync settles: the connect burst runs while the page loads,
    // the settle burst 2 s later on an idle page (12 samples in all)
    await page.waitForFunction(() => window.demo?.sk.clock.samples >= 12, null, { timeout: 20000 });
    await page.waitForFunction(() => document.getElementById('offset').textContent !== '–');
    await check(page, label + ' at load', shift);
    await page.context().close();
  }
  // Moved while the page runs, after the sync: the estimate must not move.
  const page = await demoPage(srv.base, path, (p) => p.clock.install({ time: Date.now() }));
  await page.waitForFunction(() => window.demo?.sk.clock.samples >= 12, null, { timeout: 20000 });
  await check(page, 'unshifted', 0);
  await page.clock.setSystemTime(Date.now() + 10 * 60_000);
  await check(page, '+10min live', 10 * 60_000);
  await page.clock.setSystemTime(Date.now() - 3 * 3600_000);
  await check(page, '-3h live', -3 * 3600_000);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('behind a 50 ± 20 ms jitter proxy: offset error <= 10 ms, and no worse than npm timesync', async () => {
  assert.ok(existsSync(TIMESYNC), 'timesync is a devDependency');
  const proxy = await spawnJitterProxy(srv.port, 50, 20);
  let rounds;
  try {
    // Two rounds at a time (each a fresh page: our sync, then timesync's):
    // more side by side would load the 2 cores enough to measure the load.
    const round = async () => {
      const page = await demoPage(proxy.base);
      await page.addScriptTag({ path: TIMESYNC });
      // Ours: the connect burst and the settle burst 2 s later (12 samples).
      await page.waitForFunction(() => window.demo?.sk.clock.samples >= 12, null, { timeout: 20000 });
      // timesync with as many samples (12), over the same proxy, reading
      // the same /v1/time (its transport replaced; its algorithm unchanged).
      await page.evaluate(async () => {
        const ts = window.timesync.create({ server: '/v1/time', interval: null, repeat: 12, delay: 0 });
        ts.send = (to, data) => fetch(to, { cache: 'no-store' }).then((r) => r.json())
          .then((j) => ts.receive(to, { jsonrpc: '2.0', id: data.id, result: j.timestamp_us / 1000 }));
        await ts.sync();
        window.ts = ts;
      });
      const r = await atHost(page, () => ({ ours: window.demo.sk.now(), theirs: window.ts.now(), unc: window.demo.sk.clock.uncertaintyMs, rtt: window.demo.sk.clock.rttMs }));
      await page.context().close();
      return { ours: r.v.ours - r.host, timesync: r.v.theirs - r.host, uncertainty: r.v.unc, rtt: r.v.rtt, bracket: r.width / 2 };
    };
    rounds = [];
    for (let i = 0; i < ROUNDS; i += 2) rounds.push(...await Promise.all([round(), round()]));
  } finally {
    await proxy.close();
  }
  const mean = (k) => rounds.reduce((a, x) => a + Math.abs(x[k]), 0) / rounds.length;
  const worst = (k) => Math.max(...rounds.map((x) => Math.abs(x[k])));
  console.log(`# jitter 50±20 ms each way, 12 samples each, ${ROUNDS} rounds: ours mean |error| ${mean('ours').toFixed(2)} ms (max ${worst('ours').toFixed(2)}), timesync mean ${mean('timesync').toFixed(2)} ms (max ${worst('timesync').toFixed(2)})`);
  for (const x of rounds) console.log(`#   ours ${x.ours.toFixed(2)} (±${x.uncertainty.toFixed(2)} claimed, rtt ${x.rtt.toFixed(1)})  timesync ${x.timesync.toFixed(2)}  (bracket ±${x.bracket.toFixed(2)})`);
  results.jitter = { meanOursMs: mean('ours'), maxOursMs: worst('ours'), meanTimesyncMs: mean('timesync'), maxTimesyncMs: worst('timesync'), rounds };
  assert.ok(worst('ours') <= 10, 'offset error over 10 ms: ' + JSON.stringify(rounds));
  for (const x of rounds) assert.ok(Math.abs(x.ours) <= x.uncertainty + x.bracket + 0.5, 'the error is within the claimed uncertainty');
  // Both are within a few ms here, so a fixed margin keeps host-load noise
  // (5 engineers share 2 cores) from deciding; the figures are recorded.
  assert.ok(mean('ours') <= mean('timesync') + 1.5, 'worse than timesync');
});

test('kill the server and start it again: the page shows the current state within 3 s', async () => {
  const page = await demoPage(srv.base);
  await synced(page);
  await createViaUI(page, 2);
  await page.click('[data-op=start]');
  await page.waitForFunction(() => window.demo.rendered?.status === 'running' && document.getElementById('conn').textContent === 'open');
  const id = await page.evaluate(() => window.demo.view.id);
  await srv.kill();
  await page.waitForFunction(() => document.getElementById('conn').textContent !== 'open');
  await srv.start();
  const t0 = performance.now();
  // A change made while the page was away: it must show it, not the old state.
  const sw = await fetch(`${srv.base}/v1/sessions/${id}/switch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }).then((r) => r.json());
  await page.waitForFunction((v) => window.demo.rendered?.version === v && document.getElementById('conn').textContent === 'open'
    && document.querySelector('.clock.active')?.dataset.pid === window.demo.rendered.active, sw.data.version, { timeout: 3000 });
  const ms = performance.now() - t0;
  console.log(`# restart: the page showed the current state ${ms.toFixed(0)} ms after the server answered again`);
  results.restart = { ms };
  assert.ok(ms <= 3000);
  await page.context().close();
});
