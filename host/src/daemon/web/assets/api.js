// The daemon's REST API (docs/DESIGN.md §9) as the page uses it. The browser signs every
// request with its HttpOnly session cookie; this script never sees a token.

/** An API error answer: `status`, `code`, the daemon's `message` and, for a bad field of the
 * body, its JSON path (`field`: `name`, `options.cpu_limit`). */
export class ApiError extends Error {
  constructor(status, code, message, field = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** `method path` with an optional JSON body; resolves to the parsed answer. */
export async function api(method, path, body) {
  const opts = { method, headers: { accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    opts.headers['content-type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, 'unreachable', `cannot reach the daemon (${e.message}); is it running?`);
  }
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (resp.status === 401) {
    // Signed out (the daemon restarted, or the session expired): the page shows how to sign in.
    location.reload();
  }
  if (!resp.ok) {
    const e = json && json.error;
    throw new ApiError(resp.status, (e && e.code) || '', (e && e.message) || `the daemon answered ${resp.status}`,
      (e && e.field) || null);
  }
  return json;
}

/** A path segment. */
export const enc = encodeURIComponent;

/** Every event kind the daemon records, plus the all-sessions stream's markers. */
const KINDS = ['status', 'progress', 'output', 'agent_exited', 'agent_state', 'log', 'error', 'sync_conflict', 'ready', 'resync'];

/**
 * An EventSource that reconnects itself (after 1 s, then every 5 s) and reports its state.
 * `url()` makes the URL for each (re)connection; `onEvent(kind, data)` gets each event.
 */
export class Stream {
  constructor(url, onEvent, onState) {
    this.url = url;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.delay = 1000;
    this.closed = false;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const es = new EventSource(this.url());
    this.es = es;
    es.onopen = () => {
      this.delay = 1000;
      this.onState('live');
    };
    for (const kind of KINDS) {
      es.addEventListener(kind, (e) => {
        // A connection failure is a plain Event; the daemon's `error` events carry data.
        if (!(e instanceof MessageEvent)) return;
        let data = null;
        try {
          data = JSON.parse(e.data);
        } catch {
          return;
        }
        this.onEvent(kind, data);
      });
    }
    es.onerror = () => {
      if (es.readyState === EventSource.OPEN) return;
      es.close();
      if (this.closed) return;
      this.onState('reconnecting');
      setTimeout(() => this.connect(), this.delay);
      // One quick retry, then at most one attempt every 5 s.
      this.delay = 5000;
    };
  }

  close() {
    this.closed = true;
    if (this.es) this.es.close();
  }
}

/** Follows one session's events from `after` on: history, then live; duplicates dropped. */
export function followSession(ref, after, onEvent, onState) {
  let last = after;
  const stream = new Stream(
    () => `/api/sessions/${enc(ref)}/events?after=${last}&follow=true`,
    (kind, ev) => {
      if (typeof ev.seq === 'number') {
        if (ev.seq <= last) return;
        last = ev.seq;
      }
      onEvent(kind, ev);
      if (kind === 'status' && ev.data && ev.data.to === 'deleted') stream.close();
    },
    onState,
  );
  return stream;
}

/** The commits a delete would lose, as the CLI's warning says it (or null). */
export function unpushedWarning(session, u) {
  if (!u || !u.checked || !u.count) return null;
  const branch = u.branch || session.branch || 'the session branch';
  const commits = u.count === 1 ? 'commit' : 'commits';
  return `warning: ${u.count} unpushed ${commits} on branch ${branch} of session ${session.name} ` +
    `(not on ${u.against || 'any remote branch'}); deleting the session destroys ${u.count === 1 ? 'it' : 'them'}; ` +
    `\`clauderon pull ${session.name}\` fetches ${u.count === 1 ? 'it' : 'them'} into your local repository first`;
}
