// The Node twin of Go's rendering of the packed contract (lua/README.md
// "Packed messages"; the head is fullstate/render.go RenderHead): from what the
// transition scripts store, publish, reply and XADD packed, it writes the
// v1 JSON the revision-2 scripts built in Lua, byte for byte.
import { decode } from '@msgpack/msgpack';

// bytes turns every string of a decoded value into a Buffer of its exact
// bytes: cfg, st and fragments are packed values inside the message, which
// UTF-8 decoding would corrupt.
function bytes(v) {
  if (typeof v === 'string' || v instanceof Uint8Array) return Buffer.from(v);
  if (Array.isArray(v)) return v.map(bytes);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, e]) => [k, bytes(e)]));
  return v;
}

// The revision-4 layouts, which lua/ writes with Redis's `struct` (the
// format of each is beside it): a one-byte tag, then the slots revision 3
// packed with MessagePack, in its order, all big-endian. Each field
// is [name, type]: s16 and s32 are a uint16 or uint32 length then that many
// bytes (a Buffer); i4 int32, I4 uint32, i8 int64 (numbers); i8? an int64
// that may be NONE (the int64 minimum), given as an empty Buffer, the ""
// revision 3 stored; bool a u8 of 0 or 1; groups an s32 of entries, each a
// group id s16 and a bank i8, given as {group_id: bank}.
const NONE = -(2n ** 63n);
const layouts = {
  // >c1Hc0i4i8i8i4BBHc0
  P: ['participant', [['participant_id', 's16'], ['participant_index', 'i4'], ['total_time_ms', 'i8'],
    ['time_used_ms', 'i8'], ['cycle_count', 'i4'], ['is_active', 'bool'], ['has_expired', 'bool'], ['group_id', 's16']]],
  // >c1Hc0Hc0I4Hc0Hc0Hc0Hc0Hc0I4c0i8Hc0i8
  C: ['cfg', [['id', 's16'], ['mode', 's16'], ['n', 'I4'], ['total', 's16'], ['per_cycle', 's16'], ['incr', 's16'],
    ['max', 's16'], ['auto', 's16'], ['meta', 's32'], ['created_at', 'i8'], ['warn', 's16'], ['life', 'i8']]],
  // >c1Hc0i8i8Hc0i8i8i8i8i8i8i4i8I4c0
  S: ['st', [['status', 's16'], ['version', 'i8'], ['active', 'i8?'], ['active_id', 's16'], ['cycle_at', 'i8?'],
    ['started_at', 'i8?'], ['completed_at', 'i8?'], ['updated_at', 'i8'], ['turn', 'i8'], ['used', 'i8'],
    ['warned', 'i4'], ['bank', 'i8?'], ['groups', 'groups']]],
  // >c1i8i8Hc0Hc0i8i8i8i8I4c0
  E: ['event', [['version', 'i8'], ['life', 'i8'], ['participant_id', 's16'], ['group_id', 's16'],
    ['time_remaining_ms', 'i8?'], ['time_elapsed_ms', 'i8?'], ['cycle_number', 'i8?'], ['timestamp', 'i8'], ['actor', 's32']]],
  // >c1c1i8i8i8i8I4I4HI4, the head; then (kind d) count positions I4,
  // the expired id, cfg and st, then count participants of layout P back
  // to back (each says where it ends)
  M: ['message', [['kind', 'kind'], ['life', 'i8'], ['version', 'i8'], ['base_version', 'i8'], ['now_ms', 'i8'],
    ['cfg', 'I4'], ['st', 'I4'], ['expired_id', 'u16'], ['count', 'I4']]],
};
const tagOf = { participant: 'P', cfg: 'C', st: 'S', event: 'E', message: 'M' };

// reader reads buf from byte at, every read checked against what is left;
// what names the value in errors.
const nBytes = (n) => (n === 1 ? '1 byte' : `${n} bytes`);

