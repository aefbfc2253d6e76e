// A session's page: its details and actions, a terminal attached to the agent (xterm.js over
// the attach WebSocket: binary frames are terminal bytes, text frames JSON control), its
// checkpoints, and its event log, live. Leaving the page closes the socket: that detaches, and
// the agent keeps running. Attaching to a hibernated session wakes it; the wake's progress
// shows above the terminal.

import { api, enc, followSession } from './api.js';
import {
  h, ago, seconds, statusBadge, agentBadge, allowed, wake, hibernate, deleteWithConfirmation, setLive, confirmDialog,
} from './ui.js';

const MAX_LOG = 1000;

function time(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString();
}

/** One event as a log line, or null for agent output (the terminal shows it). */
function describe(kind, d) {
  switch (kind) {
    case 'status': return `status ${d.from ? `${d.from} → ` : ''}${d.to}${d.reason ? `: ${d.reason}` : ''}`;
    case 'progress': return `[${d.stage}] ${d.message}`;
    case 'agent_state': return `agent ${d.state ? (d.state === 'exited' ? `exited(${d.code})` : d.state) : 'stopped'}`;
    case 'agent_exited': return `agent exited with code ${d.code}`;
    case 'log': return `${d.level}: ${d.message}`;
    case 'error': return `error: ${d.message}`;
    case 'sync_conflict': return `sync conflict: ${d.path} changed on both sides; both versions are in ${d.stored}`;
    default: return null;
  }
}

