// Replays every golden case of testdata/contract against Redis with the npm
// `redis` client: SCRIPT LOAD of the lua/ file, EVALSHA with literal KEYS
// and ARGV, the same matchers as contract_test.go (see its comment for the
// file format). The scripts reply, publish and XADD packed messages
// (MessagePack): they are read as Buffers and rendered by packed.mjs into
// the v1 JSON the cases expect. Like contract_test.go, it applies every
// STATE_DELTA a step replies and publishes to the state it holds at the
// delta's base (and holds every full state as it is), and checks the state
// reached against getSession-2, byte for byte but for server_time_ms. It
// does the same with the packed messages as they are (cfg, st and each
// position's fragment) against readSession-2, byte for byte. First it runs
// binary.test.mjs (packed.mjs's reading of the revision-4 layouts, made by
// Redis's struct). Exits non-zero when a case or that test fails.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { createClient, commandOptions } from 'redis';
import { build, renderEvent, renderMessage, unpack } from './packed.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const addr = process.env.REDIS_TEST_ADDR || '127.0.0.1:6379';
const isoRe = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
// replies as Buffers: packed messages are binary, which UTF-8 decoding would corrupt
const asBuffers = commandOptions({ returnBuffers: true });

function normalize(v) {
  if (typeof v === 'string' && (v.startsWith('{') || v.startsWith('['))) {
    try { return JSON.parse(v); } catch { return v; }
  }
  if (Array.isArray(v)) return v.map(normalize);
  return v;
}

// text turns a value read as Buffers back into what a string-mode client
// reads: every bulk string as UTF-8 text.
const text = (v) => (Buffer.isBuffer(v) ? v.toString('utf8') : Array.isArray(v) ? v.map(text) : v);

// fromReply renders a transition's reply as the revision-2 scripts replied
// it: the message (with the switch's budget {message, remaining, reset}) as
// {"full" | "delta", json, ...}, and a replayed message as its JSON. The
// messages met go to packed.
function fromReply(got, packed, script) {
  const transition = /^(create|start|switch|pause|resume|complete|expire)/.test(script);
  if (transition && Buffer.isBuffer(got)) got = [Buffer.from('packed'), got];
  else if (transition && Array.isArray(got) && got.length === 3) got = [Buffer.from('packed'), ...got];
  if (!Array.isArray(got) || !Buffer.isBuffer(got[0])) return text(got);
  const kind = got[0].toString();
  // a replay keeps JSON ('{', the revision-2 scripts' state; "1"/"0", a delete's) or a message
  const legacy = kind === 'replay' && (got[1][0] === 0x7b || /^[01]$/.test(got[1].toString()));
  if (kind !== 'packed' && (kind !== 'replay' || legacy)) return text(got);
  const m = renderMessage(got[1]);
  if (kind === 'replay' && m.kind !== 'f') throw new Error(`a replay of a message of kind ${m.kind}`);
  packed.push(m);
  return [kind === 'packed' ? m.reply[0] : kind, m.reply[1], ...text(got.slice(2))];
}

// fromPublished renders a state-channel message: JSON (SESSION_DELETED)
// as it is, a packed message as the STATE_UPDATE or STATE_DELTA it stands for.
function fromPublished(buf, packed) {
  if (buf[0] === 0x7b) return buf.toString('utf8');
  const m = renderMessage(buf);
  packed.push(m);
  return m.published;
}

// fromStream renders XRANGE entries as the revision-2 scripts wrote them:
// an entry with its figures packed in `event` gets them back as fields of
// their own, and its packed state becomes its state_kind ("full" |
// "delta") and state JSON (lua/README.md "Audit events").
function fromStream(entries) {
  return entries.map(([id, fields]) => {
    const f = text(fields);
    const at = (name) => f.findIndex((x, i) => i % 2 === 0 && x === name);
    const state = at('state');
    if (at('event') >= 0 && state >= 0) {
      return [text(id), renderEvent(f[at('type') + 1], f[at('session_id') + 1], fields[at('event') + 1], fields[state + 1])];
    }
    return [text(id), f];
  });
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

// getSession-2 has the read's time, and not the switch's expired_participant_id
const maskTime = (s) => s.replace(/"server_time_ms":\d+(,"expired_participant_id":"[^"]*")?/, '"server_time_ms":0');

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
  return hold(held, { life: d.life, version: d.version, parts, full: build(raw.session, parts) });
}

// hold keeps a state at its (life, version); two messages that lead to one
// version must agree on its state.
function hold(held, state) {
  const at = `${state.life}:${state.version}`;
  const prev = held.get(at);
  if (prev && prev.full !== state.full) throw new Error(`two messages to version ${state.version} give two states: ${firstDiff(prev.full, state.full)}`);
  held.set(at, state);
  return state;
}

// show is a packed value for a failure message: decoded, and in hex when
// two values differ only in their encoding.
function show(b) {
  if (b[0] === 0x7b) return b.toString('utf8');
  try {
    return JSON.stringify(unpack(b), (k, v) => (v?.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data).toString('utf8') : v));
  } catch {
    return b.toString('hex');
  }
}

