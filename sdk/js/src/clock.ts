import { Timers } from './util.js';

/** A server reading: when the request arrived and when the reply left, epoch ms. */
export interface ServerStamps {
  receivedMs: number;
  sentMs: number;
  /**
   * Local monotonic times at which the request went out and the reply
   * came in, when the transport knows them better than the caller's
   * stamps around the call (the browser's Resource Timing): taken only if
   * they lie within those stamps.
   */
  sentAt?: number;
  receivedAt?: number;
}

/**
 * One NTP-style exchange, t0/t3 on the local monotonic base and s1/s2 the
 * server's stamps. Causality bounds the true offset: the request cannot
 * arrive before it left (offset <= s1 - t0 = hi) and the reply cannot
 * arrive before it was sent (offset >= s2 - t3 = lo).
 */
export interface Sample {
  offset: number; // NTP's estimate, (lo + hi) / 2: server time - local monotonic time, ms
  rtt: number; // the network's share of the round trip, hi - lo, ms
  lo: number;
  hi: number;
  at: number; // local monotonic time of the reply
}

export interface ClockInfo {
  /** Server clock minus this machine's wall clock (Date.now()), ms. */
  offsetMs: number;
  /** Network round trip of the best sample (server processing removed), ms. */
  rttMs: number;
  /**
   * How far the estimate may be from the server clock: half the width of
   * the samples' intersected bounds, at most half the best RTT.
   */
  uncertaintyMs: number;
  /** Samples the estimate is chosen from. */
  samples: number;
  synced: boolean;
}

export interface ClockOptions {
  /** Samples taken back to back at start (the lowest-RTT one wins). */
  burst?: number;
  /** Period of the resync bursts, ms. */
  resyncMs?: number;
  /**
   * The first resync comes this soon after the connect burst: that burst
   * often runs while the page loads, when both the network and the main
   * thread are busiest (NTP's iburst does the same).
   */
  settleMs?: number;
  /** Samples in each resync burst. */
  resyncBurst?: number;
  /** Most recent samples kept to choose from. */
  window?: number;
  /** Slew rate: how fast a small correction is worked in (0.05 = 50 ms per s). */
  slewRate?: number;
  /** A correction larger than this jumps at once (and emits 'jump'). */
  jumpMs?: number;
}

/** sample computes one Sample from the four stamps (NTP's formulas). */
export function sampleOf(t0: number, t3: number, s: ServerStamps): Sample {
  const hi = s.receivedMs - t0;
  const lo = Math.min(hi, s.sentMs - t3);
  return { offset: (lo + hi) / 2, rtt: hi - lo, lo, hi, at: t3 };
}

/**
 * ClockSync estimates the server clock on a monotonic local base
 * (performance.now()), so changing the OS clock moves nothing. Each sample
 * bounds the offset to [lo, hi], an interval as wide as its RTT, and the
 * recent samples' intervals are intersected: at least as tight as the
 * lowest-RTT sample alone (the bounds come from the fastest request leg and
 * the fastest reply leg, even in different samples). The estimate is taken
 * inside that interval (see estimate), so no slow or skewed sample can pull
 * it out of what causality allows. Samples that contradict newer ones
 * (a drifted or stepped server clock) are dropped, oldest first. A new
 * estimate close to the current one is slewed in (now() stays monotonic
 * and smooth); a far one jumps, announced.
 */
export class ClockSync {
  private readonly mono: () => number;
  private readonly wall: () => number;
  private readonly fetchStamps: () => Promise<ServerStamps>;
  private readonly timers: Timers;
  private readonly o: Required<ClockOptions>;
  private readonly onJump: (deltaMs: number) => void;
  private readonly onSync: () => void;

  private kept: Sample[] = [];
  private cur: number; // applied offset at curAt
  private curAt = 0;
  private tgt: number; // the estimate being slewed toward
  private last = -Infinity; // last value now() returned
  private timer: unknown;
  private running = false;
  private busy: Promise<void> | null = null;
  synced = false;

  constructor(
    mono: () => number,
    wall: () => number,
    fetchStamps: () => Promise<ServerStamps>,
    timers: Timers,
    opts: ClockOptions = {},
    onJump: (deltaMs: number) => void = () => {},
    onSync: () => void = () => {},
  ) {
    this.mono = mono;
    this.wall = wall;
    this.fetchStamps = fetchStamps;
    this.timers = timers;
    this.onJump = onJump;
    this.onSync = onSync;
    this.o = {
      burst: 8, resyncMs: 30_000, settleMs: 2000, resyncBurst: 4, window: 12, slewRate: 0.05, jumpMs: 100,
      ...opts,
    };
    // Until the first sample, the wall clock is the only guess there is.
    this.cur = this.tgt = wall() - mono();
  }

  /** offsetAt is the applied offset at local time t, slewing toward tgt. */
  private offsetAt(t: number): number {
    const d = this.tgt - this.cur;
    const step = this.o.slewRate * Math.max(0, t - this.curAt);
    return Math.abs(d) <= step ? this.tgt : this.cur + Math.sign(d) * step;
  }

