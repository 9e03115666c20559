import { backoff } from './backoff.js';
import type { SyncKairos } from './client.js';
import { Emitter } from './emitter.js';
import { ServerMessage, SessionState } from './types.js';

export type ConnectionState = 'connecting' | 'open' | 'resyncing' | 'closed';

export interface ReconnectOptions {
  /** First retry delay ceiling, ms (default 250). */
  minDelayMs?: number;
  /** Largest retry delay, ms (default 5000). */
  maxDelayMs?: number;
  /** A client PING goes out this often; twice that in silence means a dead link (default 10000). */
  pingMs?: number;
}

export interface ConnectionInfo {
  attempt?: number;
  delayMs?: number;
  code?: number;
  reason?: string;
}

export interface SessionEvents {
  [k: string]: (...a: any[]) => void;
  state: (s: SessionState, prev: SessionState | null) => void;
  expired: (m: ServerMessage) => void;
  warning: (m: ServerMessage) => void;
  deleted: (m: ServerMessage) => void;
  connection: (c: ConnectionState, info: ConnectionInfo) => void;
  error: (m: ServerMessage) => void;
}

// The relay's close code for an expired token (the auth contract).
const TOKEN_EXPIRED = 4001;

/**
 * LiveSession is one session kept current over a WebSocket. Every
 * (re)connect asks for a STATE_SYNC (RECONNECT), and so does a version gap;
 * a lost connection is retried with capped exponential backoff and jitter.
 */
export class LiveSession extends Emitter<SessionEvents> {
  readonly id: string;
  state: SessionState | null = null;
  connection: ConnectionState = 'connecting';
  ended = false;

  private readonly sk: SyncKairos;
  private readonly o: Required<ReconnectOptions>;
  private ws: WebSocket | null = null;
  private attempt = 0;
  private retryTimer: unknown;
  private pingTimer: unknown;
  private tokenTimer: unknown;
  private lastHeard = 0;
  private refreshedOn4001 = false;

  constructor(sk: SyncKairos, id: string, o: ReconnectOptions = {}) {
    super();
    this.sk = sk;
    this.id = id;
    this.o = { minDelayMs: 250, maxDelayMs: 5000, pingMs: 10_000, ...o };
    this.sk.timers.setTimeout(() => void this.connect(), 0);
  }

  /** remainingMs is the participant's time left at sk.now(), from server stamps only. */
  remainingMs(participantId: string): number | undefined {
    const s = this.state;
    const p = s?.participants.find((x) => x.participant_id === participantId);
    if (!s || !p) return undefined;
    let r = p.time_remaining_ms;
    if (s.status === 'running' && p.is_active && s.cycle_started_at) {
      r -= this.sk.now() - Date.parse(s.cycle_started_at);
    }
    return Math.max(0, r);
  }

  /** activeRemainingMs is remainingMs of the active participant. */
  activeRemainingMs(): number | undefined {
    const a = this.state?.active_participant_id;
    return a ? this.remainingMs(a) : undefined;
  }

  private setConn(c: ConnectionState, info: ConnectionInfo = {}): void {
    this.connection = c;
    this.emit('connection', c, info);
  }

  private async connect(): Promise<void> {
    if (this.ended) return;
    this.setConn('connecting', { attempt: this.attempt });
    let url = this.sk.baseUrl.replace(/^http/, 'ws') + '/ws?sessionId=' + encodeURIComponent(this.id);
    let ws: WebSocket;
    try {
      const tok = await this.sk.getToken();
      if (tok) url += '&token=' + encodeURIComponent(tok);
      ws = new (this.sk.wsCtor())(url);
    } catch (e) {
      if (this.ended) return;
      this.retry({ reason: (e as Error).message });
      return;
    }
    if (this.ended) {
      ws.close();
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev: MessageEvent) => {
      if (ws !== this.ws) return;
      this.lastHeard = this.sk.mono();
      let m: ServerMessage;
      try {
        m = JSON.parse(typeof ev.data === 'string' ? ev.data : String(ev.data));
      } catch {
        return;
      }
      this.onMessage(m);
    };
    ws.onclose = (ev: CloseEvent) => this.lost(ws, ev.code, ev.reason);
    ws.onerror = () => {};
  }