function bytes(b64) {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/** Renders the page of session `ref` into `main`. */
export async function sessionPage(main, ref) {
  let s;
  try {
    s = await api('GET', `/api/sessions/${enc(ref)}`);
  } catch (e) {
    main.replaceChildren(h('p', { class: 'error', id: 'session-error' }, e.message), h('p', null, h('a', { href: '/' }, 'All sessions')));
    return;
  }
  document.title = `${s.name} · clauderon`;
  const head = h('section', { class: 'session-head', id: 'session-head' });
  const note = h('div', { class: 'note', id: 'action-note' });
  const termStatus = h('span', { class: 'term-status', id: 'term-status' });
  const termEl = h('div', { class: 'terminal', id: 'terminal' });
  const ctrlC = h('button', { type: 'button', id: 'ctrl-c', title: 'Send an interrupt (SIGINT) to the agent' }, 'Ctrl-C');
  const reattach = h('button', { type: 'button', id: 'reattach', hidden: true }, 'Attach again');
  const cpList = h('tbody', { id: 'checkpoint-list' });
  const cpComment = h('input', { id: 'checkpoint-comment', placeholder: 'Comment, e.g. before the refactor', maxlength: 500 });
  const cpError = h('div', { class: 'field-error', id: 'checkpoint-error', role: 'alert' });
  const cpForm = h('form', { id: 'checkpoint-form', class: 'inline-form' }, cpComment,
    h('button', { type: 'submit', class: 'primary', id: 'checkpoint-create' }, 'Create checkpoint'));
  const log = h('ol', { class: 'log', id: 'event-log' });
  main.replaceChildren(head, note,
    h('section', { class: 'panel' },
      h('div', { class: 'panel-head' }, h('h2', null, 'Terminal'), termStatus, h('span', { class: 'spacer' }), ctrlC, reattach),
      termEl),
    h('div', { class: 'cols' },
      h('section', { class: 'panel', id: 'checkpoints' }, h('h2', null, 'Checkpoints'), cpForm, cpError,
        h('table', { class: 'checkpoints' },
          h('thead', null, h('tr', null, ['Comment', 'Created', 'Git HEAD', ''].map((c) => h('th', null, c)))), cpList)),
      h('section', { class: 'panel' }, h('h2', null, 'Events'), log)));

  function say(text, cls = '') {
    note.textContent = text;
    note.className = `note ${cls}`;
  }

  function renderHead() {
    const a = allowed(s.status);
    const o = s.options || {};
    const facts = [
      ['Repository', s.repository], ['Branch', s.branch || '-'], ['Backend', s.backend],
      ['Created', `${ago(s.created_at)} ago`], ['Model', o.model || 'default'],
    ];
    if (o.plan_mode) facts.push(['Mode', 'plan']);
    if (o.print) facts.push(['Mode', 'print']);
    head.replaceChildren(
      h('div', { class: 'title' }, h('h1', null, s.name), statusBadge(s), agentBadge(s.agent)),
      h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
      h('p', { class: 'prompt' }, s.prompt),
      h('div', { class: 'actions' },
        h('button', { type: 'button', id: 'act-wake', disabled: !a.wake, onclick: doWake }, 'Wake'),
        h('button', { type: 'button', id: 'act-hibernate', disabled: !a.hibernate, onclick: doHibernate }, 'Hibernate'),
        h('button', { type: 'button', id: 'act-delete', class: 'danger', disabled: !a.delete, onclick: doDelete }, 'Delete'),
        h('a', { href: '/' }, 'All sessions')));
  }

  async function reload() {
    try {
      s = await api('GET', `/api/sessions/${enc(s.id)}`);
      renderHead();
    } catch (e) {
      say(e.message, 'error');
    }
  }

  async function doWake(e) {
    e.target.disabled = true;
    say('Waking…', 'progress');
    try {
      const r = await wake(s);
      s = r.session;
      renderHead();
      say(`Woke in ${seconds(r.elapsed_ms)}.`, 'ok');
      if (!ws) attach();
    } catch (err) {
      say(err.message, 'error');
      renderHead();
    }
  }

  async function doHibernate(e) {
    e.target.disabled = true;
    say('Hibernating…', 'progress');
    try {
      s = (await hibernate(s)).session;
      renderHead();
      say('Hibernated. Wake it, or attach again (that wakes it too).', 'ok');
    } catch (err) {
      say(err.message, 'error');
      renderHead();
    }
  }

  async function doDelete() {
    try {
      const r = await deleteWithConfirmation(s);
      if (!r) return;
      s = r;
      renderHead();
      say(`Deleted ${s.name}.`, 'ok');
      if (ws) ws.close();
    } catch (err) {
      say(err.message, 'error');
    }
  }

  // Checkpoints.
  async function loadCheckpoints() {
    try {
      const { checkpoints } = await api('GET', `/api/sessions/${enc(s.id)}/checkpoints`);
      cpList.replaceChildren(...checkpoints.map((c) => h('tr', { dataset: { id: c.id } },
        h('td', { class: 'comment' }, c.comment || '-'),
        h('td', { title: c.created_at }, `${ago(c.created_at)} ago`),
        h('td', null, h('code', null, c.git_head ? c.git_head.slice(0, 12) : '-')),
        h('td', null, h('button', { type: 'button', 'data-restore': c.id, onclick: () => restore(c) }, 'Restore')))));
      if (checkpoints.length === 0) cpList.replaceChildren(h('tr', null, h('td', { colspan: 4, class: 'muted' }, 'No checkpoints yet.')));
    } catch (err) {
      cpError.textContent = err.message;
    }
  }

  cpForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    cpError.textContent = '';
    const btn = cpForm.querySelector('button');
    btn.disabled = true;
    try {
      const c = await api('POST', `/api/sessions/${enc(s.id)}/checkpoints`, { comment: cpComment.value });
      cpComment.value = '';
      say(`Checkpoint ${c.id} created.`, 'ok');
      await loadCheckpoints();
    } catch (err) {
      cpError.textContent = err.message;
    } finally {
      btn.disabled = false;
    }
  });

  async function restore(c) {
    const ok = await confirmDialog({
      title: 'Restore this checkpoint?',
      body: h('div', null,
        h('p', null, `The sandbox of ${s.name} goes back to “${c.comment || c.id}” (${ago(c.created_at)} ago). `,
          'Everything since is replaced; a safety checkpoint of the current state is taken first.')),
      ok: 'Restore',
      danger: true,
    });
    if (!ok) return;
    say('Restoring…', 'progress');
    try {
      const r = await api('POST', `/api/sessions/${enc(s.id)}/checkpoints/${enc(c.id)}/restore`, {});
      s = r.session;
      renderHead();
      const safety = r.safety_checkpoint && (r.safety_checkpoint.id || r.safety_checkpoint);
      say(`Restored “${c.comment || c.id}”${safety ? `; the state before is safety checkpoint ${safety}` : ''}.`, 'ok');
      await loadCheckpoints();
      if (!ws) attach();
    } catch (err) {
      say(err.message, 'error');
    }
  }

  // The terminal.
  const [{ Terminal }, { FitAddon }] = await Promise.all([
    import('./vendor/xterm/xterm.mjs'), import('./vendor/xterm/addon-fit.mjs')]);
  const term = new Terminal({ cursorBlink: true, fontSize: 13, scrollback: 5000, fontFamily: 'ui-monospace, Menlo, Consolas, monospace' });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(termEl);
  fit.fit();
  const encoder = new TextEncoder();
  let ws = null;
  let waking = false;

  function attach() {
    if (s.options && s.options.print) {
      termStatus.textContent = 'print mode: the agent runs without a terminal; its output is shown here';
      return;
    }
    if (s.status === 'deleted' || s.status === 'deleting') {
      termStatus.textContent = `not attached: the session is ${s.status}`;
      return;
    }
    waking = s.status === 'hibernated' || s.status === 'hibernating';
    termStatus.textContent = waking ? 'Waking the session…' : 'attaching…';
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const sock = new WebSocket(`${proto}//${location.host}/api/sessions/${enc(s.id)}/attach?cols=${term.cols}&rows=${term.rows}`);
    sock.binaryType = 'arraybuffer';
    ws = sock;
    reattach.hidden = true;
    let ended = '';
    sock.onopen = () => term.focus();
    sock.onmessage = (e) => {
      if (typeof e.data === 'string') {
        let m = null;
        try {
          m = JSON.parse(e.data);
        } catch {
          return;
        }
        if (m.type === 'exit') ended = `the agent exited with code ${m.code}`;
        else if (m.type === 'error') ended = m.message;
        termStatus.textContent = ended;
        return;
      }
      if (waking || termStatus.textContent !== 'attached') {
        waking = false;
        termStatus.textContent = 'attached';
        termStatus.dataset.state = 'attached';
      }
      term.write(new Uint8Array(e.data));
    };
    sock.onclose = () => {
      if (ws === sock) ws = null;
      termStatus.textContent = ended || 'detached';
      termStatus.dataset.state = 'detached';
      reattach.hidden = false;
      waking = false;
    };
  }

  const live = () => ws && ws.readyState === WebSocket.OPEN;
  term.onData((d) => {
    if (live()) ws.send(encoder.encode(d));
  });
  term.onBinary((d) => {
    if (live()) ws.send(Uint8Array.from(d, (c) => c.charCodeAt(0)));
  });
  term.onResize(({ cols, rows }) => {
    if (live()) ws.send(JSON.stringify({ type: 'resize', cols, rows }));
  });
  new ResizeObserver(() => fit.fit()).observe(termEl);
  ctrlC.addEventListener('click', () => {
    if (live()) ws.send(JSON.stringify({ type: 'signal', name: 'INT' }));
    term.focus();
  });
  reattach.addEventListener('click', () => attach());

  // The event log, live; it also keeps the details current.
  let refreshing = null;
  followSession(s.id, 0, (kind, ev) => {
    const d = ev.data || {};
    if (kind === 'output') {
      if (s.options && s.options.print) term.write(bytes(d.b64));
      return;
    }
    const text = describe(kind, d);
    if (text) {
      log.append(h('li', { class: `ev ev-${kind}` }, h('time', null, time(ev.at)), ' ', text));
      while (log.childElementCount > MAX_LOG) log.firstElementChild.remove();
      log.scrollTop = log.scrollHeight;
    }
    if (kind === 'progress' && waking) termStatus.textContent = `Waking the session… [${d.stage}] ${d.message}`;
    if ((kind === 'status' || kind === 'agent_state' || kind === 'agent_exited') && !refreshing) {
      refreshing = setTimeout(() => {
        refreshing = null;
        reload();
      }, 50);
    }
  }, setLive);

  renderHead();
  loadCheckpoints();
  attach();
  if (location.hash === '#checkpoints') document.getElementById('checkpoints').scrollIntoView();
}
