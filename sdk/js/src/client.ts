import { backoff } from './backoff.js';
import { ClockInfo, ClockOptions, ClockSync, ServerStamps } from './clock.js';
import { Emitter } from './emitter.js';
import { RETRYABLE, SyncKairosError } from './errors.js';
import { LiveSession, ReconnectOptions } from './session.js';
import { SessionConfig, SessionState, SwitchOptions } from './types.js';
import { jwtExpiryMs, realTimers, Timers, uuid } from './util.js';

/** The WebSocket constructor shape the SDK needs (browsers' and the ws package's). */
export type WebSocketCtor = new (url: string) => WebSocket;

export interface SyncKairosOptions {
  /** Where the server is, e.g. "https://clock.example.com" (default: the page's origin). */
  baseUrl?: string;
  /** A fixed bearer token. */
  token?: string;
  /** Called before each connection and before the token expires (JWT exp). */
  getToken?: () => string | Promise<string>;
  /** The WebSocket implementation; Node 20 needs one (e.g. the ws package). */
  WebSocket?: WebSocketCtor;
  /** Retries of a call after OUTCOME_UNKNOWN, UNAVAILABLE or no reply (default 4). */
  retries?: number;
  /** Per-attempt REST timeout, ms (default 10000). */
  timeoutMs?: number;
  clock?: ClockOptions;
  reconnect?: ReconnectOptions;
  /** Test seams: fetch, the monotonic and wall clocks, timers, randomness. */
  fetch?: typeof fetch;
  monotonic?: () => number;
  wallClock?: () => number;
  timers?: Timers;
  random?: () => number;
}

export interface ClientEvents {
  [k: string]: (...a: any[]) => void;
  /** The estimate moved by more than clock.jumpMs at once. */
  jump: (deltaMs: number) => void;
  /** A sync burst finished. */
  sync: (clock: ClockInfo) => void;
}

/** SyncKairos is the client: REST calls, the shared clock, live session views. */
export class SyncKairos extends Emitter<ClientEvents> {
  readonly baseUrl: string;
  /** @internal */ readonly opts: SyncKairosOptions;
  /** @internal */ readonly timers: Timers;
  /** @internal */ readonly random: () => number;
  /** @internal */ readonly mono: () => number;
  private readonly fetchFn: typeof fetch;
  private readonly sync: ClockSync;
  private token: string | undefined;
  private tokenExp: number | undefined;
  private tokenReq: Promise<string | undefined> | null = null;
  private views = new Set<LiveSession>();
  private seq = 0;

  constructor(opts: SyncKairosOptions = {}) {
    super();
    this.opts = opts;
    const loc = (globalThis as { location?: { origin: string } }).location;
    this.baseUrl = (opts.baseUrl ?? loc?.origin ?? '').replace(/\/+$/, '');
    if (!this.baseUrl) throw new TypeError('SyncKairos: baseUrl is required outside a browser');
    this.fetchFn = opts.fetch ?? ((...a) => fetch(...a));
    this.timers = opts.timers ?? realTimers;
    this.random = opts.random ?? Math.random;
    this.token = opts.token;
    const mono = (this.mono = opts.monotonic ?? (() => performance.now()));
    const wall = opts.wallClock ?? (() => Date.now());
    this.sync = new ClockSync(mono, wall, () => this.stamps(), this.timers, opts.clock,
      (d) => this.emit('jump', d), () => this.emit('sync', this.clock));
  }

  /** now is the server clock's estimate, ms since the epoch (a float). */
  now(): number {
    return this.sync.now();
  }

  get clock(): ClockInfo {
    return this.sync.info();
  }

  /** startSync runs the connect burst (resolves when done) and periodic resyncs. */
  startSync(): Promise<void> {
    return this.sync.start();
  }

  /** resync takes a burst now, e.g. after the tab was asleep. */
  resync(n = 4): Promise<void> {
    return this.sync.burst(n);
  }

  /**
   * stamps is one /v1/time reading (its receive and send stamps, in ms).
   * In a browser the request's Resource Timing gives when it really left
   * and when the reply's first byte came, free of main-thread delays; a
   * unique query finds its entry.
   */
  private async stamps(): Promise<ServerStamps> {
    const url = this.baseUrl + '/v1/time?n=' + ++this.seq;
    const before = this.mono();
    const r = await this.fetchFn(url, { cache: 'no-store' });
    // the reply's headers are here: parsing the body below is not transit
    const arrived = this.mono();
    if (!r.ok) throw new Error('/v1/time: HTTP ' + r.status);
    const j = await r.json();
    const st: ServerStamps = typeof j.server_received_us === 'number' && typeof j.server_sent_us === 'number'
      ? { receivedMs: j.server_received_us / 1000, sentMs: j.server_sent_us / 1000 }
      // An older server: whole ms, truncated, so its midpoint is +0.5.
      : { receivedMs: j.timestamp_ms + 0.5, sentMs: j.timestamp_ms + 0.5 };
    const perf = globalThis.performance as Performance | undefined;
    const e = this.opts.monotonic ? undefined : (perf?.getEntriesByName?.(url) as PerformanceResourceTiming[] | undefined)?.[0];
    if (e && e.requestStart > 0 && e.responseStart > 0) {
      st.sentAt = e.requestStart;
      st.receivedAt = e.responseStart;
    } else {
      // No Resource Timing (Node, or a page whose performance is replaced):
      // the tightest stamps the caller has.
      st.sentAt = before;
      st.receivedAt = arrived;
    }
    return st;
  }

