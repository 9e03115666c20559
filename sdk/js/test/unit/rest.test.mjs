import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { SyncKairos, SyncKairosError } from '../../dist/synckairos.js';

// A tiny server playing the exactly-once contract: each test queues the
// replies it wants; every request is recorded.
let server, base;
const seen = [];
let script = [];
before(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      const r = script.shift() ?? { status: 200, body: { data: { ok: true } } };
      if (r.hang) return; // never answer
      res.writeHead(r.status, { 'content-type': 'application/json', ...(r.headers ?? {}) });
      res.end(r.status === 204 ? '' : JSON.stringify(r.body));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(() => server.close());

// Retry sleeps are recorded and shortened; the per-attempt timeout is real.
function client(extra = {}) {
  const waits = [];
  const timeoutMs = extra.timeoutMs ?? 3000;
  const timers = {
    setTimeout: (fn, ms) => (ms === timeoutMs ? setTimeout(fn, ms) : (waits.push(ms), setTimeout(fn, 1))),
    clearTimeout: (h) => clearTimeout(h),
  };
  const sk = new SyncKairos({ baseUrl: base, timers, random: () => 0, ...extra, timeoutMs });
  return { sk, waits };
}

const err = (status, code, headers) => ({ status, headers, body: { error: { code, message: code.toLowerCase(), details: { n: 1 } } } });

test('a mutation retries OUTCOME_UNKNOWN and UNAVAILABLE with one Idempotency-Key, honouring Retry-After', async () => {
  seen.length = 0;
  script = [err(503, 'OUTCOME_UNKNOWN'), err(503, 'UNAVAILABLE', { 'Retry-After': '2' }),
    { status: 200, body: { data: { session_id: 'S', version: 3 } } }];
  const { sk, waits } = client();
  const st = await sk.switch('S', { nextParticipantId: 'B', expectedVersion: 2 });
  assert.deepEqual(st, { session_id: 'S', version: 3 });
  assert.equal(seen.length, 3);
  const keys = seen.map((r) => r.headers['idempotency-key']);
  assert.match(keys[0], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(new Set(keys).size, 1, 'the same key on every retry');
  for (const r of seen) {
    assert.equal(r.method, 'POST');
    assert.equal(r.url, '/v1/sessions/S/switch');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(r.body), { next_participant_id: 'B', expected_version: 2 });
  }
  assert.equal(waits.length, 2);
  assert.equal(waits[0], 50, 'backoff: 100 ms ceiling, equal jitter at random 0');
  assert.equal(waits[1], 2000, 'Retry-After: 2 s');

  // A second call is a new operation: a new key.
  await sk.start('S');
  assert.notEqual(seen.at(-1).headers['idempotency-key'], keys[0]);
  assert.equal(seen.at(-1).body, '{}', 'a body-less action still sends JSON');
});

test('no reply in time is retried with the same key; the last error is thrown after the retries', async () => {
  seen.length = 0;
  script = [{ hang: true }, { status: 201, body: { data: { created: 1 } } }];
  const { sk } = client({ timeoutMs: 150 });
  assert.deepEqual(await sk.createSession({ session_id: 'S', sync_mode: 'per_participant', participants: [{ total_time_ms: 1000 }, { total_time_ms: 1000 }] }), { created: 1 });
  assert.equal(seen.length, 2);
  assert.equal(seen[0].headers['idempotency-key'], seen[1].headers['idempotency-key']);
  const body = JSON.parse(seen[0].body);
  assert.equal(body.participants.length, 2);
  assert.equal(body.participants[1].participant_index, 1, 'indexes filled in');
  assert.match(body.participants[0].participant_id, /^[0-9a-f-]{36}$/, 'ids filled in');

  seen.length = 0;
  script = Array(3).fill(err(503, 'UNAVAILABLE', { 'Retry-After': '0' }));
  const c2 = client({ retries: 2 }).sk;
  await assert.rejects(c2.pause('S'), (e) => e instanceof SyncKairosError && e.status === 503 && e.code === 'UNAVAILABLE' && e.retryAfter === 0);
  assert.equal(seen.length, 3, '1 + 2 retries');
});

test('other errors are thrown at once as SyncKairosError with status, code, message, details', async () => {
  for (const [r, code] of [[err(409, 'CONFLICT'), 'CONFLICT'], [err(415, 'UNSUPPORTED_MEDIA_TYPE'), 'UNSUPPORTED_MEDIA_TYPE'],
    [err(422, 'IDEMPOTENCY_KEY_REUSED'), 'IDEMPOTENCY_KEY_REUSED'], [{ status: 502, body: 'x' }, 'HTTP_502']]) {
    seen.length = 0;
    script = [r];
    const { sk } = client();
    const e = await sk.resume('S').catch((x) => x);
    assert.ok(e instanceof SyncKairosError, code);
    assert.equal(e.status, r.status);
    assert.equal(e.code, code);
    assert.equal(seen.length, 1, code + ' is not retried');
    if (code !== 'HTTP_502') {
      assert.equal(e.message, code.toLowerCase());
      assert.deepEqual(e.details, { n: 1 });
    }
  }
});

test('GET sends no key; DELETE does; tokens go in Authorization (getToken once while fresh)', async () => {
  seen.length = 0;
  script = [{ status: 200, body: { data: { version: 1 } } }, { status: 204 }, { status: 204 }];
  let calls = 0;
  const { sk } = client({ getToken: () => (calls++, 'tok-' + calls) });
  await sk.get('S');
  await sk.delete('S');
  await sk.delete('S');
  assert.equal(seen[0].headers['idempotency-key'], undefined);
  assert.ok(seen[1].headers['idempotency-key']);
  assert.equal(seen[1].method, 'DELETE');
  assert.deepEqual(seen.map((r) => r.headers.authorization), ['Bearer tok-1', 'Bearer tok-1', 'Bearer tok-1']);
  assert.equal(calls, 1, 'a token without exp is kept');
});

test('network errors: status 0 NETWORK_ERROR after the retries', async () => {
  const sk = new SyncKairos({ baseUrl: 'http://127.0.0.1:1', retries: 1, timers: { setTimeout: (f, ms) => setTimeout(f, ms === 10000 ? ms : 1), clearTimeout } });
  const e = await sk.complete('S').catch((x) => x);
  assert.ok(e instanceof SyncKairosError);
  assert.equal(e.status, 0);
  assert.equal(e.code, 'NETWORK_ERROR');
});
