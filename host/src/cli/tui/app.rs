//! The TUI's state and the one function that changes it ([`App::update`]): a message in (a key,
//! an event from the daemon, an answer to a request), the requests to make out
//! ([`Effect`]). No I/O happens here, so tests drive it with messages and check what it asks for
//! and what [`super::view`] draws.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::form::{CreateForm, FormAction};
use super::keys::{self, Action};
use crate::api::render::{self, unpushed_warning};
use crate::api::{
    ApiEvent, CacheView, CheckpointView, CreateSession, Restored, SessionEvent, SessionSummary,
    SessionView, Unpushed, Woken,
};
use crate::session::{SessionId, Status};

/// How many recent events the detail pane keeps for the selected session.
pub const DETAIL_EVENTS: usize = 200;

/// What the TUI is showing on top of the session table.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The table and the detail pane.
    List,
    /// The key reference.
    Help,
    /// The create form.
    Create(Box<CreateForm>),
    /// A yes/no question.
    Confirm(Confirm),
    /// A session's checkpoints.
    Checkpoints(CheckpointPane),
    /// The build caches.
    Caches(CachePane),
}

/// The build caches (`b`): every cache, each followed by its entries, one row each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CachePane {
    /// The caches, oldest first; `None` while loading.
    pub list: Option<Vec<CacheView>>,
    /// The selected row (of [`CachePane::rows`]).
    pub selected: usize,
    /// The row whose clearing waits for `y`.
    pub confirm: Option<CacheRow>,
    /// A request is in flight (`clearing …`, `collecting …`).
    pub busy: Option<String>,
    /// The last failure.
    pub error: Option<String>,
}

/// One row of the caches pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheRow {
    /// A cache (clearing it removes its store too).
    Cache {
        /// The cache's key.
        key: String,
        /// How many entries it holds.
        entries: usize,
        /// Its size in bytes.
        size: u64,
        /// Its store (for Sprites, the cache sprite), if known.
        store: Option<String>,
    },
    /// One entry of a cache.
    Entry {
        /// The entry's key.
        key: String,
        /// The entry it is a layer over, if any.
        base: Option<String>,
    },
}

impl CacheRow {
    /// The key `cache clear` takes for this row.
    pub fn key(&self) -> &str {
        match self {
            CacheRow::Cache { key, .. } | CacheRow::Entry { key, .. } => key,
        }
    }

    /// The question asked before clearing it.
    pub fn question(&self) -> String {
        match self {
            CacheRow::Cache {
                key,
                entries,
                size,
                store,
            } => format!(
                "clear cache {key}: its {entries} entries ({}){}? the project's next session \
                 builds cold",
                crate::cli::output::bytes(*size),
                store
                    .as_deref()
                    .map(|s| format!(" and its store {s}"))
                    .unwrap_or_default()
            ),
            CacheRow::Entry { key, .. } => {
                format!("clear entry {key} (and any layer lying on it)?")
            }
        }
    }
}

impl CachePane {
    /// The rows: each cache, then its entries.
    pub fn rows(&self) -> Vec<CacheRow> {
        let mut rows = Vec::new();
        for c in self.list.iter().flatten() {
            rows.push(CacheRow::Cache {
                key: c.key.clone(),
                entries: c.entries.len(),
                size: c.size,
                store: c.instance.clone(),
            });
            rows.extend(c.entries.iter().map(|e| CacheRow::Entry {
                key: e.key.clone(),
                base: e.base.clone(),
            }));
        }
        rows
    }
}

/// A question asked before something that cannot be undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirm {
    /// Delete a session (with the CLI's unpushed-commit warning).
    Delete {
        /// The session.
        id: SessionId,
        /// Its name.
        name: String,
        /// `NAME (repo, backend B, status S)`.
        what: String,
        /// Still asking the sandbox for unpushed commits.
        checking: bool,
        /// The unpushed-commit warning, when there are such commits.
        warning: Option<String>,
        /// Why the check could not be made, when it could not.
        note: Option<String>,
    },
    /// Roll a session back to a checkpoint.
    Restore {
        /// The session.
        id: SessionId,
        /// Its name.
        name: String,
        /// The checkpoint.
        checkpoint: CheckpointView,
    },
}

