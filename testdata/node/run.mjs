// Replays every golden case of testdata/contract against Redis with the npm
// `redis` client: SCRIPT LOAD of the lua/ file, EVALSHA with literal KEYS
// and ARGV, the same matchers as contract_test.go (see its comment for the
// file format). Like contract_test.go, it applies every STATE_DELTA a step
// replies and publishes to the state it holds at the delta's base and
// checks the result against getSession-2, byte for byte but for
// server_time_ms. Exits non-zero when a case fails.
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

// end returns the index just past the JSON value that starts at s[i]
// (compact JSON, as the scripts write it).
function end(s, i) {
  if (s[i] === '"') {
    for (i++; s[i] !== '"'; i++) if (s[i] === '\\') i++;
    return i + 1;
  }
  if (s[i] !== '{' && s[i] !== '[') {
    while (i < s.length && !',}]'.includes(s[i])) i++;
    return i;
  }
  let depth = 0;
  for (; i < s.length; i++) {
    const ch = s[i];
    if (ch === '"') i = end(s, i) - 1;
    else if (ch === '{' || ch === '[') depth++;
    else if ((ch === '}' || ch === ']') && --depth === 0) return i + 1;
  }
  throw new Error(`unterminated JSON: ${s.slice(0, 80)}`);
}

// rawItems returns the raw text of each member of a JSON object (by key)
// or element of a JSON array, so fragments keep their exact bytes.
function rawItems(s) {
  const obj = s[0] === '{';
  const out = obj ? {} : [];
  let i = 1;
  while (s[i] !== (obj ? '}' : ']')) {
    let key;
    if (obj) { const k = end(s, i); key = JSON.parse(s.slice(i, k)); i = k + 1; }
    const e = end(s, i);
    if (obj) out[key] = s.slice(i, e); else out.push(s.slice(i, e));
    i = s[e] === ',' ? e + 1 : e;
  }
  return out;
}

// build joins a head and its participants into the full v1 state
// (lua/README.md "Applying a delta").
const build = (head, parts) => `${head.slice(0, -1)},"participants":[${parts.join(',')}]}`;
const maskTime = (s) => s.replace(/"server_time_ms":\d+/, '"server_time_ms":0');

function firstDiff(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const from = Math.max(i - 40, 0);
  return `at byte ${i}: ${JSON.stringify(a.slice(from, i + 80))} against ${JSON.stringify(b.slice(from, i + 80))}`;
}

// applyDelta turns STATE_DELTA text into the state it leads to, from the
// state held at its base in held ("life:version" -> {head, parts, full}),
// as lua/README.md "Applying a delta" says; it throws when the base is
// not held.
function applyDelta(held, text) {
  const d = JSON.parse(text);
  const raw = rawItems(text);
  const frags = rawItems(raw.participants);
  const n = d.participant_count;
  if (!d.sessionId || !raw.session?.endsWith('}') || !Array.isArray(d.positions) || d.positions.length !== frags.length ||
    !d.positions.every((p) => Number.isInteger(p) && p >= 0 && p < n)) {
    throw new Error(`malformed STATE_DELTA ${text.slice(0, 200)}`);
  }
  let parts;
  if (d.base_version === 0 && d.positions.length === n) {
    parts = new Array(n); // a create carries everyone
  } else {
    const base = held.get(`${d.life}:${d.base_version}`);
    if (!base) throw new Error(`no state held at the base (life ${d.life}, version ${d.base_version}) of version ${d.version}`);
    if (base.parts.length !== n) throw new Error(`base has ${base.parts.length} participants, the delta says ${n}`);
    parts = base.parts.slice();
  }
  d.positions.forEach((p, i) => { parts[p] = frags[i]; });
  if (parts.some((p) => p === undefined)) throw new Error(`create delta of version ${d.version} leaves positions unset`);
  const state = { life: d.life, version: d.version, head: raw.session, parts, full: build(raw.session, parts) };
  const at = `${d.life}:${d.version}`;
  const prev = held.get(at);
  if (prev && prev.full !== state.full) throw new Error(`two deltas to version ${d.version} give two states: ${firstDiff(prev.full, state.full)}`);
  held.set(at, state);
  return state;
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
  const load = async (script) => {
    if (!shas[script]) {
      const src = readFileSync(join(root, 'lua', script), 'utf8');
      shas[script] = await client.sendCommand(['SCRIPT', 'LOAD', src]);
    }
    return shas[script];
  };
  const held = new Map(); // the states the case's deltas lead to
  let latest = null;
  const failures = [];
  try {
    for (const [i, st] of c.steps.entries()) {
      const label = `${name} step ${i} (${st.script || st.command.join(' ')})`;
      if (st.sleep_ms) await new Promise((r) => setTimeout(r, st.sleep_ms));
      let args;
      if (st.command) {
        args = st.command.map(sub);
      } else {
        const sha = await load(st.script);
        st.keys.forEach((k) => keys.add(sub(k)));
        args = ['EVALSHA', sha, String(st.keys.length), ...st.keys.map(sub), ...st.argv.map(sub)];
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
        // every delta of the step, in the order the script made them (it
        // publishes, then replies), applied to the state held at its base;
        // the state reached must be the one getSession-2 reads back
        const deltas = msgs.filter((m) => m.startsWith('{"type":"STATE_DELTA"'));
        if (Array.isArray(got) && got.length === 2 && got[0] === 'delta') deltas.push(got[1]);
        let applied = deltas.length > 0;
        try {
          for (const t of deltas) {
            const s = applyDelta(held, t);
            if (!latest || s.life > latest.life || (s.life === latest.life && s.version > latest.version)) latest = s;
          }
        } catch (e) {
          out.push(e.message);
          applied = false;
        }
        if (applied) {
          const r = await client.sendCommand(['EVALSHA', await load('getSession-2.lua'), '2',
            sub('sk:{$SHARD}:session:$ID'), sub('sk:{$SHARD}:session:$ID:parts'), id]);
          const read = maskTime(build(r[0], r.slice(1)));
          const applied = maskTime(latest.full);
          if (applied !== read) {
            out.push(`the state applied from deltas (life ${latest.life}, version ${latest.version}) is not getSession-2's: ${firstDiff(applied, read)}`);
          }
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