function reader(buf, at, what) {
  const take = (n, field) => {
    if (n > buf.length - at) throw new Error(`malformed ${what}: ${field} needs ${nBytes(n)}, ${buf.length - at} left`);
    at += n;
    return at - n;
  };
  const bytesOf = (n, f) => {
    const from = take(n, f);
    return Buffer.from(buf.subarray(from, at)); // a copy, as bytes() makes
  };
  const r = {
    left: () => buf.length - at,
    end() { if (at !== buf.length) throw new Error(`malformed ${what}: ${nBytes(buf.length - at)} after its last field`); },
    at: () => at,
    bytes: bytesOf,
    u8: (f) => buf.readUInt8(take(1, f)),
    u16: (f) => buf.readUInt16BE(take(2, f)),
    i4: (f) => buf.readInt32BE(take(4, f)),
    I4: (f) => buf.readUInt32BE(take(4, f)),
    s16: (f) => bytesOf(buf.readUInt16BE(take(2, f)), f),
    s32: (f) => bytesOf(buf.readUInt32BE(take(4, f)), f),
    i8(f, orNone) {
      const v = buf.readBigInt64BE(take(8, f));
      if (v === NONE) {
        if (orNone) return Buffer.alloc(0);
        throw new Error(`malformed ${what}: ${f} is NONE, which it may not be`);
      }
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
        throw new Error(`malformed ${what}: ${f} ${v} is beyond the integers a number holds exactly`);
      }
      return Number(v);
    },
    'i8?': (f) => r.i8(f, true),
    bool(f) {
      const v = r.u8(f);
      if (v > 1) throw new Error(`malformed ${what}: ${f} is ${v}, not 0 or 1`);
      return v === 1;
    },
    kind(f) {
      const v = bytesOf(1, f);
      if (v[0] !== 0x66 && v[0] !== 0x64) throw new Error(`malformed ${what}: ${f} is 0x${v.toString('hex')}, not f or d`);
      return v;
    },
    groups(f) {
      const g = reader(r.s32(f), 0, `${what} ${f}`);
      const seen = new Set();
      const entries = [];
      while (g.left() > 0) {
        const id = g.s16('a group id');
        if (seen.has(id.toString('hex'))) throw new Error(`malformed ${what}: group ${JSON.stringify(id.toString('utf8'))} twice in ${f}`);
        seen.add(id.toString('hex'));
        entries.push([id.toString('utf8'), g.i8(`group ${JSON.stringify(id.toString('utf8'))}'s bank`)]);
      }
      return Object.fromEntries(entries); // keys as MessagePack's map keys: UTF-8 text
    },
  };
  return r;
}

// unpackBinary decodes a value of a revision-4 layout, strictly: the tag,
// every length within what is left, nothing after the last field. A
// message's positions (kind d; none for f) and parts follow its head.
function unpackBinary(buf) {
  const [what, fields] = layouts[String.fromCharCode(buf[0])];
  const r = reader(buf, 1, `${what} (tag ${String.fromCharCode(buf[0])})`);
  const v = fields.map(([name, type]) => r[type](name));
  if (what === 'message') {
    const [kind, , , , , cfgLen, stLen, expiredLen, count] = v;
    const positions = [];
    if (kind[0] === 0x64) for (let i = 0; i < count; i++) positions.push(r.I4(`position ${i}`));
    const expired = r.bytes(expiredLen, 'expired_id');
    const cfg = r.bytes(cfgLen, 'cfg');
    const st = r.bytes(stLen, 'st');
    const parts = [];
    for (let i = 0; i < count; i++) {
      // a participant of layout P: its tag, id, 26 bytes of figures, group
      const from = r.at();
      if (r.bytes(1, `part ${i}`)[0] !== 0x50) throw new Error(`malformed ${what}: part ${i} is not of layout P`);
      r.s16(`part ${i}'s participant_id`);
      r.bytes(26, `part ${i}`);
      r.s16(`part ${i}'s group_id`);
      parts.push(Buffer.from(buf.subarray(from, r.at())));
    }
    v.splice(5, 4, cfg, st, expired, positions, parts);
  }
  r.end();
  return v;
}

// unpack decodes one packed value by its first byte: a revision-4 layout's
// tag (P, C, S, E, M), '[' a JSON array (the embedded dev Redis packs
// with cjson), anything else MessagePack (cmsgpack). what, when given,
// is the layout wanted ('participant', 'cfg', 'st', 'event', 'message'):
// a tagged value of another layout is an error.
export function unpack(buf, what) {
  if (buf.length > 0 && Object.hasOwn(layouts, String.fromCharCode(buf[0]))) {
    const tag = String.fromCharCode(buf[0]);
    if (what && tagOf[what] !== tag) throw new Error(`malformed packed ${what}: tag ${tag} is a ${layouts[tag][0]}'s, not a ${what}'s`);
    return unpackBinary(buf);
  }
  return bytes(buf[0] === 0x5b ? JSON.parse(buf.toString('utf8')) : decode(buf, { rawStrings: true }));
}