/// The checkpoint list of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPane {
    /// The session.
    pub id: SessionId,
    /// Its name.
    pub name: String,
    /// The checkpoints, oldest first; `None` while loading.
    pub list: Option<Vec<CheckpointView>>,
    /// The selected row.
    pub selected: usize,
    /// The comment of a new checkpoint being typed, while typing.
    pub comment: Option<String>,
    /// A request is in flight (`creating checkpoint`, `restoring`).
    pub busy: Option<String>,
    /// The last failure.
    pub error: Option<String>,
}

/// A line at the bottom: what just happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The text.
    pub text: String,
    /// Whether it reports a failure.
    pub error: bool,
}

/// The live events stream's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// Connecting; nothing listed yet.
    Connecting,
    /// Receiving events.
    Live,
    /// Lost; reconnecting (why).
    Lost(String),
}

/// A long action this TUI started on a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// `creating`, `waking`, `hibernating`, `deleting`, `attaching`.
    pub what: &'static str,
    /// When it started.
    pub started: Instant,
}

/// The selected session's detail: its full view and recent events.
#[derive(Debug, Clone, Default)]
pub struct Detail {
    /// The session shown.
    pub id: Option<SessionId>,
    /// Its full view, once read.
    pub view: Option<SessionView>,
    /// Its recent events (no agent output), oldest first.
    pub events: Vec<ApiEvent>,
    /// Reading it failed.
    pub error: Option<String>,
}

/// An API failure, as much of it as the TUI shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The message.
    pub message: String,
    /// The request field it names (`options.cpu_limit`), if any.
    pub field: Option<String>,
}

impl Failure {
    /// A failure naming no field.
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            field: None,
        }
    }
}

/// What an action on a session came to.
#[derive(Debug, Clone)]
pub enum Done {
    /// Woken, with the time it took.
    Woken(Box<Woken>),
    /// Hibernated.
    Hibernated(Box<SessionView>),
    /// Deleted.
    Deleted(Box<SessionView>),
    /// A checkpoint was made.
    Checkpointed(CheckpointView),
    /// A checkpoint was restored.
    Restored(Box<Restored>),
    /// The action (named) failed.
    Failed(&'static str, String),
}

/// How an attachment ended, as the TUI reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detached {
    /// Back in the TUI; the text says how (detached, the agent exited, the daemon closed).
    Back(String),
    /// A signal arrived while attached: the TUI ends too.
    Signal(String),
    /// Attaching failed.
    Failed(String),
}

/// Everything that reaches [`App::update`].
#[derive(Debug, Clone)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// The terminal's size changed.
    Resized,
    /// A second passed (ages, spinners); the wall clock now.
    Tick(time::OffsetDateTime),
    /// The events stream was lost (why).
    FeedLost(String),
    /// Every session, read once the events stream was subscribed (again).
    Listed(Vec<SessionSummary>),
    /// A live event of some session (no agent output).
    Event(ApiEvent),
    /// A session read again after one of its events.
    Reread(Box<SessionView>),
    /// A session that is gone (404 on a re-read).
    Gone(SessionId),
    /// The selected session's detail.
    Detail(SessionId, Result<(Box<SessionView>, Vec<ApiEvent>), String>),
    /// The daemon's loaded backends.
    Backends(Result<Vec<String>, String>),
    /// The answer to the create form's request.
    Created(Result<Box<SessionView>, Failure>),
    /// An action on a session finished.
    Done(SessionId, Done),
    /// The unpushed-commit check before a delete.
    Unpushed(SessionId, Result<Unpushed, String>),
    /// A session's checkpoints.
    Checkpoints(SessionId, Result<Vec<CheckpointView>, String>),
    /// The build caches.
    Caches(Result<Vec<CacheView>, String>),
    /// A clear or a collection of caches ended: what it removed, as one line.
    CachesChanged(Result<String, String>),
    /// An attachment ended (or never started).
    Detached(SessionId, Detached),
    /// Stop (SIGTERM, SIGHUP, SIGINT).
    Quit,
}