function showBoth(a, b) {
  const [x, y] = [show(a), show(b)];
  return x === y ? `${a.toString('hex')} against ${b.toString('hex')}` : `${x} against ${y}`;
}

// packedDiff says where two packed states ({cfg, st, parts}) differ, '' if nowhere.
function packedDiff(a, b) {
  if (!a.cfg.equals(b.cfg)) return `cfg ${showBoth(a.cfg, b.cfg)}`;
  if (!a.st.equals(b.st)) return `st ${showBoth(a.st, b.st)}`;
  if (a.parts.length !== b.parts.length) return `${a.parts.length} fragments against ${b.parts.length}`;
  const i = a.parts.findIndex((p, j) => !Buffer.isBuffer(b.parts[j]) || !p.equals(b.parts[j]));
  return i < 0 ? '' : `fragment ${i} ${showBoth(a.parts[i], b.parts[i] ?? Buffer.alloc(0))}`;
}

// applyPacked is applyDelta at the packed level: the state a packed message
// leads to, as stored ({life, version, cfg, st, parts}, a fragment per
// position), held in held by "life:version". A full message is the state;
// a delta's fragments go over its base's.
function applyPacked(held, m) {
  let parts;
  if (m.kind === 'f') {
    if (m.parts.length !== m.n) throw new Error(`full message of version ${m.version} has ${m.parts.length} fragments for ${m.n} participants`);
    parts = m.parts;
  } else {
    if (m.positions.length !== m.parts.length || !m.positions.every((p) => p >= 0 && p < m.n)) {
      throw new Error(`malformed packed delta of version ${m.version}: positions ${JSON.stringify(m.positions)}, ${m.parts.length} fragments`);
    }
    if (m.base === 0 && m.positions.length === m.n) {
      parts = new Array(m.n); // a create carries everyone
    } else {
      const base = held.get(`${m.life}:${m.base}`);
      if (!base) throw new Error(`no packed state held at the base (life ${m.life}, version ${m.base}) of version ${m.version}`);
      if (base.parts.length !== m.n) throw new Error(`packed base has ${base.parts.length} participants, the delta says ${m.n}`);
      parts = base.parts.slice();
    }
    m.positions.forEach((p, i) => { parts[p] = m.parts[i]; });
    if (parts.some((p) => p === undefined)) throw new Error(`packed create delta of version ${m.version} leaves positions unset`);
  }
  const state = { life: m.life, version: m.version, cfg: m.cfg, st: m.st, parts };
  const prev = held.get(`${m.life}:${m.version}`);
  const diff = prev && packedDiff(prev, state);
  if (diff) throw new Error(`two packed messages to version ${m.version} give two states: ${diff}`);
  held.set(`${m.life}:${m.version}`, state);
  return state;
}

const newer = (s, than) => !than || s.life > than.life || (s.life === than.life && s.version > than.version);

