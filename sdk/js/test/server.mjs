// server.mjs starts the real SyncKairos binary for the integration and
// browser tiers: built once per process from the repo with `go build`, run
// on a free loopback port against the machine's Redis, rate limits off,
// stopped by its PID.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
let binary;

export function build() {
  if (binary) return binary;
  const dir = mkdtempSync(join(tmpdir(), 'sk-sdk-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  binary = join(dir, 'synckairos');
  execFileSync('go', ['build', '-o', binary, '.'], { cwd: repo, stdio: 'inherit' });
  return binary;
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

export class Server {
  constructor(port, env = {}) {
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
    this.env = env;
    this.log = '';
  }

  static async start(env = {}) {
    const s = new Server(await freePort(), env);
    await s.start();
    return s;
  }

  async start() {
    const bin = build();
    this.proc = spawn(bin, [], {
      env: {
        PATH: process.env.PATH, PORT: String(this.port), REDIS_URL: 'redis://127.0.0.1:6379',
        RATE_LIMIT_ENABLED: 'false', LOG_REQUESTS: 'false', LOG_LEVEL: 'warn', ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (d) => { this.log = (this.log + d).slice(-20000); };
    this.proc.stdout.on('data', keep);
    this.proc.stderr.on('data', keep);
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.exited = exited;
    const deadline = Date.now() + 15000;
    for (;;) {
      try {
        const r = await fetch(this.base + '/health');
        if (r.ok) return;
      } catch {}
      if (this.proc.exitCode !== null) throw new Error('server exited at start:\n' + this.log);
      if (Date.now() > deadline) throw new Error('server did not answer /health in 15 s:\n' + this.log);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** kill stops the process at once (SIGKILL): no graceful close frames. */
  async kill() {
    if (!this.proc || this.proc.exitCode !== null) return;
    process.kill(this.proc.pid, 'SIGKILL');
    await this.exited;
  }

  /** stop ends it gracefully (SIGTERM), waiting for the exit. */
  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    process.kill(this.proc.pid, 'SIGTERM');
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 10000))]);
    if (this.proc.exitCode === null) await this.kill();
  }
}

export function twoPlayers(ms = 60_000, extra = {}) {
  return { sync_mode: 'per_participant', participants: [{ total_time_ms: ms }, { total_time_ms: ms }], ...extra };
}
