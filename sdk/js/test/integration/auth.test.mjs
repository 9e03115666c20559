// Integration tier, AUTH_MODE=jwt: the SDK's token options against the real
// server, with tokens minted by the binary's own `synckairos token`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import WebSocket from 'ws';
import { SyncKairos, SyncKairosError } from '../../dist/synckairos.js';
import { Server, build, twoPlayers } from '../server.mjs';

const secret = 'sdk-integration-secret-0123456789abcdef';
const authEnv = { AUTH_MODE: 'jwt', AUTH_JWT_SECRET: secret, AUTH_JWT_LEEWAY: '0s' };
let srv;
before(async () => { srv = await Server.start(authEnv); });
after(async () => { await srv?.stop(); });

function mint(...args) {
  return execFileSync(build(), ['token', ...args], {
    env: { PATH: process.env.PATH, ...authEnv }, encoding: 'utf8',
  }).trim();
}

function waitFor(what, ok, ms = 5000) {
  return new Promise((res, rej) => {
    const t0 = Date.now();
    const tick = () => {
      const v = ok();
      if (v) return res(v);
      if (Date.now() - t0 > ms) return rej(new Error('timed out waiting for ' + what));
      setTimeout(tick, 5);
    };
    tick();
  });
}

test('without a token the SDK gets 401 UNAUTHENTICATED as its error class', async () => {
  const sk = new SyncKairos({ baseUrl: srv.base, WebSocket });
  const e = await sk.createSession(twoPlayers()).catch((x) => x);
  assert.ok(e instanceof SyncKairosError);
  assert.equal(e.status, 401);
  assert.equal(e.code, 'UNAUTHENTICATED');
});

test('a host token drives the session; a viewer view, fed by getToken, follows it and refreshes its token with AUTH', async () => {
  const host = new SyncKairos({ baseUrl: srv.base, WebSocket, token: mint('--role', 'host', '--session', '*') });
  const st = await host.createSession(twoPlayers());
  await host.start(st.session_id);
  // 31 s tokens: the SDK refreshes 30 s before exp, so about a second in
  let calls = 0;
  const viewer = new SyncKairos({
    baseUrl: srv.base, WebSocket,
    getToken: async () => { calls++; return mint('--role', 'viewer', '--session', st.session_id, '--ttl', '31s'); },
  });
  const v = viewer.session(st.session_id);
  const conns = [];
  v.on('connection', (c) => conns.push(c));
  await waitFor('open', () => v.connection === 'open' && v.state?.version === 2);
  await waitFor('a refreshed token', () => calls >= 2, 5000);
  // past the first token's exp: had the server refused the AUTH, it would
  // have closed with 4001 there and the view reconnected
  await new Promise((r) => setTimeout(r, 32_000));
  await host.switch(st.session_id);
  await waitFor('the switch, after the first token expired', () => v.state.version === 3);
  assert.equal(v.connection, 'open');
  assert.deepEqual(conns, ['connecting', 'resyncing', 'open'], 'one connection, never closed');
  // a viewer may read but not change
  const e = await viewer.switch(st.session_id).catch((x) => x);
  assert.equal(e.status, 403);
  assert.equal(e.code, 'FORBIDDEN');
  await host.delete(st.session_id);
  viewer.close();
  host.close();
});
