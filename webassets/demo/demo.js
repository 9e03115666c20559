// The SyncKairos demo: a 2-4 player chess clock. Every digit is drawn each
// frame from view.remainingMs(), i.e. from the server's stamps and the
// synced clock; the page's own Date is never used for time.
import { SyncKairos } from '/sdk/synckairos.js';

const $ = (id) => document.getElementById(id);
const sk = new SyncKairos();
const demo = { sk, view: null, rendered: null };
window.demo = demo; // for the browser tests and the curious

function fmt(ms) {
  if (ms === undefined) return '–';
  const t = Math.max(0, ms);
  const h = Math.floor(t / 3_600_000), m = Math.floor(t / 60_000) % 60, s = Math.floor(t / 1000) % 60;
  const ss = String(s).padStart(2, '0');
  if (h > 0) return `${h}:${String(m).padStart(2, '0')}:${ss}`;
  if (t < 20_000) return `${m}:${ss}.${Math.floor(t / 100) % 10}`;
  return `${m}:${ss}`;
}

function flash(text) {
  const el = $('msg');
  el.textContent = text;
  el.hidden = !text;
  if (text) setTimeout(() => { if (el.textContent === text) el.hidden = true; }, 4000);
}

async function act(op) {
  const v = demo.view;
  if (!v || !v.state) return;
  try {
    if (op === 'switch') await sk.switch(v.id, { expectedVersion: v.state.version });
    else await sk[op](v.id);
  } catch (e) {
    // A switch that lost a race with the other screen is a CONFLICT: fine.
    flash(e.code === 'CONFLICT' ? 'Someone else moved first.' : `${e.code}: ${e.message}`);
  }
}

$('setup').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const n = Number($('players').value);
  const ms = Math.round(Number($('minutes').value) * 60_000);
  const inc = Math.round(Number($('increment').value) * 1000);
  try {
    const st = await sk.createSession({
      sync_mode: 'per_participant',
      increment_ms: inc,
      participants: Array.from({ length: n }, () => ({ total_time_ms: ms })),
    });
    history.pushState(null, '', '/demo/?session=' + st.session_id);
    join(st.session_id);
  } catch (e) {
    flash(`${e.code}: ${e.message}`);
  }
});

let clocks = [];
function build(st) {
  const box = $('clocks');
  box.innerHTML = '';
  box.style.setProperty('--n', String(st.participants.length));
  box.dataset.n = String(st.participants.length);
  clocks = st.participants.map((p) => {
    const el = document.createElement('button');
    el.className = 'clock';
    el.dataset.pid = p.participant_id;
    el.innerHTML = `<span class="name">Player ${p.participant_index + 1}</span><span class="digits">–</span>`;
    // Tapping your own running clock ends your turn, as on a real one.
    el.addEventListener('click', () => {
      const s = demo.view?.state;
      if (s?.status === 'running' && s.active_participant_id === p.participant_id) act('switch');
    });
    box.appendChild(el);
    return { pid: p.participant_id, el, digits: el.querySelector('.digits') };
  });
}

const STATUS = {
  pending: 'Ready: press Start.', running: 'Running: space bar or tap your clock to switch.',
  paused: 'Paused.', expired: 'Time is up.', completed: 'Game over.', cancelled: 'Cancelled.',
};

function render(st) {
  if (!clocks.length || clocks.length !== st.participants.length) build(st);
  $('status').textContent = STATUS[st.status] ?? st.status;
  $('version').textContent = String(st.version);
  const can = {
    start: st.status === 'pending', switch: st.status === 'running', pause: st.status === 'running',
    resume: st.status === 'paused', complete: st.status === 'running' || st.status === 'paused',
  };
  for (const b of document.querySelectorAll('#controls button')) {
    b.disabled = !can[b.dataset.op];
    b.hidden = (b.dataset.op === 'resume' && st.status !== 'paused') || (b.dataset.op === 'pause' && st.status === 'paused');
  }
  for (const c of clocks) {
    const p = st.participants.find((x) => x.participant_id === c.pid);
    c.el.classList.toggle('active', st.active_participant_id === c.pid && st.status !== 'completed');
    c.el.classList.toggle('out', !!p?.has_expired);
  }
  demo.rendered = { version: st.version, active: st.active_participant_id, status: st.status };
}

function frame() {
  const v = demo.view;
  if (v?.state) {
    for (const c of clocks) {
      const r = v.remainingMs(c.pid);
      c.digits.textContent = fmt(r);
      c.el.classList.toggle('low', r !== undefined && r < 20_000 && r > 0);
    }
  }
  requestAnimationFrame(frame);
}

function stats() {
  const c = sk.clock;
  const f = (x) => (Number.isFinite(x) ? `${x.toFixed(1)} ms` : '–');
  $('offset').textContent = c.synced ? f(c.offsetMs) : '–';
  $('rtt').textContent = f(c.rttMs);
  $('unc').textContent = f(c.uncertaintyMs);
}

function join(id) {
  $('setup').hidden = true;
  $('game').hidden = false;
  $('link').value = `${location.origin}/demo/?session=${id}`;
  const v = (demo.view = sk.session(id));
  v.on('state', render);
  v.on('connection', (c) => { $('conn').textContent = c; });
  v.on('deleted', () => flash('This session was deleted.'));
  v.on('expired', () => flash('Time is up!'));
}

for (const b of document.querySelectorAll('#controls button')) b.addEventListener('click', () => act(b.dataset.op));
$('copy').addEventListener('click', async () => {
  $('link').select();
  try { await navigator.clipboard.writeText($('link').value); flash(''); } catch { document.execCommand?.('copy'); }
});
document.addEventListener('keydown', (ev) => {
  if (ev.code !== 'Space' || ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement) return;
  ev.preventDefault();
  if (demo.view?.state?.status === 'running') act('switch');
});
sk.on('sync', stats);
setInterval(stats, 1000);
requestAnimationFrame(frame);
void sk.startSync();

const id = new URLSearchParams(location.search).get('session');
if (id) join(id);
