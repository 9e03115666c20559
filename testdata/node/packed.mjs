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

// unpack decodes one packed value: '[' is a JSON array (the embedded dev
// Redis packs with cjson), anything else MessagePack (cmsgpack).
export function unpack(buf) {
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
  const v = unpack(buf);
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
  const a = unpack(buf);
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