  /** @internal getToken returns a token fresh for at least 30 s, or undefined. */
  async getToken(force = false): Promise<string | undefined> {
    const g = this.opts.getToken;
    if (!g) return this.token;
    const fresh = this.token !== undefined && (this.tokenExp === undefined || this.tokenExp - this.now() > 30_000);
    if (fresh && !force) return this.token;
    this.tokenReq ??= (async () => {
      try {
        this.token = await g();
        this.tokenExp = jwtExpiryMs(this.token);
        return this.token;
      } finally {
        this.tokenReq = null;
      }
    })();
    return this.tokenReq;
  }

  /** @internal tokenRefreshIn is when to refresh the current token, ms from now. */
  tokenRefreshIn(): number | undefined {
    if (!this.opts.getToken || this.tokenExp === undefined) return undefined;
    return Math.max(1000, this.tokenExp - this.now() - 30_000);
  }

  /** @internal WebSocketCtor is the implementation in use. */
  wsCtor(): WebSocketCtor {
    const W = this.opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
    if (!W) throw new TypeError('SyncKairos: no global WebSocket here; pass one, e.g. { WebSocket } from the ws package');
    return W;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.timers.setTimeout(r, ms));
  }

  /**
   * request sends one REST call. A mutation carries one Idempotency-Key,
   * the same on every retry, so a retry after OUTCOME_UNKNOWN, UNAVAILABLE
   * or a lost reply cannot apply the change twice.
   */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const key = method === 'GET' ? undefined : uuid();
    const retries = this.opts.retries ?? 4;
    for (let attempt = 0; ; attempt++) {
      let err: SyncKairosError;
      try {
        return await this.attempt<T>(method, path, body, key);
      } catch (e) {
        err = e as SyncKairosError;
      }
      if (!RETRYABLE.has(err.code) || attempt >= retries) throw err;
      const wait = backoff(attempt, 100, 2000, this.random);
      await this.sleep(err.retryAfter !== undefined ? Math.max(err.retryAfter * 1000, wait) : wait);
    }
  }

  private async attempt<T>(method: string, path: string, body: unknown, key?: string): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (key) headers['Idempotency-Key'] = key;
    const tok = await this.getToken();
    if (tok) headers.Authorization = 'Bearer ' + tok;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    const ac = new AbortController();
    const t = this.timers.setTimeout(() => ac.abort(), this.opts.timeoutMs ?? 10_000);
    let res: Response;
    let text: string;
    try {
      res = await this.fetchFn(this.baseUrl + path, { method, headers, body: payload, signal: ac.signal });
      text = await res.text();
    } catch (e) {
      const timedOut = ac.signal.aborted;
      throw new SyncKairosError(0, timedOut ? 'TIMEOUT' : 'NETWORK_ERROR',
        timedOut ? `${method} ${path}: no reply in time` : `${method} ${path}: ${(e as Error).message}`);
    } finally {
      this.timers.clearTimeout(t);
    }
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (res.ok) {
      const data = json?.data as T;
      this.feed(data);
      return data;
    }
    const e = json?.error ?? {};
    const ra = Number(res.headers.get('Retry-After'));
    throw new SyncKairosError(res.status, e.code ?? 'HTTP_' + res.status, e.message ?? res.statusText, e.details,
      Number.isFinite(ra) && res.headers.get('Retry-After') !== null ? ra : undefined);
  }

  /** feed hands a reply's full state to the live views of that session. */
  private feed(data: unknown): void {
    const st = data as SessionState | undefined;
    if (!st || typeof st !== 'object' || typeof st.version !== 'number' || !st.sync_mode) return;
    for (const v of this.views) if (v.id === st.session_id) v.applyState(st, false);
  }

  createSession(config: SessionConfig): Promise<SessionState> {
    const body = {
      ...config,
      session_id: config.session_id ?? uuid(),
      participants: config.participants.map((p, i) => ({
        ...p,
        participant_id: p.participant_id ?? uuid(),
        participant_index: p.participant_index ?? i,
      })),
    };
    return this.request('POST', '/v1/sessions', body);
  }

  get(id: string): Promise<SessionState> {
    return this.request('GET', '/v1/sessions/' + encodeURIComponent(id));
  }

  private action(id: string, op: string, body: unknown = {}): Promise<SessionState> {
    return this.request('POST', `/v1/sessions/${encodeURIComponent(id)}/${op}`, body);
  }

  start(id: string) { return this.action(id, 'start'); }
  pause(id: string) { return this.action(id, 'pause'); }
  resume(id: string) { return this.action(id, 'resume'); }
  complete(id: string) { return this.action(id, 'complete'); }

  switch(id: string, o: SwitchOptions = {}): Promise<SessionState> {
    const b: Record<string, unknown> = {};
    if (o.nextParticipantId !== undefined) b.next_participant_id = o.nextParticipantId;
    if (o.currentParticipantId !== undefined) b.current_participant_id = o.currentParticipantId;
    if (o.expectedVersion !== undefined) b.expected_version = o.expectedVersion;
    return this.action(id, 'switch', b);
  }

  async delete(id: string): Promise<void> {
    await this.request('DELETE', '/v1/sessions/' + encodeURIComponent(id));
  }

  /** session opens a live view (WebSocket + clock sync) of one session. */
  session(id: string): LiveSession {
    const v = new LiveSession(this, id, this.opts.reconnect);
    this.views.add(v);
    void this.startSync();
    v.on('connection', (c) => {
      if (c === 'closed' && v.ended) this.views.delete(v);
    });
    return v;
  }

  /** close ends every live view and the periodic resync. */
  close(): void {
    for (const v of this.views) v.close();
    this.views.clear();
    this.sync.stop();
  }
}
