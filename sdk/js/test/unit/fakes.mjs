// Fakes for the unit tier: a clock with timers that only move when told,
// a WebSocket whose server side the test plays, and a /v1/time server on
// the fake clock with scripted network delays.

export class FakeTime {
  constructor(start = 1000) {
    this.t = start;
    this.q = [];
    this.seq = 0;
    this.timers = {
      setTimeout: (fn, ms) => {
        const h = { at: this.t + Math.max(0, ms), fn, id: this.seq++, ms };
        this.q.push(h);
        return h;
      },
      clearTimeout: (h) => {
        const i = this.q.indexOf(h);
        if (i >= 0) this.q.splice(i, 1);
      },
    };
  }
  now = () => this.t;
  /** advance runs every timer due within ms, in order, letting promises settle between. */
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      await flush();
      this.q.sort((a, b) => a.at - b.at || a.id - b.id);
      const h = this.q[0];
      if (!h || h.at > end) break;
      this.q.shift();
      this.t = Math.max(this.t, h.at);
      h.fn();
    }
    this.t = end;
    await flush();
  }
}

export async function flush() {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

/**
 * timeServer is a fetch for /v1/time on the fake clock: the server's clock
 * is local + offset; each call's delays come from delays() as [up, down, proc].
 */
export function timeServer(time, offset, delays) {
  const calls = [];
  const fetch = (url) => {
    const [up, down, proc] = delays(calls.length);
    calls.push(url);
    return new Promise((resolve) => {
      time.timers.setTimeout(() => {
        const recv = (time.t + offset) * 1000;
        time.timers.setTimeout(() => {
          const sent = (time.t + offset) * 1000;
          time.timers.setTimeout(() => resolve(new Response(JSON.stringify({
            timestamp_ms: Math.floor(sent / 1000), timestamp_us: Math.floor(sent),
            server_received_us: recv, server_sent_us: sent,
          }), { headers: { 'content-type': 'application/json' } })), down);
        }, proc);
      }, up);
    });
  };
  fetch.calls = calls;
  return fetch;
}

export class FakeWS {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closed = false;
    FakeWS.all.push(this);
  }
  static last() { return FakeWS.all[FakeWS.all.length - 1]; }
  static reset() { FakeWS.all = []; }
  send(d) { this.sent.push(JSON.parse(d)); }
  close() { this.closed = true; }
  // the server side
  deliver(m) { this.onmessage?.({ data: JSON.stringify(m) }); }
  drop(code = 1006, reason = '') { this.onclose?.({ code, reason }); }
  types() { return this.sent.map((m) => m.type); }
}

export function state(version, over = {}) {
  return {
    session_id: 'S', sync_mode: 'per_participant', status: 'running', version,
    active_participant_id: 'A', total_time_ms: 120000, time_per_cycle_ms: null,
    cycle_started_at: '2026-01-01T00:00:00.000Z', session_started_at: '2026-01-01T00:00:00.000Z',
    session_completed_at: null, created_at: '2026-01-01T00:00:00.000Z', updated_at: '2026-01-01T00:00:00.000Z',
    participants: [
      { participant_id: 'A', participant_index: 0, total_time_ms: 60000, time_used_ms: 0, time_remaining_ms: 60000, cycle_count: 0, is_active: true, has_expired: false },
      { participant_id: 'B', participant_index: 1, total_time_ms: 60000, time_used_ms: 0, time_remaining_ms: 60000, cycle_count: 0, is_active: false, has_expired: false },
    ],
    ...over,
  };
}
