// screenshot.mjs walks the demo as `make run` serves it (embedded Redis, no
// other setup) in Debian's Chromium and writes docs/demo.png (desktop) and
// docs/demo-phone.png: `node sdk/js/test/screenshot.mjs`.
import { chromium } from 'playwright-core';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server } from './server.mjs';

const docs = join(dirname(fileURLToPath(import.meta.url)), '../../../docs');
const srv = await Server.start({ REDIS_URL: '' });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const desk = await browser.newPage({ viewport: { width: 1200, height: 640 } });
  await desk.goto(srv.base + '/demo/');
  await desk.waitForFunction(() => window.demo.sk.clock.synced);
  await desk.selectOption('#players', '3');
  await desk.fill('#minutes', '3');
  await desk.click('#setup button[type=submit]');
  await desk.waitForFunction(() => window.demo.rendered?.status === 'pending');
  await desk.click('[data-op=start]');
  await desk.waitForTimeout(1300);
  await desk.keyboard.press('Space');
  await desk.waitForTimeout(2100);
  await desk.keyboard.press('Space');
  await desk.waitForFunction(() => window.demo.rendered?.version === 4);
  await desk.waitForTimeout(700);
  await desk.screenshot({ path: join(docs, 'demo.png') });

  const link = await desk.inputValue('#link');
  const phone = await browser.newPage({ viewport: { width: 390, height: 760 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true });
  await phone.goto(link);
  await phone.waitForFunction(() => window.demo.rendered?.version >= 4 && document.getElementById('conn').textContent === 'open');
  await phone.waitForTimeout(500);
  await phone.screenshot({ path: join(docs, 'demo-phone.png') });
  console.log('wrote docs/demo.png and docs/demo-phone.png');
} finally {
  await browser.close();
  await srv.stop();
}
