// The create form. The daemon validates every value by the rules of the CLI's flags
// (POST /api/sessions answers 400 with a message naming the field); the message is shown next
// to that field. After submit, the new session's progress (clone, agent start) shows live.

import { api, enc, followSession, ApiError } from './api.js';
import { h, setLive } from './ui.js';

const TIMEOUTS = ['5m', '15m', '30m', '1h', '2h', '6h', 'never'];
const CACHES = [['cargo', 'Cargo'], ['npm', 'NPM'], ['yarn', 'Yarn'], ['bun', 'Bun'], ['pip', 'Pip'], ['docker', 'Docker']];

/** Which form field a daemon error is about: the body field the answer names (`field`, with
 * `options.` dropped), else the flag or JSON field its message quotes. */
export function fieldOf(err) {
  if (err.field) return err.field.replace(/^options\./, '');
  const m = err.message;
  const rules = [
    [/--cpu-limit|"cpu_limit"/, 'cpu_limit'],
    [/--memory-limit|"memory_limit"/, 'memory_limit'],
    [/--hibernation-timeout|"hibernation_timeout"/, 'hibernation_timeout'],
    [/--build-cache|"build_cache"/, 'build_cache'],
    [/--cache-scope|"cache_scope"/, 'cache_scope'],
    [/--model|"model"/, 'model'],
    [/"repo"|--repo|not a git repository/, 'repo'],
    [/"prompt"/, 'prompt'],
    [/session name|"name"/, 'name'],
    [/backend/, 'backend'],
  ];
  if (err.code === 'name_taken') return 'name';
  for (const [re, field] of rules) if (re.test(m)) return field;
  return null;
}

