// The build caches (DESIGN §16): one GET /api/caches, shown as a table of caches, each with its
// entries (a layer names the entry it lies on). "Clear" removes a cache (its backend store, for
// Sprites its cache sprite, included) or one entry, after a confirmation, through
// POST /api/caches/clear; "Collect unused now" runs the age-based collection the daemon runs
// daily (POST /api/caches/gc). The table is read again after each.

import { api } from './api.js';
import { h, ago, confirmDialog, setLive } from './ui.js';

/** `1.5 MiB` from bytes, as the CLI writes sizes. */
export function size(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

const COLUMNS = ['Cache', 'Project', 'Scope', 'Types', 'Size', 'Last used', 'Store', ''];

/** Renders the caches page into `main`. */
export function cachesPage(main) {
  const note = h('p', { id: 'caches-note', class: 'note', hidden: true });
  const failure = h('p', { class: 'error', id: 'caches-error', hidden: true });
  const body = h('div', { id: 'caches-body', role: 'rowgroup' });
  const table = h('div', { class: 'caches', id: 'caches', role: 'table', 'aria-label': 'Build caches' },
    h('div', { class: 'row head', role: 'row' }, COLUMNS.map((c) => h('div', { class: 'cell', role: 'columnheader' }, c))),
    body);
  const empty = h('p', { class: 'empty', id: 'caches-empty', hidden: true },
    'No build caches yet. Create a session with ', h('code', null, '--build-cache'),
    ' (or "Build caching" under the create form\'s advanced options); its first save fills one.');
  const gc = h('button', { type: 'button', id: 'caches-gc' }, 'Collect unused now');
  main.replaceChildren(
    h('div', { class: 'toolbar' }, h('h1', null, 'Build caches'), gc),
    note, failure, table, empty);
  // No stream here: the page is read on load and after each action.
  setLive('');

  function say(text, cls = 'ok') {
    note.textContent = text;
    note.className = `note ${cls}`;
    note.hidden = false;
  }

  function entryRow(cache, e, now) {
    return h('li', { class: 'entry', dataset: { key: e.key } },
      h('code', null, e.key), ' ',
      h('span', { class: 'muted' }, `${e.type}, ${size(e.size)}, used ${ago(e.last_used, now)} ago`),
      e.base ? h('span', { class: 'muted layer' }, ` (a layer over ${e.base})`) : null, ' ',
      h('button', { type: 'button', class: 'link danger', onclick: () => clear(e.key, `entry ${e.key} of cache ${cache.key}`) }, 'Clear'));
  }

  function cacheRow(c, now) {
    const cell = (cls, ...children) => h('div', { class: `cell ${cls}`, role: 'cell' }, ...children);
    const scope = c.scope === 'session' && c.session ? `session ${c.session}` : c.scope;
    return h('div', { class: 'cache-group', dataset: { key: c.key } },
      h('div', { class: 'row cache', role: 'row' },
        cell('key', h('code', null, c.key)),
        h('div', { class: 'cell repo', role: 'cell', title: c.project }, c.project),
        cell('scope', scope),
        cell('types', c.types.join(', ') || '-'),
        cell('size', size(c.size)),
        h('div', { class: 'cell age', role: 'cell', title: c.last_used }, `${ago(c.last_used, now)} ago`),
        h('div', { class: 'cell store', role: 'cell', title: c.instance || '' },
          h('span', { class: `badge store-${c.state}` }, c.state)),
        cell('actions',
          h('button', { type: 'button', class: 'danger', 'data-act': 'clear', onclick: () => clear(c.key, `cache ${c.key}`, c) }, 'Clear'))),
      c.entries.length
        ? h('ul', { class: 'entries' }, c.entries.map((e) => entryRow(c, e, now)))
        : null);
  }

  async function load() {
    try {
      const list = await api('GET', '/api/caches');
      const now = Date.now();
      body.replaceChildren(...list.caches.map((c) => cacheRow(c, now)));
      table.hidden = list.caches.length === 0;
      empty.hidden = list.caches.length > 0;
      failure.hidden = true;
    } catch (e) {
      failure.textContent = `Could not read the caches: ${e.message}`;
      failure.hidden = false;
    }
    document.body.dataset.ready = 'caches';
  }

  async function clear(key, what, cache) {
    const ok = await confirmDialog({
      title: `Clear ${what}?`,
      body: cache
        ? h('p', null, `Its ${cache.entries.length} entries (${size(cache.size)}) and its store${cache.instance ? ` (${cache.instance})` : ''} are deleted; the next session of the project builds cold.`)
        : h('p', null, 'The entry, and any layer lying on it, is deleted.'),
      ok: 'Clear',
      danger: true,
    });
    if (!ok) return;
    try {
      const r = await api('POST', '/api/caches/clear', { key });
      const lines = r.removed.map((x) => `${x.key || x.cache}: ${x.outcome}`);
      say(lines.length ? `Cleared ${lines.join('; ')}.` : `Nothing was removed for ${key}.`);
    } catch (e) {
      say(`Could not clear ${key}: ${e.message}`, 'error');
    }
    await load();
  }

  gc.addEventListener('click', async () => {
    gc.disabled = true;
    try {
      const r = await api('POST', '/api/caches/gc', {});
      say(r.removed.length
        ? `Collected ${r.removed.map((x) => x.key || x.cache).join(', ')}.`
        : 'Nothing has gone unused long enough to collect.');
    } catch (e) {
      say(`The collection failed: ${e.message}`, 'error');
    } finally {
      gc.disabled = false;
    }
    await load();
  });

  load();
}
