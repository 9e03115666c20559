// jitterproxy.mjs: a TCP proxy that delays every chunk by base ± jitter ms
// (uniform), each direction on its own. TCP keeps order, so a chunk never
// overtakes an earlier one on the same connection: it leaves at the later
// of its own delay and the previous chunk's departure.
import net from 'node:net';

export function startJitterProxy(targetPort, { baseMs = 50, jitterMs = 20, random = Math.random } = {}) {
  const socks = new Set();
  const delay = () => baseMs + (random() * 2 - 1) * jitterMs;
  const pipe = (from, to) => {
    let last = 0;
    from.on('data', (chunk) => {
      const at = Math.max(last, performance.now() + delay());
      last = at;
      setTimeout(() => { if (!to.destroyed) to.write(chunk); }, at - performance.now());
    });
    from.on('end', () => {
      setTimeout(() => to.end(), Math.max(0, last - performance.now()) + 1);
    });
    from.on('error', () => to.destroy());
  };
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect(targetPort, '127.0.0.1');
    upstream.setNoDelay(true);
    socks.add(client).add(upstream);
    client.on('close', () => socks.delete(client));
    upstream.on('close', () => socks.delete(upstream));
    pipe(client, upstream);
    pipe(upstream, client);
  });
  return new Promise((res) => server.listen(0, '127.0.0.1', () => {
    const port = server.address().port;
    res({
      port,
      base: `http://127.0.0.1:${port}`,
      close: () => new Promise((r) => { for (const s of socks) s.destroy(); server.close(() => r()); }),
    });
  }));
}

// Run as a program (`node jitterproxy.mjs TARGET_PORT [BASE_MS JITTER_MS]`), it
// prints its port and runs until killed: the browser tier runs it in a
// process of its own so the test's own work cannot delay its timers.
if (process.argv[1] && import.meta.url === new URL('file://' + process.argv[1]).href) {
  const [target, base = '50', jitter = '20'] = process.argv.slice(2);
  const p = await startJitterProxy(Number(target), { baseMs: Number(base), jitterMs: Number(jitter) });
  console.log(p.port);
}

/** spawnJitterProxy runs the proxy in a child process; close() kills it by PID. */
export async function spawnJitterProxy(targetPort, baseMs = 50, jitterMs = 20) {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), String(targetPort), String(baseMs), String(jitterMs)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((res, rej) => {
    child.stdout.once('data', (d) => res(Number(String(d).trim())));
    child.once('exit', (c) => rej(new Error('jitter proxy exited ' + c)));
  });
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    close: () => new Promise((r) => { child.once('exit', r); process.kill(child.pid, 'SIGKILL'); }),
  };
}