  /** now is the server-clock estimate, epoch ms, monotonic between jumps. */
  now(): number {
    const t = this.mono();
    const v = Math.max(t + this.offsetAt(t), this.last);
    if (this.synced) this.last = v;
    return v;
  }

  info(): ClockInfo {
    const e = this.kept.length ? this.estimate() : undefined;
    return {
      offsetMs: this.now() - this.wall(),
      rttMs: e ? Math.min(...this.kept.map((s) => s.rtt)) : Infinity,
      uncertaintyMs: e ? e.width / 2 : Infinity,
      samples: this.kept.length,
      synced: this.synced,
    };
  }

  /**
   * estimate intersects the kept samples' intervals, newest first; an older
   * sample that would empty the intersection is dropped with all older ones.
   * The offset is the mean of two estimates: the intersection's middle
   * (set by the fastest legs: best when some samples got through quickly)
   * and the mean NTP offset of the samples whose RTT is under median + one
   * standard deviation (best when every sample was slowed a little),
   * clamped into the intersection, which is certain to hold the truth.
   */
  private estimate(): { offset: number; width: number } {
    let lo = -Infinity;
    let hi = Infinity;
    for (let i = this.kept.length - 1; i >= 0; i--) {
      const s = this.kept[i];
      const l = Math.max(lo, s.lo);
      const h = Math.min(hi, s.hi);
      if (h < l) {
        this.kept.splice(0, i + 1);
        break;
      }
      lo = l;
      hi = h;
    }
    const rtts = this.kept.map((s) => s.rtt).sort((a, b) => a - b);
    const n = rtts.length;
    const med = n % 2 ? rtts[(n - 1) / 2] : (rtts[n / 2 - 1] + rtts[n / 2]) / 2;
    const avg = rtts.reduce((a, b) => a + b, 0) / n;
    const lim = med + Math.sqrt(rtts.reduce((a, b) => a + (b - avg) ** 2, 0) / n);
    let sum = 0;
    let k = 0;
    for (const s of this.kept) {
      if (s.rtt <= lim) {
        sum += s.offset;
        k++;
      }
    }
    const mean = Math.min(hi, Math.max(lo, sum / k));
    return { offset: ((lo + hi) / 2 + mean) / 2, width: hi - lo };
  }

  /** add takes one sample and moves the estimate; initial applies it at once. */
  add(s: Sample, initial: boolean): void {
    this.kept.push(s);
    if (this.kept.length > this.o.window) this.kept.shift();
    const o = this.estimate().offset;
    const t = this.mono();
    this.cur = this.offsetAt(t);
    this.curAt = t;
    if (initial) {
      this.cur = this.tgt = o;
      return;
    }
    if (Math.abs(o - this.cur) > this.o.jumpMs) {
      const delta = o - this.cur;
      this.cur = this.tgt = o;
      this.last = -Infinity;
      this.onJump(delta);
    } else {
      this.tgt = o;
    }
  }

  /** measure takes one exchange; a failed one is skipped. */
  private async measure(initial: boolean): Promise<boolean> {
    const t0 = this.mono();
    let st: ServerStamps;
    try {
      st = await this.fetchStamps();
    } catch {
      return false;
    }
    const t3 = this.mono();
    const in_ = (x?: number) => x !== undefined && x >= t0 && x <= t3;
    const ok = in_(st.sentAt) && in_(st.receivedAt) && st.sentAt! <= st.receivedAt!;
    this.add(sampleOf(ok ? st.sentAt! : t0, ok ? st.receivedAt! : t3, st), initial);
    return true;
  }

  /** burst takes n samples back to back. */
  async burst(n: number): Promise<void> {
    if (this.busy) return this.busy;
    const initial = !this.synced;
    this.busy = (async () => {
      let got = 0;
      for (let i = 0; i < n * 2 && got < n; i++) if (await this.measure(initial)) got++;
      if (got > 0 && initial) {
        this.synced = true;
        this.last = -Infinity;
      }
      if (got > 0) this.onSync();
    })();
    try {
      await this.busy;
    } finally {
      this.busy = null;
    }
  }

  /** start runs the connect burst, then a resync burst every resyncMs. */
  start(): Promise<void> {
    if (this.running) return this.busy ?? Promise.resolve();
    this.running = true;
    let bursts = 0;
    const loop = () => {
      const wait = !this.synced ? 2000 : bursts++ === 0 ? this.o.settleMs : this.o.resyncMs;
      this.timer = this.timers.setTimeout(async () => {
        if (!this.running) return;
        await this.burst(this.o.resyncBurst);
        if (this.running) loop();
      }, wait);
    };
    const first = this.burst(this.o.burst).then(() => {
      if (this.running) loop();
    });
    return first;
  }

  stop(): void {
    this.running = false;
    this.timers.clearTimeout(this.timer);
  }
}
