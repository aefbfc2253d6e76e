// DOM helpers and the actions the list and a session's page share (wake, hibernate, delete).

import { api, enc, unpushedWarning } from './api.js';

/** An element: `h('a', {href: '/', class: 'x'}, 'text', child)`; `on*` attributes are listeners. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** How long ago an RFC 3339 time was, compactly (`42s`, `5m`, `3h`, `2d`), as the CLI says it. */
export function ago(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '-';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** `1.2 s` from milliseconds. */
export function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

const STATUS_TEXT = {
  creating: 'Creating',
  running: 'Running',
  hibernating: 'Hibernating',
  hibernated: 'Hibernated',
  waking: 'Waking',
  failed: 'Failed',
  deleting: 'Deleting',
  deleted: 'Deleted',
};

/** The status badge; a hibernated session's says how long it has slept. */
export function statusBadge(s, now = Date.now()) {
  const label = STATUS_TEXT[s.status] || s.status;
  const badge = h('span', { class: `badge status-${s.status}`, title: s.status_reason || s.status }, label);
  if (s.status === 'hibernated') {
    badge.prepend(h('span', { class: 'moon', 'aria-hidden': 'true' }, '☾'));
    return h('span', { class: 'status-cell' }, badge,
      h('span', { class: 'slept', title: `hibernated at ${s.updated_at}` }, `asleep ${ago(s.updated_at, now)}`));
  }
  if (s.status === 'failed' && s.status_reason) {
    return h('span', { class: 'status-cell' }, badge, h('span', { class: 'reason' }, s.status_reason));
  }
  return h('span', { class: 'status-cell' }, badge);
}

/** The agent's state as text (`working`, `exited(1)`), or `-`. */
export function agentText(agent) {
  if (!agent || !agent.state) return '-';
  return agent.state === 'exited' ? `exited(${agent.code ?? '?'})` : agent.state;
}

/** The agent badge. */
export function agentBadge(agent) {
  const text = agentText(agent);
  return h('span', { class: `agent agent-${agent && agent.state ? agent.state : 'none'}` }, text);
}

/** Which actions a status allows. */
export function allowed(status) {
  return {
    wake: status === 'hibernated' || status === 'failed',
    hibernate: status === 'running',
    delete: status !== 'deleting' && status !== 'deleted',
  };
}

const dialog = () => document.getElementById('dialog');

/**
 * A modal question. `body` is a node or text; resolves true when confirmed. `prepare(body)` may
 * fill the body in while the dialog is open (the delete check asks the daemon first).
 */
export function confirmDialog({ title, body, ok = 'OK', danger = false, prepare }) {
  const d = dialog();
  const bodyEl = document.getElementById('dialog-body');
  const okBtn = document.getElementById('dialog-ok');
  const cancelBtn = document.getElementById('dialog-cancel');
  document.getElementById('dialog-title').textContent = title;
  bodyEl.replaceChildren(body instanceof Node ? body : h('p', null, body));
  okBtn.textContent = ok;
  okBtn.className = danger ? 'danger' : 'primary';
  okBtn.disabled = Boolean(prepare);
  // The buttons answer directly: a hidden tab may hold the dialog's `close` event back.
  const answer = new Promise((resolve) => {
    const done = (yes) => {
      okBtn.onclick = null;
      cancelBtn.onclick = null;
      d.oncancel = null;
      d.onclose = null;
      if (d.open) d.close();
      resolve(yes);
    };
    okBtn.onclick = (e) => {
      e.preventDefault();
      done(true);
    };
    cancelBtn.onclick = (e) => {
      e.preventDefault();
      done(false);
    };
    d.oncancel = () => done(false);
    d.onclose = () => done(false);
  });
  d.showModal();
  if (prepare) {
    Promise.resolve(prepare(bodyEl)).finally(() => {
      okBtn.disabled = false;
    });
  }
  return answer;
}

/** Wakes a session; resolves to the answer (`elapsed_ms` says how long it took). */
export function wake(s) {
  return api('POST', `/api/sessions/${enc(s.id)}/wake`, {});
}

/** Hibernates a session. */
export function hibernate(s) {
  return api('POST', `/api/sessions/${enc(s.id)}/hibernate`, {});
}

/**
 * Asks before deleting, with the CLI's warning when the session branch has commits that exist
 * only in the sandbox; resolves to the deleted session, or null when not confirmed.
 */
export async function deleteWithConfirmation(s) {
  const mayHaveWork = s.status === 'running' || s.status === 'hibernated';
  const ok = await confirmDialog({
    title: `Delete session ${s.name}?`,
    body: h('p', null, 'Its sandbox is destroyed; this cannot be undone.'),
    ok: 'Delete',
    danger: true,
    prepare: mayHaveWork
      ? async (body) => {
        const note = h('p', { class: 'muted', id: 'unpushed-check' }, 'Checking for unpushed commits…');
        body.append(note);
        try {
          const u = await api('GET', `/api/sessions/${enc(s.id)}/unpushed`);
          const w = unpushedWarning(s, u);
          if (w) note.replaceWith(h('p', { class: 'warning', id: 'unpushed-warning' }, w));
          else if (!u.checked) note.replaceWith(h('p', { class: 'muted' }, `Unpushed commits were not checked: ${u.reason || 'unknown reason'}.`));
          else note.replaceWith(h('p', { class: 'muted', id: 'unpushed-none' }, 'No unpushed commits.'));
        } catch (e) {
          note.replaceWith(h('p', { class: 'muted' }, `Unpushed commits were not checked: ${e.message}`));
        }
      }
      : null,
  });
  if (!ok) return null;
  return api('DELETE', `/api/sessions/${enc(s.id)}`);
}

/** Shows the live-updates state in the header. */
export function setLive(state) {
  const el = document.getElementById('live');
  if (!el) return;
  el.textContent = state === 'live' ? 'live' : state;
  el.className = `live live-${state}`;
}
