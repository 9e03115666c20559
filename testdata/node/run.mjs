// Replays every golden case of testdata/contract against Redis with the npm
// `redis` client: SCRIPT LOAD of the lua/ file, EVALSHA with literal KEYS
// and ARGV, the same matchers as contract_test.go (see its comment for the
// file format). Exits non-zero on the first failing case.
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { createClient } from 'redis';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const addr = process.env.REDIS_TEST_ADDR || '127.0.0.1:6379';
const isoRe = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function normalize(v) {
  if (typeof v === 'string' && (v.startsWith('{') || v.startsWith('['))) {
    try { return JSON.parse(v); } catch { return v; }
  }
  if (Array.isArray(v)) return v.map(normalize);
  return v;
}

function subst(v, sub) {
  if (typeof v === 'string') return sub(v);
  if (Array.isArray(v)) return v.map((e) => subst(e, sub));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, e]) => [k, subst(e, sub)]));
  return v;
}

function match(path, want, got, out) {
  const diff = (msg) => out.push(`${path}: ${msg}, got ${JSON.stringify(got)}`);
  if (typeof want === 'string') {
    if (want === '$any') { if (got === null || got === undefined) diff('want a value'); return; }
    if (want === '$iso') { if (typeof got !== 'string' || !isoRe.test(got)) diff('want an ISO time'); return; }
    if (want === '$now') {
      if (!Number.isInteger(got) || Math.abs(got - Date.now()) > 60000) diff('want epoch ms near now');
      return;
    }
    if (got !== want) diff(`want ${JSON.stringify(want)}`);
    return;
  }
  if (Array.isArray(want)) {
    if (!Array.isArray(got) || got.length !== want.length) { diff(`want an array of ${want.length}`); return; }
    want.forEach((w, i) => match(`${path}[${i}]`, w, got[i], out));
    return;
  }
  if (want && typeof want === 'object') {
    const keys = Object.keys(want);
    if (keys.length === 1 && keys[0] === '$range') {
      const [lo, hi] = want.$range;
      if (typeof got !== 'number' || got < lo || got > hi) diff(`want a number in [${lo}, ${hi}]`);
      return;
    }
    if (!got || typeof got !== 'object' || Array.isArray(got)) { diff('want an object'); return; }
    for (const k of keys) {
      if (!(k in got)) out.push(`${path}.${k}: missing`);
      else match(`${path}.${k}`, want[k], got[k], out);
    }
    for (const k of Object.keys(got)) if (!(k in want)) out.push(`${path}.${k}: unexpected field`);
    return;
  }
  if (want !== got) diff(`want ${JSON.stringify(want)}`);
}

async function runCase(client, sub0, name, c) {
  const id = randomUUID();
  // the shard: the id's last two hex digits modulo 64, as two hex digits (lua/README.md)
  const shard = (parseInt(id.slice(-2), 16) % 64).toString(16).padStart(2, '0');
  const sub = (s) => s.replaceAll('$ID', id).replaceAll('$SHARD', shard);
  const channel = sub('sk:{$SHARD}:session:$ID:state');
  const inbox = [];
  let waiter = null;
  const listener = (msg) => { inbox.push(msg); if (waiter) waiter(); };
  await sub0.sSubscribe(channel, listener);
  // drain returns what the step published, up to a marker of our own
  const drain = async () => {
    const mark = `mark-${randomUUID()}`;
    await client.sPublish(channel, mark);
    const deadline = Date.now() + 10000;
    while (!inbox.includes(mark)) {
      if (Date.now() > deadline) throw new Error('timed out waiting for published messages');
      await new Promise((r) => { waiter = r; setTimeout(r, 50); });
    }
    const msgs = inbox.splice(0, inbox.indexOf(mark) + 1);
    return msgs.slice(0, -1);
  };
  const keys = new Set();
  const shas = {};
  const failures = [];
  try {
    for (const [i, st] of c.steps.entries()) {
      const label = `${name} step ${i} (${st.script || st.command.join(' ')})`;
      if (st.sleep_ms) await new Promise((r) => setTimeout(r, st.sleep_ms));
      let args;
      if (st.command) {
        args = st.command.map(sub);
      } else {
        if (!shas[st.script]) {
          const src = readFileSync(join(root, 'lua', st.script), 'utf8');
          shas[st.script] = await client.sendCommand(['SCRIPT', 'LOAD', src]);
        }
        st.keys.forEach((k) => keys.add(sub(k)));
        args = ['EVALSHA', shas[st.script], String(st.keys.length), ...st.keys.map(sub), ...st.argv.map(sub)];
      }
      let got, err;
      try { got = await client.sendCommand(args); } catch (e) { err = e; }
      const out = [];
      if (st.error) {
        if (!err) throw new Error(`${label}: got ${JSON.stringify(got)}, want error ${st.error.code}`);
        const msg = err.message;
        const sp = msg.indexOf(' ');
        const code = sp < 0 ? msg : msg.slice(0, sp);
        if (code !== st.error.code) out.push(`error ${msg}, want ${st.error.code}`);
        match('details', subst(st.error.details, sub), JSON.parse(msg.slice(sp + 1)), out);
      } else {
        if (err) throw new Error(`${label}: ${err.message}`);
        match('reply', subst(st.reply, sub), normalize(got), out);
      }
      if (!st.command) {
        const msgs = await drain();
        if (msgs.length !== st.published.length) {
          out.push(`published ${msgs.length} messages, want ${st.published.length}`);
        } else {
          msgs.forEach((m, j) => match(`message ${j}`, subst(st.published[j], sub), normalize(m), out));
        }
      }
      if (out.length) failures.push(`${label}:\n  ${out.join('\n  ')}`);
    }
  } finally {
    await sub0.sUnsubscribe(channel);
    if (keys.size) await client.del([...keys]);
  }
  return failures;
}

const client = createClient({ url: `redis://${addr}` });
const subscriber = client.duplicate();
client.on('error', (e) => console.error('redis:', e.message));
subscriber.on('error', (e) => console.error('redis subscriber:', e.message));
await client.connect();
await subscriber.connect();

const dir = join(root, 'testdata', 'contract');
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
let failed = 0;
for (const f of files) {
  const name = f.replace(/\.json$/, '');
  const failures = await runCase(client, subscriber, name, JSON.parse(readFileSync(join(dir, f), 'utf8')));
  if (failures.length) {
    failed++;
    console.log(`FAIL ${name}\n${failures.join('\n')}`);
  } else {
    console.log(`ok   ${name}`);
  }
}
await subscriber.quit();
await client.quit();
if (failed || files.length === 0) {
  console.log(`${failed} of ${files.length} cases failed`);
  process.exit(1);
}
console.log(`${files.length} cases passed`);