/// A request [`App::update`] asks the runner to make; its answer comes back as a [`Msg`].
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Read the loaded backends (the create form's choices).
    LoadBackends,
    /// Read the selected session's view and recent events.
    LoadDetail(SessionId),
    /// Read one session again.
    Reread(SessionId),
    /// Create a session.
    Create(CreateSession),
    /// Wake a session.
    Wake(SessionId),
    /// Hibernate a session.
    Hibernate(SessionId),
    /// Delete a session.
    Delete(SessionId),
    /// Check a session for unpushed commits.
    Unpushed(SessionId),
    /// Read a session's checkpoints.
    ListCheckpoints(SessionId),
    /// Make a checkpoint with a comment.
    Checkpoint(SessionId, String),
    /// Restore a checkpoint (by id).
    Restore(SessionId, String),
    /// Read the build caches.
    ListCaches,
    /// Clear a cache or an entry (by key).
    ClearCache(String),
    /// Collect the caches unused for `[cache] max_age` now.
    CollectCaches,
    /// Hand the terminal to the session's agent until the detach key.
    Attach(SessionId),
}

/// The TUI's state.
#[derive(Debug)]
pub struct App {
    sessions: Vec<SessionSummary>,
    selected: usize,
    /// The first row shown (kept by the view so scrolling is steady).
    pub offset: std::cell::Cell<usize>,
    /// What the detail pane shows.
    pub detail: Detail,
    /// The latest progress line of each session with work in flight.
    progress: HashMap<SessionId, String>,
    /// Actions this TUI started and has not seen end.
    pending: HashMap<SessionId, Pending>,
    /// The line at the bottom.
    pub notice: Option<Notice>,
    /// What is shown over the table.
    pub mode: Mode,
    /// The events stream.
    pub feed: Feed,
    /// Whether the list was read at least once.
    pub loaded: bool,
    /// The wall clock, for ages.
    pub now: time::OffsetDateTime,
    /// The spinner's frame.
    pub spin: usize,
    /// The repository the create form starts with.
    pub default_repo: Option<String>,
    /// The daemon's address, for the header.
    pub daemon: String,
    /// Set when the TUI should end.
    pub quit: bool,
    /// Set when something visible changed since the last draw.
    pub dirty: bool,
}

impl App {
    /// An empty state for the daemon at `daemon`.
    pub fn new(daemon: &str, now: time::OffsetDateTime) -> App {
        App {
            sessions: Vec::new(),
            selected: 0,
            offset: std::cell::Cell::new(0),
            detail: Detail::default(),
            progress: HashMap::new(),
            pending: HashMap::new(),
            notice: None,
            mode: Mode::List,
            feed: Feed::Connecting,
            loaded: false,
            now,
            spin: 0,
            default_repo: None,
            daemon: daemon.to_owned(),
            quit: false,
            dirty: true,
        }
    }

    /// The sessions in the table, oldest first.
    pub fn sessions(&self) -> &[SessionSummary] {
        &self.sessions
    }

    /// The selected row's index.
    pub fn selected_index(&self) -> usize {
        self.selected
    }

    /// The selected session.
    pub fn selected(&self) -> Option<&SessionSummary> {
        self.sessions.get(self.selected)
    }

    /// The latest progress line of a session with work in flight.
    pub fn progress(&self, id: &SessionId) -> Option<&str> {
        self.progress.get(id).map(String::as_str)
    }

    /// The action this TUI started on a session, while it runs.
    pub fn pending(&self, id: &SessionId) -> Option<&Pending> {
        self.pending.get(id)
    }