/** The daemon's message without the JSON parser's position and the request's expected shape. */
function readable(message) {
  return message
    .replace(/^invalid create request: /, '')
    .replace(/ at line \d+ column \d+/, '')
    .replace(/; expected \{"repo".*$/, '');
}

function field(label, input, hint) {
  const id = input.id;
  return h('div', { class: 'field', id: `field-${id}` },
    h('label', { for: id }, label), input,
    hint ? h('small', { class: 'hint' }, hint) : null,
    h('div', { class: 'field-error', id: `error-${id}`, role: 'alert' }));
}

function checkbox(id, label, hint) {
  return h('div', { class: 'field check', id: `field-${id}` },
    h('label', null, h('input', { type: 'checkbox', id, name: id }), ' ', label),
    hint ? h('small', { class: 'hint' }, hint) : null,
    h('div', { class: 'field-error', id: `error-${id}`, role: 'alert' }));
}

/** Renders the form into `main`. */
export function createPage(main) {
  setLive('');
  const backend = h('select', { id: 'backend', name: 'backend' }, h('option', { value: '' }, '(default backend)'));
  const form = h('form', { id: 'create-form', novalidate: true },
    h('h1', null, 'New session'),
    h('div', { class: 'form-error', id: 'error-form', role: 'alert' }),
    field('Repository', h('input', { id: 'repo', name: 'repo', placeholder: '/home/me/src/project', autocomplete: 'off' }),
      'An absolute path to a git repository on this machine.'),
    field('Prompt', h('textarea', { id: 'prompt', name: 'prompt', rows: 4, placeholder: 'What should the agent do?' })),
    h('div', { class: 'row2' },
      field('Backend', backend),
      field('Name', h('input', { id: 'name', name: 'name', placeholder: 'derived from the repository', autocomplete: 'off' }),
        'a-z, 0-9 and -')),
    field('Model', h('input', { id: 'model', name: 'model', placeholder: 'the agent\'s default', autocomplete: 'off' })),
    field('Local sync', h('select', { id: 'sync', name: 'sync' },
      h('option', { value: '' }, '(config default)'),
      h('option', { value: 'on' }, 'on: a local worktree in two-way sync'),
      h('option', { value: 'off' }, 'off')),
      'A git worktree of the session branch under the clauderon home, kept in sync with the sandbox.'),
    h('div', { class: 'row2' },
      checkbox('plan_mode', 'Plan mode', 'The agent plans before it changes anything.'),
      checkbox('print', 'Print mode', 'Run without a terminal; the output streams to the log.')),
    h('details', { id: 'advanced' },
      h('summary', null, 'Advanced options'),
      h('div', { class: 'row2' },
        field('CPU limit', h('input', { id: 'cpu_limit', name: 'cpu_limit', inputmode: 'decimal', placeholder: 'e.g. 4 or 0.5' }), 'CPUs, more than 0 and at most 256'),
        field('Memory limit', h('input', { id: 'memory_limit', name: 'memory_limit', placeholder: 'e.g. 8G' }), 'with a unit: 512M, 8G')),
      field('Hibernation timeout', h('select', { id: 'hibernation_timeout', name: 'hibernation_timeout' },
        h('option', { value: '' }, '(backend default)'), TIMEOUTS.map((t) => h('option', { value: t }, t))),
      'Idle time before the session hibernates.'),
      h('fieldset', { id: 'caching' },
        h('legend', null, 'Build caching'),
        checkbox('cache_enabled', 'Enable build caching', 'Caches persist across sessions and are removed after 30 days unused.'),
        h('div', { id: 'cache-options', hidden: true },
          h('div', { class: 'cache-types', id: 'build_cache' },
            CACHES.map(([v, label]) => h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'cache', value: v }), ` ${label}`))),
          field('Other cache directories', h('input', { id: 'cache_dirs', name: 'cache_dirs', placeholder: './node_modules, /root/.cache/foo' }),
            'Comma-separated paths in the sandbox.'),
          h('div', { class: 'field-error', id: 'error-build_cache', role: 'alert' }),
          h('div', { class: 'field', id: 'field-cache_scope' },
            h('span', { class: 'label' }, 'Sharing'),
            h('label', { class: 'inline' }, h('input', { type: 'radio', name: 'cache_scope', value: 'project', checked: true }), ' Project-wide'),
            h('label', { class: 'inline' }, h('input', { type: 'radio', name: 'cache_scope', value: 'session' }), ' This session only'),
            h('div', { class: 'field-error', id: 'error-cache_scope', role: 'alert' }))))),
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'primary', id: 'create-submit' }, 'Create session'),
      h('a', { href: '/' }, 'Cancel')));
  const progress = h('section', { id: 'create-progress', class: 'panel', hidden: true });
  main.replaceChildren(form, progress);

  // Editing a field clears what the daemon said about it.
  form.addEventListener('input', (e) => {
    const wrap = e.target.closest('.field, #cache-options');
    if (!wrap) return;
    wrap.classList.remove('invalid');
    for (const el of wrap.querySelectorAll('.field-error')) el.textContent = '';
  });

  const cacheEnabled = form.querySelector('#cache_enabled');
  cacheEnabled.addEventListener('change', () => {
    form.querySelector('#cache-options').hidden = !cacheEnabled.checked;
  });

  api('GET', '/api/plugins').then((plugins) => {
    for (const p of plugins || []) {
      if (p.status !== 'loaded' && p.status !== 'faulted') continue;
      backend.append(h('option', { value: p.name }, p.description ? `${p.name}: ${p.description}` : p.name));
    }
  }).catch((e) => showError('backend', `Cannot list the backends: ${e.message}`));

  function clearErrors() {
    for (const el of form.querySelectorAll('.field-error, .form-error')) el.textContent = '';
    for (const el of form.querySelectorAll('.invalid')) el.classList.remove('invalid');
  }

  function showError(name, message) {
    const el = name && form.querySelector(`#error-${name}`);
    if (!el) {
      form.querySelector('#error-form').textContent = message;
      return;
    }
    el.textContent = message;
    const wrap = form.querySelector(`#field-${name}`) || el.parentElement;
    wrap.classList.add('invalid');
    if (['cpu_limit', 'memory_limit', 'hibernation_timeout', 'build_cache', 'cache_scope'].includes(name)) {
      form.querySelector('#advanced').open = true;
      if (name === 'build_cache' || name === 'cache_scope') {
        cacheEnabled.checked = true;
        form.querySelector('#cache-options').hidden = false;
      }
    }
    const focus = form.querySelector(`#${name}`);
    if (focus && focus.focus) focus.focus();
  }

  function body() {
    const v = (id) => form.querySelector(`#${id}`).value.trim();
    const options = {
      plan_mode: form.querySelector('#plan_mode').checked,
      print: form.querySelector('#print').checked,
    };
    if (v('model')) options.model = v('model');
    if (v('sync')) options.sync = v('sync') === 'on';
    if (v('cpu_limit')) options.cpu_limit = /^\d+$/.test(v('cpu_limit')) ? Number(v('cpu_limit')) : v('cpu_limit');
    if (v('memory_limit')) options.memory_limit = v('memory_limit');
    if (v('hibernation_timeout')) options.hibernation_timeout = v('hibernation_timeout');
    if (cacheEnabled.checked) {
      const kinds = [...form.querySelectorAll('input[name=cache]:checked')].map((c) => c.value);
      const dirs = v('cache_dirs') ? v('cache_dirs').split(',').map((d) => d.trim()) : [];
      options.build_cache = [...kinds, ...dirs];
      options.cache_scope = form.querySelector('input[name=cache_scope]:checked').value;
    }
    const b = { repo: v('repo'), prompt: form.querySelector('#prompt').value, options };
    if (v('backend')) b.backend = v('backend');
    if (v('name')) b.name = v('name');
    return b;
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors();
    const req = body();
    if (cacheEnabled.checked && req.options.build_cache.length === 0) {
      showError('build_cache', 'Choose at least one cache type or directory, or turn build caching off.');
      return;
    }
    const submit = form.querySelector('#create-submit');
    submit.disabled = true;
    try {
      const s = await api('POST', '/api/sessions', req);
      form.hidden = true;
      showProgress(s);
    } catch (err) {
      if (err instanceof ApiError && (err.status === 400 || err.status === 409)) showError(fieldOf(err), readable(err.message));
      else showError(null, err.message);
    } finally {
      submit.disabled = false;
    }
  });

  function showProgress(s) {
    const page = `/s/${enc(s.name)}`;
    const steps = h('ol', { class: 'steps', id: 'create-steps' });
    const state = h('p', { id: 'create-state', class: 'muted' }, `Creating ${s.name}…`);
    const output = h('pre', { id: 'create-output', class: 'output', hidden: true });
    progress.replaceChildren(h('h2', null, `Session ${s.name}`), state, steps, output,
      h('p', null, h('a', { href: page, id: 'open-session' }, 'Open the session'), ' · ', h('a', { href: '/' }, 'All sessions')));
    progress.hidden = false;
    const decoder = new TextDecoder();
    const stream = followSession(s.id, 0, (kind, ev) => {
      const d = ev.data || {};
      if (kind === 'progress') steps.append(h('li', null, `[${d.stage}] ${d.message}`));
      else if (kind === 'error') steps.append(h('li', { class: 'error' }, d.message));
      else if (kind === 'output' && s.options && s.options.print) {
        output.hidden = false;
        output.textContent += decoder.decode(Uint8Array.from(atob(d.b64), (c) => c.charCodeAt(0)), { stream: true });
      } else if (kind === 'agent_exited' && s.options && s.options.print) {
        state.textContent = `The agent finished with exit code ${d.code}.`;
        stream.close();
      } else if (kind === 'status') {
        steps.append(h('li', { class: 'status' }, `status ${d.to}${d.reason ? `: ${d.reason}` : ''}`));
        if (d.to === 'running' && !(s.options && s.options.print)) {
          state.textContent = `${s.name} is running.`;
          state.className = 'ok';
          stream.close();
        } else if (d.to === 'failed') {
          state.textContent = `Creating ${s.name} failed: ${d.reason || 'see the log'}`;
          state.className = 'error';
          stream.close();
        }
      }
    }, setLive);
  }
}