// integer reads an integer slot as Go's integer does: an integral number,
// or decimal text; undefined for anything else.
function integer(v) {
  if (typeof v === 'number') return Number.isInteger(v) ? v : undefined;
  if (Buffer.isBuffer(v) && /^[+-]?[0-9]+$/.test(v.toString('latin1'))) return Number(v.toString('latin1'));
  return undefined;
}

// text is a slot as the scripts splice it into JSON: a string as it is, an
// integer in decimal, '' (none) for anything else.
function text(v) {
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  const n = integer(v);
  return n === undefined ? '' : String(n);
}

const orNull = (v) => text(v) || 'null';

// Go's "2006-01-02T15:04:05.000Z": the year has at least four digits.
function iso(ms) {
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  return `"${y < 0 ? '-' : ''}${String(Math.abs(y)).padStart(4, '0')}${d.toISOString().replace(/^[+-]?\d+/, '')}"`;
}
const isoOrNull = (v) => (integer(v) === undefined ? 'null' : iso(integer(v)));

function slots(buf, n, what) {
  const v = unpack(buf, what);
  if (!Array.isArray(v) || v.length < n) throw new Error(`malformed packed ${what}: ${buf.toString('hex').slice(0, 80)}`);
  return v;
}

// renderHead is fullstate/render.go RenderHead: the state without
// "participants", from the meta hash's packed cfg and st (lua/README.md
// "The meta hash") and the state's time.
export function renderHead(cfg, st, nowMS) {
  const [id, mode, , total, perCycle, incr, max, auto, meta, createdAt, warn, life] = slots(cfg, 12, 'cfg');
  const [status, version, , activeID, cycleAt, startedAt, completedAt, updatedAt, , , , bank, groups] = slots(st, 13, 'st');
  // ids are spliced unescaped, as the scripts splice them: they are UUIDs
  let out = `{"session_id":"${text(id)}","sync_mode":"${text(mode)}","status":"${text(status)}"`
    + `,"version":${text(version)},"life":${text(life)}`
    + `,"active_participant_id":${text(activeID) ? `"${text(activeID)}"` : 'null'}`
    + `,"total_time_ms":${text(total)},"time_per_cycle_ms":${orNull(perCycle)}`;
  if (text(incr)) out += `,"increment_ms":${text(incr)}`;
  if (text(max)) out += `,"max_time_ms":${text(max)}`;
  if (text(meta)) out += `,"metadata":${text(meta)}`;
  if (text(warn)) out += `,"warnings_ms":[${text(warn)}]`;
  if (text(mode) === 'global' && integer(bank) !== undefined) out += `,"time_remaining_ms":${Math.max(integer(bank), 0)}`;
  if (text(mode) === 'per_group') {
    // a map; an empty Lua table packs as an empty array: no groups
    const g = groups && typeof groups === 'object' && !Array.isArray(groups) && !Buffer.isBuffer(groups) ? groups : {};
    const ids = Object.keys(g).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))); // bytewise, as Go and Lua
    out += `,"group_remaining_ms":{${ids.map((k) => `"${k}":${Math.max(integer(g[k]) ?? 0, 0)}`).join(',')}}`;
  }
  return `${out},"auto_advance":${text(auto) === '1'}`
    + `,"cycle_started_at":${isoOrNull(cycleAt)},"session_started_at":${isoOrNull(startedAt)}`
    + `,"session_completed_at":${isoOrNull(completedAt)},"created_at":${isoOrNull(createdAt)}`
    + `,"updated_at":${isoOrNull(updatedAt)},"server_time_ms":${nowMS}}`;
}

function int(v, what) {
  const n = integer(v);
  if (n === undefined) throw new Error(`${what} is not an integer: ${JSON.stringify(v)}`);
  return n;
}

function bool(v, what) {
  if (typeof v !== 'boolean') throw new Error(`${what} is not a boolean: ${JSON.stringify(v)}`);
  return v;
}

