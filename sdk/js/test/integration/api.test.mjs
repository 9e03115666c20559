// Integration tier: the SDK (built bundle) against the real server binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { SyncKairos, SyncKairosError } from '../../dist/synckairos.js';
import { Server, twoPlayers } from '../server.mjs';

let srv;
before(async () => { srv = await Server.start(); });
after(async () => { await srv?.stop(); });

const client = (o = {}) => new SyncKairos({ baseUrl: srv.base, WebSocket, ...o });

function waitFor(what, ok, ms = 5000) {
  return new Promise((res, rej) => {
    const t0 = Date.now();
    const tick = () => {
      let v;
      try { v = ok(); } catch (e) { return rej(e); }
      if (v) return res(v);
      if (Date.now() - t0 > ms) return rej(new Error('timed out waiting for ' + what));
      setTimeout(tick, 5);
    };
    tick();
  });
}

test('REST lifecycle through the SDK, and its error class', async () => {
  const sk = client();
  const st = await sk.createSession(twoPlayers());
  const [a, b] = st.participants.map((p) => p.participant_id);
  assert.equal(st.status, 'pending');
  assert.equal((await sk.start(st.session_id)).active_participant_id, a);
  const sw = await sk.switch(st.session_id, { expectedVersion: 2 });
  assert.equal(sw.active_participant_id, b);
  const e1 = await sk.switch(st.session_id, { expectedVersion: 2 }).catch((e) => e);
  assert.ok(e1 instanceof SyncKairosError);
  assert.equal(e1.status, 409);
  assert.equal(e1.code, 'CONFLICT');
  assert.equal(e1.details.actual_version, 3);
  assert.equal((await sk.switch(st.session_id, { nextParticipantId: a })).active_participant_id, a);
  assert.equal((await sk.pause(st.session_id)).status, 'paused');
  assert.equal((await sk.resume(st.session_id)).status, 'running');
  assert.equal((await sk.complete(st.session_id)).status, 'completed');
  const e2 = await sk.pause(st.session_id).catch((e) => e);
  assert.equal(e2.status, 400);
  assert.equal(e2.code, 'INVALID_STATE_TRANSITION');
  assert.equal((await sk.get(st.session_id)).version, 7);
  await sk.delete(st.session_id);
  const e3 = await sk.get(st.session_id).catch((e) => e);
  assert.equal(e3.status, 404);
  assert.equal(e3.code, 'SESSION_NOT_FOUND');
  const e4 = await sk.createSession({ sync_mode: 'nope', participants: [] }).catch((e) => e);
  assert.equal(e4.status, 400);
  assert.equal(e4.code, 'VALIDATION_ERROR');
});

test('clock sync on loopback: within a millisecond of the server host clock', async () => {
  const sk = client();
  await sk.startSync();
  const c = sk.clock;
  assert.ok(c.synced);
  assert.equal(c.samples, 8);
  assert.ok(c.rttMs < 5, `rtt ${c.rttMs}`);
  // The server's clock is Redis TIME on this same host: Date.now() here.
  const err = sk.now() - Date.now();
  assert.ok(Math.abs(err) < 2, `offset from the host clock ${err} ms`);
  sk.close();
});

test('a live view follows changes made elsewhere; remaining time matches what the server charges', async () => {
  const sk = client();
  const other = client();
  const st = await other.createSession(twoPlayers(30_000));
  const [a, b] = st.participants.map((p) => p.participant_id);
  const v = sk.session(st.session_id);
  const conns = [];
  v.on('connection', (c) => conns.push(c));
  await waitFor('first state', () => v.state?.version === 1 && v.connection === 'open');
  assert.deepEqual(conns, ['connecting', 'resyncing', 'open']);
  await sk.startSync();

  await other.start(st.session_id);
  await waitFor('running', () => v.state.status === 'running');
  await new Promise((r) => setTimeout(r, 150));
  const before = v.remainingMs(a);
  const paused = await other.pause(st.session_id);
  const after = v.state.status === 'running' ? v.remainingMs(a) : undefined;
  const charged = paused.participants.find((p) => p.participant_id === a).time_remaining_ms;
  // The server's figure lies between the view's readings around the call (±2 ms of clock error).
  assert.ok(charged <= before + 2 && (after === undefined || charged >= after - 2), `${before} >= ${charged} >= ${after}`);
  await waitFor('paused', () => v.state.status === 'paused');
  assert.equal(v.remainingMs(a), charged, 'paused: the bank, not ticking');
  assert.equal(v.remainingMs(b), 30_000);

  await other.resume(st.session_id);
  await other.switch(st.session_id);
  await waitFor('switched', () => v.state.active_participant_id === b && v.state.version === 5);
  await other.delete(st.session_id);
  const deleted = await waitFor('deleted', () => v.ended);
  assert.ok(deleted);
  assert.equal(v.connection, 'closed');
  sk.close();
  other.close();
});

test('TIME_EXPIRED and TIME_WARNING arrive as events', async () => {
  const sk = client();
  const st = await sk.createSession(twoPlayers(1200, { warnings_ms: [1000] }));
  const v = sk.session(st.session_id);
  const got = [];
  v.on('warning', (m) => got.push('warning:' + m.remaining_ms));
  v.on('expired', (m) => got.push('expired:' + m.participant_id));
  await waitFor('open', () => v.connection === 'open');
  await sk.start(st.session_id);
  await waitFor('expired', () => got.some((g) => g.startsWith('expired')), 5000);
  assert.equal(got.length, 2, got.join());
  const left = Number(got[0].split(':')[1]);
  assert.ok(got[0].startsWith('warning:') && left > 0 && left <= 1000, got[0]);
  assert.equal(got[1], 'expired:' + st.participants[0].participant_id);
  await waitFor('state shows it', () => v.state.participants[0].has_expired);
  assert.equal(v.remainingMs(st.participants[0].participant_id), 0);
  sk.close();
  await client().delete(st.session_id);
});

test('the view heals after the server is killed and restarted, and shows the change made meanwhile', async () => {
  const sk = client({ reconnect: { minDelayMs: 100, maxDelayMs: 1000 } });
  const st = await sk.createSession(twoPlayers());
  await sk.start(st.session_id);
  const v = sk.session(st.session_id);
  const conns = [];
  v.on('connection', (c) => conns.push(c));
  await waitFor('open', () => v.connection === 'open' && v.state?.version === 2);
  await srv.kill();
  await waitFor('noticed', () => v.connection !== 'open');
  await srv.start();
  const t0 = Date.now();
  await sk.switch(st.session_id); // version 3, made while the view was away
  await waitFor('healed', () => v.connection === 'open' && v.state.version === 3, 3000);
  const healed = Date.now() - t0;
  assert.ok(conns.includes('closed') && conns.includes('connecting'));
  assert.equal(conns.at(-1), 'open');
  console.log(`# healed ${healed} ms after the restart`);
  sk.close();
  await client().delete(st.session_id);
});