  /** lost handles the end of socket ws: reconnect unless the view ended. */
  private lost(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ws = null;
    this.stopTimers();
    if (this.ended) return;
    if (code === TOKEN_EXPIRED && !this.refreshedOn4001) {
      // Get a new token and come straight back, once; a second 4001 in a
      // row takes the usual backoff.
      this.refreshedOn4001 = true;
      this.setConn('closed', { code, reason });
      void this.sk.getToken(true).then(() => this.connect(), () => this.retry({ code }));
      return;
    }
    this.retry({ code, reason });
  }

  private retry(info: ConnectionInfo): void {
    const delayMs = backoff(this.attempt, this.o.minDelayMs, this.o.maxDelayMs, this.sk.random);
    this.attempt++;
    this.setConn('closed', { ...info, attempt: this.attempt, delayMs });
    this.retryTimer = this.sk.timers.setTimeout(() => void this.connect(), delayMs);
  }

  private send(m: object): void {
    try {
      this.ws?.send(JSON.stringify(m));
    } catch {
      // closing: onclose reconnects
    }
  }

  /** resync asks the server for the full current state. */
  resync(): void {
    if (!this.ws) return;
    this.setConn('resyncing');
    this.send({ type: 'RECONNECT' });
  }

  private onMessage(m: ServerMessage): void {
    switch (m.type) {
      case 'CONNECTED':
        this.startTimers();
        this.resync();
        return;
      case 'STATE_SYNC':
        if (m.state) this.applyState(m.state, true);
        this.attempt = 0;
        this.refreshedOn4001 = false;
        if (this.connection !== 'open') this.setConn('open');
        return;
      case 'STATE_UPDATE':
        if (m.state) this.applyState(m.state, false);
        return;
      case 'STATE_DELTA':
        // The relay expands deltas; one that reaches us is read as a gap.
        this.resync();
        return;
      case 'SESSION_DELETED':
        this.end(m);
        return;
      case 'TIME_EXPIRED':
        this.emit('expired', m);
        return;
      case 'TIME_WARNING':
        this.emit('warning', m);
        return;
      case 'ERROR':
        if (m.code === 'SESSION_NOT_FOUND') {
          this.end(m);
          return;
        }
        this.emit('error', m);
        if (this.connection === 'resyncing') {
          // state unavailable or busy: ask again a little later
          this.sk.timers.setTimeout(() => this.resync(), backoff(0, this.o.minDelayMs * 2, this.o.maxDelayMs, this.sk.random));
        }
        return;
    }
  }

  /**
   * applyState takes a full state if it is newer (a STATE_SYNC also at the
   * same version). A version that skips one means messages were lost: the
   * newer state is kept and a STATE_SYNC requested.
   * @internal
   */
  applyState(st: SessionState, sync: boolean): void {
    const prev = this.state;
    const have = prev?.version ?? 0;
    if (st.version < have || (st.version === have && !sync)) return;
    this.state = st;
    if (!sync && have > 0 && st.version > have + 1 && this.connection === 'open') this.resync();
    this.emit('state', st, prev);
  }

  private end(m: ServerMessage): void {
    this.emit('deleted', m);
    this.close();
  }

  private startTimers(): void {
    this.stopTimers();
    this.lastHeard = this.sk.mono();
    const ping = () => {
      this.pingTimer = this.sk.timers.setTimeout(() => {
        const ws = this.ws;
        if (!ws) return;
        if (this.sk.mono() - this.lastHeard > 2 * this.o.pingMs) {
          // Silent for two periods: the link is dead though no close came.
          try {
            ws.close();
          } catch {
            // already closing
          }
          this.lost(ws, 4000, 'no reply');
          return;
        }
        this.send({ type: 'PING' });
        ping();
      }, this.o.pingMs);
    };
    ping();
    const r = this.sk.tokenRefreshIn();
    if (r !== undefined) {
      this.tokenTimer = this.sk.timers.setTimeout(async () => {
        try {
          const token = await this.sk.getToken(true);
          if (token) this.send({ type: 'AUTH', token });
        } catch {
          // the server closes with 4001 at expiry; we refresh then
        }
        this.startTimers();
      }, r);
    }
  }

  private stopTimers(): void {
    this.sk.timers.clearTimeout(this.pingTimer);
    this.sk.timers.clearTimeout(this.tokenTimer);
  }

  /** close ends the view: no more reconnects. */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.stopTimers();
    this.sk.timers.clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null;
    try {
      ws?.close(1000);
    } catch {
      // already closed
    }
    this.setConn('closed', {});
  }
}