// renderPart is a stored participant fragment as v1 JSON; one the
// revision-2 scripts wrote is that JSON already.
export function renderPart(frag) {
  if (frag[0] === 0x7b) return frag.toString('utf8');
  const [pid, index, total, used, cycles, active, expired, group] = slots(frag, 8, 'participant');
  const t = int(total, 'total_time_ms');
  const g = text(group);
  return `{"participant_id":"${text(pid)}","participant_index":${int(index, 'participant_index')}`
    + `,"total_time_ms":${t},"time_used_ms":${int(used, 'time_used_ms')},"time_remaining_ms":${Math.max(t, 0)}`
    + `,"cycle_count":${int(cycles, 'cycle_count')},"is_active":${bool(active, 'is_active')}`
    + `,"has_expired":${bool(expired, 'has_expired')}${g ? `,"group_id":"${g}"` : ''}}`;
}

// build joins a head and participants' JSON into the full v1 state
// (lua/README.md "Applying a delta", step 5).
export const build = (head, parts) => `${head.slice(0, -1)},"participants":[${parts.join(',')}]}`;

// renderMessage decodes a packed message and renders it: `reply` is what
// the revision-2 scripts replied (["full", state] or ["delta",
// STATE_DELTA]), `published` what they published (STATE_UPDATE or the
// same STATE_DELTA). The packed slots stay as they are (cfg, st, parts
// as Buffers), for a caller that applies messages at the packed level;
// partsJSON are the fragments rendered.
export function renderMessage(buf) {
  const a = unpack(buf, 'message');
  if (!Array.isArray(a) || a.length < 10) throw new Error(`malformed packed message: ${buf.toString('hex').slice(0, 80)}`);
  const kind = text(a[0]);
  if (kind !== 'f' && kind !== 'd') throw new Error(`packed message of kind ${JSON.stringify(kind)}`);
  const [life, version, base, now] = ['life', 'version', 'base_version', 'now_ms'].map((w, i) => int(a[i + 1], `message ${w}`));
  const [, , , , , cfg, st, expiredID] = a;
  const positions = (Array.isArray(a[8]) ? a[8] : []).map((p) => int(p, 'a position')); // cjson may write [] as {}
  const parts = Array.isArray(a[9]) ? a[9] : [];
  const c = slots(cfg, 12, 'cfg');
  const s = slots(st, 13, 'st');
  if (integer(c[11]) !== life || integer(s[1]) !== version) {
    throw new Error(`message of life ${life}, version ${version} carries cfg life ${text(c[11])}, st version ${text(s[1])}`);
  }
  const n = int(c[2], 'cfg n');
  let head = renderHead(cfg, st, now);
  if (text(expiredID)) head = `${head.slice(0, -1)},"expired_participant_id":"${text(expiredID)}"}`;
  const partsJSON = parts.map(renderPart);
  const id = text(c[0]);
  let reply, published;
  if (kind === 'f') {
    const state = build(head, partsJSON);
    reply = ['full', state];
    published = `{"type":"STATE_UPDATE","sessionId":"${id}","timestamp":${now},"version":${version},"life":${life},"state":${state}}`;
  } else {
    published = `{"type":"STATE_DELTA","sessionId":"${id}","timestamp":${now},"version":${version},"life":${life}`
      + `,"base_version":${base},"participant_count":${n},"session":${head}`
      + `,"positions":[${positions.join(',')}],"participants":[${partsJSON.join(',')}]}`;
    reply = ['delta', published];
  }
  return { kind, life, version, base, now, n, cfg, st, positions, parts, partsJSON, reply, published };
}

// renderEvent lays out an audit entry of the packed layout (type,
// session_id, event, state) in the fields the revision-2 scripts wrote, in
// their order (lua/README.md "Audit events").
export function renderEvent(type, sessionID, event, state) {
  const [version, life, pid, gid, remaining, elapsed, cycle, timestamp, actor] = slots(event, 9, 'event').map(text);
  const [kind, json] = renderMessage(state).reply;
  return ['type', type, 'session_id', sessionID, 'version', version, 'life', life, 'participant_id', pid,
    'group_id', gid, 'time_remaining_ms', remaining, 'time_elapsed_ms', elapsed, 'cycle_number', cycle,
    'timestamp', timestamp, 'state_kind', kind, 'state', json, 'actor', actor];
}