async function runCase(client, sub0, name, c) {
  const id = randomUUID();
  // the shard: the id's last two hex digits modulo 64, as two hex digits (lua/README.md)
  const shard = (parseInt(id.slice(-2), 16) % 64).toString(16).padStart(2, '0');
  const sub = (s) => s.replaceAll('$ID', id).replaceAll('$SHARD', shard);
  const channel = sub('sk:{$SHARD}:session:$ID:state');
  const inbox = [];
  let waiter = null;
  const listener = (msg) => { inbox.push(msg); if (waiter) waiter(); };
  await sub0.sSubscribe(channel, listener, true); // Buffers: messages are packed
  // drain returns what the step published, up to a marker of our own
  const drain = async () => {
    const mark = Buffer.from(`mark-${randomUUID()}`);
    await client.sPublish(channel, mark);
    const deadline = Date.now() + 10000;
    let at;
    while ((at = inbox.findIndex((m) => m.equals(mark))) < 0) {
      if (Date.now() > deadline) throw new Error('timed out waiting for published messages');
      await new Promise((r) => { waiter = r; setTimeout(r, 50); });
    }
    return inbox.splice(0, at + 1).slice(0, -1);
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
  const metaKey = sub('sk:{$SHARD}:session:$ID');
  const partsKey = sub('sk:{$SHARD}:session:$ID:parts');
  const held = new Map(); // the states (JSON) the case's messages lead to
  const heldPacked = new Map(); // the packed states the case's messages lead to
  let latest = null;
  let latestPacked = null;
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
      try { got = await client.sendCommand(args, asBuffers); } catch (e) { err = e; }
      const out = [];
      const replied = []; // the packed messages of the reply
      const render = (what, f) => { try { return f(); } catch (e) { out.push(`${what}: ${e.message}`); return undefined; } };
      if (st.error) {
        if (!err) throw new Error(`${label}: got ${JSON.stringify(text(got))}, want error ${st.error.code}`);
        const msg = err.message;
        const sp = msg.indexOf(' ');
        const code = sp < 0 ? msg : msg.slice(0, sp);
        if (code !== st.error.code) out.push(`error ${msg}, want ${st.error.code}`);
        match('details', subst(st.error.details, sub), JSON.parse(msg.slice(sp + 1)), out);
      } else {
        if (err) throw new Error(`${label}: ${err.message}`);
        const cmd = st.command?.[0].toUpperCase();
        got = render('reply', () => (cmd === 'XRANGE' || cmd === 'XREVRANGE' ? fromStream(got) : st.command ? text(got) : fromReply(got, replied, st.script)));
        match('reply', subst(st.reply, sub), normalize(got), out);
      }
      if (!st.command) {
        const packed = []; // the step's packed messages, in the order the script made them
        const msgs = (await drain()).map((m, j) => render(`message ${j}`, () => fromPublished(m, packed)) ?? '');
        packed.push(...replied);
        if (msgs.length !== st.published.length) {
          out.push(`published ${msgs.length} messages, want ${st.published.length}`);
        } else {
          msgs.forEach((m, j) => match(`message ${j}`, subst(st.published[j], sub), normalize(m), out));
        }
        // every state message of the step, in the order the script made them
        // (it publishes, then replies): a full state is held as it is, a
        // delta applied to the state held at its base; the state reached
        // must be the one getSession-2 reads back, so every rendering is
        // checked byte for byte against the scripts' own JSON
        let applied = packed.length > 0;
        try {
          for (const m of packed) {
            const s = m.kind === 'f'
              ? hold(held, { life: m.life, version: m.version, parts: m.partsJSON, full: m.reply[1] })
              : applyDelta(held, m.published);
            if (newer(s, latest)) latest = s;
          }
        } catch (e) {
          out.push(e.message);
          applied = false;
        }
        if (applied) {
          const r = await client.sendCommand(['EVALSHA', await load('getSession-2.lua'), '2', metaKey, partsKey, id]);
          const read = maskTime(build(r[0], r.slice(1)));
          const applied = maskTime(latest.full);
          if (applied !== read) {
            out.push(`the state applied from the messages (life ${latest.life}, version ${latest.version}) is not getSession-2's: ${firstDiff(applied, read)}`);
          }
        }
        // the same at the packed level: every packed message applied as it
        // is, and what readSession-2 reads back must be what is held
        let appliedPacked = true;
        try {
          for (const m of packed) {
            const s = applyPacked(heldPacked, m);
            if (newer(s, latestPacked)) latestPacked = s;
          }
        } catch (e) {
          out.push(e.message);
          appliedPacked = false;
        }
        if (appliedPacked && latestPacked) {
          let r;
          try {
            r = await client.sendCommand(['EVALSHA', await load('readSession-2.lua'), '2', metaKey, partsKey, id], asBuffers);
          } catch (e) {
            r = e;
          }
          if (r instanceof Error) {
            // a delete leaves nothing to read, and no state held is current
            if (st.script.startsWith('deleteSession') && r.message.startsWith('SESSION_NOT_FOUND')) latestPacked = null;
            else out.push(`readSession-2: ${r.message}`);
          } else if (r.length > 0) { // {}: stored field by field, nothing packed to compare
            const diff = packedDiff(latestPacked, { cfg: r[1], st: r[2], parts: r.slice(3) });
            if (diff) out.push(`the packed state applied (life ${latestPacked.life}, version ${latestPacked.version}) is not readSession-2's: ${diff}`);
          }
        }
      }
      if (out.length) failures.push(`${label}:\n  ${out.join('\n  ')}`);
    }
  } finally {
    await sub0.sUnsubscribe(channel, listener, true);
    if (keys.size) await client.del([...keys]);
  }
  return failures;
}

// binary.test.mjs, in a process of its own (node:test reports and exits there)
const binary = spawnSync(process.execPath, ['--test', join(root, 'testdata', 'node', 'binary.test.mjs')],
  { encoding: 'utf8', timeout: 60000 });
const binaryOK = binary.status === 0;
console.log(binaryOK ? 'ok   binary.test.mjs' : `FAIL binary.test.mjs\n${binary.stdout}${binary.stderr}${binary.error ?? ''}`);

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
if (failed || files.length === 0 || !binaryOK) {
  console.log(`${binaryOK ? '' : 'binary.test.mjs failed; '}${failed} of ${files.length} cases failed`);
  process.exit(1);
}
console.log(`${files.length} cases passed`);
