// The session list: one GET of every session, then live over the all-sessions event stream
// (GET /api/web/events): a session whose status or agent changes is read again, progress shows
// on its row. No polling; the ages are re-rendered locally every 30 s.
//
// Rows are grid rows, not a <table>: each lays out on its own (fixed column template) with
// `content-visibility: auto`, so a thousand sessions cost the browser only the rows on screen.

import { api, enc, Stream } from './api.js';
import {
  h, ago, seconds, statusBadge, agentBadge, allowed, wake, hibernate, deleteWithConfirmation, setLive,
} from './ui.js';

const COLUMNS = ['Name', 'Status', 'Agent', 'Repository', 'Branch', 'Backend', 'Age', ''];

const byNewest = (a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0);

/** Renders the list into `main` and keeps it live. */
export function listPage(main) {
  const sessions = new Map(); // id → Session
  const rows = new Map(); // id → its row element
  const notes = new Map(); // id → {text, cls}: progress and what an action answered
  const tbody = h('div', { id: 'sessions-body', role: 'rowgroup' });
  const table = h('div', { class: 'sessions', id: 'sessions', role: 'table', 'aria-label': 'Sessions' },
    h('div', { class: 'row head', role: 'row' }, COLUMNS.map((c) => h('div', { class: 'cell', role: 'columnheader' }, c))),
    tbody);
  const count = h('span', { id: 'count', class: 'muted' });
  const empty = h('p', { class: 'empty', id: 'empty', hidden: true },
    'No sessions yet. ', h('a', { href: '/new' }, 'Create one'), ' or run ', h('code', null, 'clauderon create'), '.');
  const failure = h('p', { class: 'error', id: 'list-error', hidden: true });
  main.replaceChildren(h('div', { class: 'toolbar' }, h('h1', null, 'Sessions'), count), failure, table, empty);

  function row(s, now) {
    const a = allowed(s.status);
    const note = notes.get(s.id);
    const page = `/s/${enc(s.name)}`;
    const cell = (cls, ...children) => h('div', { class: `cell ${cls}`, role: 'cell' }, ...children);
    return h('div', { class: 'row session', role: 'row', dataset: { id: s.id, name: s.name, status: s.status } },
      cell('name', h('a', { href: page }, s.name)),
      cell('status', statusBadge(s, now), note ? h('div', { class: `note ${note.cls}` }, note.text) : null),
      cell('agent-cell', agentBadge(s.agent)),
      h('div', { class: 'cell repo', role: 'cell', title: s.repository }, s.repository),
      cell('branch', s.branch || '-'),
      cell('backend', s.backend),
      h('div', { class: 'cell age', role: 'cell', title: s.created_at }, ago(s.created_at, now)),
      cell('actions',
        h('button', { type: 'button', 'data-act': 'wake', disabled: !a.wake }, 'Wake'),
        h('button', { type: 'button', 'data-act': 'hibernate', disabled: !a.hibernate }, 'Hibernate'),
        h('a', { class: 'button', href: `${page}#checkpoints` }, 'Checkpoints'),
        h('button', { type: 'button', class: 'danger', 'data-act': 'delete', disabled: !a.delete }, 'Delete')));
  }

  function updateCount() {
    const by = {};
    for (const s of sessions.values()) by[s.status] = (by[s.status] || 0) + 1;
    const parts = Object.entries(by).map(([k, n]) => `${n} ${k}`);
    count.textContent = sessions.size ? `${sessions.size} sessions: ${parts.join(', ')}` : '';
    empty.hidden = sessions.size > 0;
    table.hidden = sessions.size === 0;
  }

  function renderAll() {
    const now = Date.now();
    const frag = document.createDocumentFragment();
    rows.clear();
    for (const s of [...sessions.values()].sort(byNewest)) {
      const tr = row(s, now);
      rows.set(s.id, tr);
      frag.append(tr);
    }
    tbody.replaceChildren(frag);
    updateCount();
  }

  function rerender(id) {
    const s = sessions.get(id);
    const old = rows.get(id);
    if (!s) return;
    const tr = row(s, Date.now());
    rows.set(id, tr);
    if (old) old.replaceWith(tr);
    else tbody.prepend(tr);
  }

  function upsert(s) {
    if (s.status === 'deleted') {
      remove(s.id);
      return;
    }
    sessions.set(s.id, s);
    rerender(s.id);
    updateCount();
  }

  function remove(id) {
    sessions.delete(id);
    notes.delete(id);
    const tr = rows.get(id);
    if (tr) tr.remove();
    rows.delete(id);
    updateCount();
  }

  function setNote(id, text, cls) {
    notes.set(id, { text, cls });
    rerender(id);
  }

  // Sessions whose status or agent changed are read again, a few at once.
  const pending = new Set();
  let timer = null;
  function refresh(id) {
    pending.add(id);
    if (!timer) timer = setTimeout(flush, 50);
  }
  async function flush() {
    timer = null;
    const ids = [...pending];
    pending.clear();
    await Promise.all(ids.map(async (id) => {
      try {
        upsert(await api('GET', `/api/sessions/${enc(id)}`));
      } catch (e) {
        if (e.status === 404) remove(id);
      }
    }));
  }

  let marked = false;
  let generation = 0;
  async function load() {
    const mine = ++generation;
    try {
      const { sessions: list } = await api('GET', '/api/sessions?view=summary');
      // A later read (a reconnect's) supersedes this one.
      if (mine !== generation) return;
      sessions.clear();
      for (const s of list) sessions.set(s.id, s);
      renderAll();
      failure.hidden = true;
    } catch (e) {
      failure.textContent = `Cannot list the sessions: ${e.message}`;
      failure.hidden = false;
    }
    if (!marked) {
      marked = true;
      performance.mark('clauderon:list-rendered');
      // Interactive: rendered, listeners attached, and the frame painted.
      requestAnimationFrame(() => setTimeout(() => {
        performance.mark('clauderon:list-interactive');
        document.body.dataset.ready = 'list';
      }, 0));
    }
  }

  function onEvent(kind, ev) {
    // Subscribed: whatever changed before is in a fresh read of the list.
    if (kind === 'ready' || kind === 'resync') {
      load();
      return;
    }
    const id = ev.session_id;
    if (!id) return;
    if (kind === 'status') {
      if (ev.data && ev.data.to === 'deleted') {
        remove(id);
        return;
      }
      const n = notes.get(id);
      if (n && n.cls === 'progress') notes.delete(id);
    }
    if (kind === 'progress' && sessions.has(id)) {
      setNote(id, `[${ev.data.stage}] ${ev.data.message}`, 'progress');
    }
    if (kind === 'status' || kind === 'agent_state' || kind === 'agent_exited' || !sessions.has(id)) refresh(id);
  }

  tbody.addEventListener('click', async (e) => {
    const btn = e.target.closest('button[data-act]');
    if (!btn) return;
    const id = btn.closest('.row').dataset.id;
    const s = sessions.get(id);
    if (!s) return;
    btn.disabled = true;
    try {
      switch (btn.dataset.act) {
        case 'wake': {
          setNote(id, 'waking…', 'progress');
          const r = await wake(s);
          sessions.set(id, r.session);
          setNote(id, `woke in ${seconds(r.elapsed_ms)}`, 'ok');
          break;
        }
        case 'hibernate': {
          setNote(id, 'hibernating…', 'progress');
          const r = await hibernate(s);
          sessions.set(id, r.session);
          notes.delete(id);
          rerender(id);
          break;
        }
        case 'delete': {
          const r = await deleteWithConfirmation(s);
          if (r) remove(id);
          else btn.disabled = false;
          break;
        }
        default:
          break;
      }
    } catch (err) {
      setNote(id, err.message, 'error');
    }
  });

  // The list is read once the stream is subscribed (its `ready`), so nothing is missed between
  // the read and the first live event.
  new Stream(() => '/api/web/events', onEvent, setLive);
  setInterval(() => {
    const now = Date.now();
    for (const [id, tr] of rows) {
      const s = sessions.get(id);
      const age = tr.querySelector('.age');
      if (age) age.textContent = ago(s.created_at, now);
      const slept = tr.querySelector('.slept');
      if (slept) slept.textContent = `asleep ${ago(s.updated_at, now)}`;
    }
  }, 30000);
}