    /// Whether any action started here is still running (the spinner turns).
    pub fn busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether an age on screen is in seconds (a session made or put to sleep in the last
    /// minute), so each second changes it.
    fn shows_seconds(&self) -> bool {
        let recent = |at: &str| {
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                .is_ok_and(|t| (self.now - t).whole_seconds() < 60)
        };
        self.sessions.iter().any(|s| {
            recent(&s.created_at) || (s.status == Status::Hibernated && recent(&s.updated_at))
        })
    }

    fn find(&self, id: &SessionId) -> Option<usize> {
        self.sessions.iter().position(|s| s.id == *id)
    }

    fn notify(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            error: false,
        });
    }

    fn fail(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            error: true,
        });
    }

    fn name_of(&self, id: &SessionId) -> String {
        self.find(id)
            .map(|i| self.sessions[i].name.to_string())
            .unwrap_or_else(|| id.to_string().chars().take(8).collect())
    }

    /// The selection moved (or the selected session changed): read its detail.
    fn selection_changed(&mut self, effects: &mut Vec<Effect>) {
        let id = self.selected().map(|s| s.id);
        if id != self.detail.id {
            self.detail = Detail {
                id,
                ..Detail::default()
            };
            if let Some(id) = id {
                effects.push(Effect::LoadDetail(id));
            }
        }
    }

    fn select(&mut self, index: usize, effects: &mut Vec<Effect>) {
        self.selected = index.min(self.sessions.len().saturating_sub(1));
        self.selection_changed(effects);
    }

    /// Replaces the list (the first read, or after a resync), keeping the selected session.
    pub fn set_sessions(&mut self, sessions: Vec<SessionSummary>) -> Vec<Effect> {
        let keep = self.selected().map(|s| s.id);
        self.sessions = sessions;
        self.sessions.retain(|s| s.status != Status::Deleted);
        self.loaded = true;
        let mut effects = Vec::new();
        let index = keep.and_then(|id| self.find(&id)).unwrap_or(self.selected);
        self.select(index, &mut effects);
        effects
    }

    /// Puts a session read in full into the table (adding it when new).
    fn upsert(&mut self, view: &SessionView, effects: &mut Vec<Effect>) {
        if view.status == Status::Deleted {
            self.remove(&view.id, effects);
            return;
        }
        let summary = SessionSummary::from(view);
        match self.find(&view.id) {
            Some(i) => self.sessions[i] = summary,
            None => {
                // Keep the list's order (oldest first); a new session is the newest.
                let at = self
                    .sessions
                    .iter()
                    .position(|s| s.created_at > summary.created_at)
                    .unwrap_or(self.sessions.len());
                self.sessions.insert(at, summary);
                if at <= self.selected && self.sessions.len() > 1 {
                    self.selected += 1;
                }
                self.select(self.selected, effects);
            }
        }
        if self.detail.id == Some(view.id) {
            self.detail.view = Some(view.clone());
        }
        if !view.status.is_transient() {
            self.progress.remove(&view.id);
        }
    }

    fn remove(&mut self, id: &SessionId, effects: &mut Vec<Effect>) {
        if let Some(i) = self.find(id) {
            self.sessions.remove(i);
            if i < self.selected {
                self.selected -= 1;
            }
            self.select(self.selected, effects);
        }
        self.progress.remove(id);
    }

    /// A live event: the row changes at once, and the session is read again for the rest.
    fn event(&mut self, ev: ApiEvent, effects: &mut Vec<Effect>) {
        let id = ev.session_id;
        let typed = ev.event();
        if self.detail.id == Some(id)
            && self
                .detail
                .events
                .last()
                .is_none_or(|last| last.seq < ev.seq)
        {
            self.detail.events.push(ev.clone());
            let extra = self.detail.events.len().saturating_sub(DETAIL_EVENTS);
            self.detail.events.drain(..extra);
        }
        let Some(event) = typed else { return };
        let known = self.find(&id);
        match &event {
            SessionEvent::Status(st) => {
                if st.to == Status::Deleted {
                    self.remove(&id, effects);
                    return;
                }
                if let Some(i) = known {
                    let s = &mut self.sessions[i];
                    s.status = st.to;
                    s.status_reason = st.reason.clone().filter(|_| st.to == Status::Failed);
                    s.updated_at = ev.at.clone();
                }
                if !st.to.is_transient() {
                    self.progress.remove(&id);
                }
                self.status_reached(id, st.to, st.reason.as_deref());
                effects.push(Effect::Reread(id));
            }
            SessionEvent::Progress(_) => {
                if let Some(line) = render::line(&event) {
                    self.progress.insert(id, line);
                }
                if known.is_none() {
                    effects.push(Effect::Reread(id));
                }
            }
            SessionEvent::AgentState(a) => {
                if let Some(i) = known {
                    self.sessions[i].agent = a.0;
                } else {
                    effects.push(Effect::Reread(id));
                }
            }
            SessionEvent::AgentExited { .. } => effects.push(Effect::Reread(id)),
            SessionEvent::SyncConflict { .. } => {
                if let Some(line) = render::line(&event) {
                    let name = self.name_of(&id);
                    self.fail(format!("{name}: {line}"));
                }
            }
            SessionEvent::Output { .. } | SessionEvent::Log { .. } | SessionEvent::Error { .. } => {
            }
        }
    }

    /// A create this TUI started ends when the session runs or fails.
    fn status_reached(&mut self, id: SessionId, to: Status, reason: Option<&str>) {
        let Some(p) = self.pending.get(&id) else {
            return;
        };
        if p.what != "creating" {
            return;
        }
        let took = p.started.elapsed();
        match to {
            Status::Running => {
                self.pending.remove(&id);
                let name = self.name_of(&id);
                self.notify(format!(
                    "{name} is running (created in {}); a attaches",
                    seconds(took)
                ));
            }
            Status::Failed => {
                self.pending.remove(&id);
                let name = self.name_of(&id);
                self.fail(format!(
                    "{name} failed: {}",
                    reason.unwrap_or("no reason given")
                ));
            }
            _ => {}
        }
    }

    /// Changes the state by one message; the requests to make follow.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.dirty = true;
        match msg {
            Msg::Key(key) => self.key(key, &mut effects),
            Msg::Resized => {}
            Msg::Tick(now) => {
                // Redraw only when the clock changes what is shown: ages are in whole seconds
                // under a minute, and the spinner turns while actions run.
                let (was, is) = (self.now.unix_timestamp(), now.unix_timestamp());
                self.now = now;
                let ages = was / 60 != is / 60 || (was != is && self.shows_seconds());
                if self.busy() {
                    self.spin = self.spin.wrapping_add(1);
                }
                self.dirty = ages || self.busy();
            }
            Msg::FeedLost(why) => self.feed = Feed::Lost(why),
            Msg::Listed(list) => {
                self.feed = Feed::Live;
                effects.extend(self.set_sessions(list));
            }
            Msg::Event(ev) => self.event(ev, &mut effects),
            Msg::Reread(view) => self.upsert(&view, &mut effects),
            Msg::Gone(id) => self.remove(&id, &mut effects),
            Msg::Detail(id, result) => {
                if self.detail.id == Some(id) {
                    match result {
                        Ok((view, events)) => {
                            let newer: Vec<ApiEvent> = std::mem::take(&mut self.detail.events);
                            let last = events.last().map_or(0, |e| e.seq);
                            self.detail.events = events;
                            self.detail
                                .events
                                .extend(newer.into_iter().filter(|e| e.seq > last));
                            self.detail.view = Some(*view);
                            self.detail.error = None;
                        }
                        Err(e) => self.detail.error = Some(e),
                    }
                }
            }
            Msg::Backends(result) => {
                if let Mode::Create(form) = &mut self.mode {
                    match result {
                        Ok(list) => form.set_backends(list),
                        Err(e) => form
                            .show_error(Some("backend"), &format!("cannot list the backends: {e}")),
                    }
                }
            }
            Msg::Created(result) => self.created(result, &mut effects),
            Msg::Done(id, done) => self.done(id, done, &mut effects),
            Msg::Unpushed(id, result) => {
                if let Mode::Confirm(Confirm::Delete {
                    id: asked,
                    name,
                    checking,
                    warning,
                    note,
                    ..
                }) = &mut self.mode
                    && *asked == id
                {
                    *checking = false;
                    let branch = self
                        .sessions
                        .iter()
                        .find(|s| s.id == id)
                        .and_then(|s| s.branch.clone());
                    match result {
                        Ok(u) => {
                            if !u.checked {
                                *note = Some(format!(
                                    "could not check {name} for unpushed commits: {}",
                                    u.reason.as_deref().unwrap_or("no reason given")
                                ));
                            }
                            *warning = unpushed_warning(name, branch.as_deref(), &u);
                        }
                        Err(e) => {
                            *note =
                                Some(format!("could not check {name} for unpushed commits: {e}"))
                        }
                    }
                }
            }
            Msg::Checkpoints(id, result) => {
                if let Mode::Checkpoints(pane) = &mut self.mode
                    && pane.id == id
                {
                    match result {
                        Ok(list) => {
                            pane.selected = list.len().saturating_sub(1);
                            pane.list = Some(list);
                        }
                        Err(e) => {
                            pane.list.get_or_insert_with(Vec::new);
                            pane.error = Some(e);
                        }
                    }
                }
            }
            Msg::Caches(result) => {
                if let Mode::Caches(pane) = &mut self.mode {
                    match result {
                        Ok(list) => {
                            pane.list = Some(list);
                            let n = pane.rows().len();
                            pane.selected = pane.selected.min(n.saturating_sub(1));
                        }
                        Err(e) => {
                            pane.list.get_or_insert_with(Vec::new);
                            pane.error = Some(format!("reading the caches failed: {e}"));
                        }
                    }
                }
            }
            Msg::CachesChanged(result) => {
                if let Mode::Caches(pane) = &mut self.mode {
                    pane.busy = None;
                    if let Err(e) = &result {
                        pane.error = Some(e.clone());
                    }
                    effects.push(Effect::ListCaches);
                }
                match result {
                    Ok(text) => self.notify(text),
                    Err(e) => self.fail(e),
                }
            }
            Msg::Detached(id, how) => {
                self.pending.remove(&id);
                match how {
                    Detached::Back(text) => self.notify(text),
                    Detached::Failed(text) => self.fail(text),
                    Detached::Signal(text) => {
                        self.fail(text);
                        self.quit = true;
                    }
                }
            }
            Msg::Quit => self.quit = true,
        }
        effects
    }

    fn created(&mut self, result: Result<Box<SessionView>, Failure>, effects: &mut Vec<Effect>) {
        match result {
            Ok(view) => {
                self.pending.insert(
                    view.id,
                    Pending {
                        what: "creating",
                        started: Instant::now(),
                    },
                );
                self.upsert(&view, effects);
                if let Some(i) = self.find(&view.id) {
                    self.select(i, effects);
                }
                self.mode = Mode::List;
                self.notify(format!("creating {}…", view.name));
                // The stream may have said `running` before the answer arrived.
                if let Some(i) = self.find(&view.id) {
                    let s = &self.sessions[i];
                    let (status, reason) = (s.status, s.status_reason.clone());
                    self.status_reached(view.id, status, reason.as_deref());
                }
            }
            Err(f) => {
                if let Mode::Create(form) = &mut self.mode {
                    form.show_error(f.field.as_deref(), &f.message);
                } else {
                    self.fail(format!("create failed: {}", f.message));
                }
            }
        }
    }

    fn done(&mut self, id: SessionId, done: Done, effects: &mut Vec<Effect>) {
        self.pending.remove(&id);
        match done {
            Done::Woken(w) => {
                self.upsert(&w.session, effects);
                self.notify(format!(
                    "{} is {} (woke in {:.1}s)",
                    w.session.name,
                    w.session.status,
                    w.elapsed_ms as f64 / 1000.0
                ));
            }
            Done::Hibernated(s) => {
                self.upsert(&s, effects);
                self.notify(format!("{} hibernated", s.name));
            }
            Done::Deleted(s) => {
                self.remove(&s.id, effects);
                self.notify(format!("deleted {}", s.name));
            }
            Done::Checkpointed(c) => {
                let name = self.name_of(&id);
                self.notify(format!("checkpoint {} of {name}", c.id));
                if let Mode::Checkpoints(pane) = &mut self.mode
                    && pane.id == id
                {
                    pane.busy = None;
                    effects.push(Effect::ListCheckpoints(id));
                }
            }
            Done::Restored(r) => {
                self.upsert(&r.session, effects);
                self.notify(format!(
                    "restored {}; the state before was saved as checkpoint {}",
                    r.session.name, r.safety_checkpoint.id
                ));
                if let Mode::Checkpoints(pane) = &mut self.mode
                    && pane.id == id
                {
                    pane.busy = None;
                    effects.push(Effect::ListCheckpoints(id));
                }
            }
            Done::Failed(what, e) => {
                let name = self.name_of(&id);
                if let Mode::Checkpoints(pane) = &mut self.mode
                    && pane.id == id
                {
                    pane.busy = None;
                    pane.error = Some(format!("{what} failed: {e}"));
                }
                self.fail(format!("{what} {name} failed: {e}"));
            }
        }
    }

    fn start(&mut self, id: SessionId, what: &'static str) {
        self.pending.insert(
            id,
            Pending {
                what,
                started: Instant::now(),
            },
        );
        let name = self.name_of(&id);
        self.notify(format!("{what} {name}…"));
    }

    fn key(&mut self, key: KeyEvent, effects: &mut Vec<Effect>) {
        let ctrl_c =
            key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        match &mut self.mode {
            Mode::List => {
                if let Some(action) = keys::list_action(&key) {
                    self.act(action, effects);
                }
            }
            Mode::Help => {
                if ctrl_c || key.code == KeyCode::Char('q') {
                    self.quit = true;
                }
                self.mode = Mode::List;
            }
            Mode::Create(form) => {
                if ctrl_c {
                    self.mode = Mode::List;
                    return;
                }
                match form.key(key) {
                    FormAction::None => {}
                    FormAction::Cancel => self.mode = Mode::List,
                    FormAction::Submit(req) => effects.push(Effect::Create(req)),
                }
            }
            Mode::Confirm(confirm) => {
                let yes = matches!(key.code, KeyCode::Char('y' | 'Y'));
                match confirm.clone() {
                    Confirm::Delete {
                        id, name, checking, ..
                    } => {
                        if yes && checking {
                            return;
                        }
                        self.mode = Mode::List;
                        if yes {
                            self.start(id, "deleting");
                            effects.push(Effect::Delete(id));
                        } else {
                            self.notify(format!("{name} not deleted"));
                        }
                    }
                    Confirm::Restore {
                        id,
                        name,
                        checkpoint,
                    } => {
                        let pane = CheckpointPane {
                            id,
                            name: name.clone(),
                            list: None,
                            selected: 0,
                            comment: None,
                            busy: yes.then(|| format!("restoring checkpoint {}…", checkpoint.id)),
                            error: None,
                        };
                        self.mode = Mode::Checkpoints(pane);
                        effects.push(Effect::ListCheckpoints(id));
                        if yes {
                            effects.push(Effect::Restore(id, checkpoint.id));
                        } else {
                            self.notify(format!("{name} not restored"));
                        }
                    }
                }
            }
            Mode::Checkpoints(pane) => {
                if let Some(comment) = &mut pane.comment {
                    match key.code {
                        KeyCode::Esc => pane.comment = None,
                        KeyCode::Enter => {
                            let comment = comment.trim().to_owned();
                            pane.comment = None;
                            pane.busy = Some("creating a checkpoint…".into());
                            pane.error = None;
                            effects.push(Effect::Checkpoint(pane.id, comment));
                        }
                        KeyCode::Backspace => {
                            comment.pop();
                        }
                        KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                            comment.push(c)
                        }
                        _ => {}
                    }
                    return;
                }
                let n = pane.list.as_ref().map_or(0, Vec::len);
                match key.code {
                    KeyCode::Esc | KeyCode::Char('q' | 'c') => self.mode = Mode::List,
                    KeyCode::Up | KeyCode::Char('k') => {
                        pane.selected = pane.selected.saturating_sub(1)
                    }
                    KeyCode::Down | KeyCode::Char('j') => {
                        pane.selected = (pane.selected + 1).min(n.saturating_sub(1))
                    }
                    KeyCode::Char('n') if pane.busy.is_none() => pane.comment = Some(String::new()),
                    KeyCode::Char('r') | KeyCode::Enter if pane.busy.is_none() => {
                        if let Some(cp) = pane.list.as_ref().and_then(|l| l.get(pane.selected)) {
                            self.mode = Mode::Confirm(Confirm::Restore {
                                id: pane.id,
                                name: pane.name.clone(),
                                checkpoint: cp.clone(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            Mode::Caches(pane) => {
                if let Some(row) = pane.confirm.take() {
                    if matches!(key.code, KeyCode::Char('y' | 'Y')) {
                        pane.busy = Some(format!("clearing {}…", row.key()));
                        pane.error = None;
                        effects.push(Effect::ClearCache(row.key().to_owned()));
                    } else {
                        self.notify(format!("{} not cleared", row.key()));
                    }
                    return;
                }
                let rows = pane.rows();
                match key.code {
                    KeyCode::Esc | KeyCode::Char('q' | 'b') => self.mode = Mode::List,
                    KeyCode::Up | KeyCode::Char('k') => {
                        pane.selected = pane.selected.saturating_sub(1)
                    }
                    KeyCode::Down | KeyCode::Char('j') => {
                        pane.selected = (pane.selected + 1).min(rows.len().saturating_sub(1))
                    }
                    KeyCode::Char('x') | KeyCode::Delete if pane.busy.is_none() => {
                        pane.confirm = rows.get(pane.selected).cloned();
                    }
                    KeyCode::Char('g') if pane.busy.is_none() => {
                        pane.busy = Some("collecting unused caches…".into());
                        pane.error = None;
                        effects.push(Effect::CollectCaches);
                    }
                    KeyCode::Char('r') if pane.busy.is_none() => {
                        pane.error = None;
                        effects.push(Effect::ListCaches);
                    }
                    _ => {}
                }
            }
        }
    }

    fn act(&mut self, action: Action, effects: &mut Vec<Effect>) {
        let page = 10;
        let last = self.sessions.len().saturating_sub(1);
        match action {
            Action::Quit => self.quit = true,
            Action::Help => self.mode = Mode::Help,
            Action::Up => self.select(self.selected.saturating_sub(1), effects),
            Action::Down => self.select((self.selected + 1).min(last), effects),
            Action::PageUp => self.select(self.selected.saturating_sub(page), effects),
            Action::PageDown => self.select((self.selected + page).min(last), effects),
            Action::Top => self.select(0, effects),
            Action::Bottom => self.select(last, effects),
            Action::New => {
                self.mode = Mode::Create(Box::new(CreateForm::new(self.default_repo.as_deref())));
                effects.push(Effect::LoadBackends);
            }
            Action::Attach | Action::Wake | Action::Hibernate | Action::Delete => {
                let Some(s) = self.selected() else {
                    self.fail("no session selected; n creates one");
                    return;
                };
                let (id, name, status) = (s.id, s.name.to_string(), s.status);
                if let Some(p) = self.pending.get(&id) {
                    let what = p.what;
                    self.fail(format!("{name} is busy ({what})"));
                    return;
                }
                match action {
                    Action::Attach => {
                        let what = if status == Status::Hibernated {
                            "waking and attaching to"
                        } else {
                            "attaching to"
                        };
                        self.start(id, what);
                        effects.push(Effect::Attach(id));
                    }
                    Action::Wake => {
                        self.start(id, "waking");
                        effects.push(Effect::Wake(id));
                    }
                    Action::Hibernate => {
                        self.start(id, "hibernating");
                        effects.push(Effect::Hibernate(id));
                    }
                    _ => {
                        // Only a sandbox that exists can hold unpushed work.
                        let check = matches!(status, Status::Running | Status::Hibernated);
                        let s = &self.sessions[self.selected];
                        self.mode = Mode::Confirm(Confirm::Delete {
                            id,
                            name,
                            what: format!(
                                "{} ({}, backend {}, status {})",
                                s.name, s.repository, s.backend, s.status
                            ),
                            checking: check,
                            warning: None,
                            note: None,
                        });
                        if check {
                            effects.push(Effect::Unpushed(id));
                        }
                    }
                }
            }
            Action::Caches => {
                self.mode = Mode::Caches(CachePane::default());
                effects.push(Effect::ListCaches);
            }
            Action::Checkpoints => {
                let Some(s) = self.selected() else {
                    self.fail("no session selected; n creates one");
                    return;
                };
                let id = s.id;
                self.mode = Mode::Checkpoints(CheckpointPane {
                    id,
                    name: s.name.to_string(),
                    list: None,
                    selected: 0,
                    comment: None,
                    busy: None,
                    error: None,
                });
                effects.push(Effect::ListCheckpoints(id));
            }
        }
    }
}

/// `4.2s`, `12s`, `3m05s`.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1}s")
    } else if s < 60.0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}
