//! The create form: the web form's fields (repository, prompt, backend, name, model, plan and
//! print mode, and the advanced options: CPU and memory limits, the hibernation timeout, build
//! caching with its cache types and scope), checked by the rules of the CLI's flags
//! ([`RawOptions::validate`], [`CreateSession::validate`]) before it is sent, and the daemon's
//! 400 answers shown next to the field they name (`error.field`).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Modifier, Style, Stylize as _};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::api::CreateSession;
use crate::session::{CACHE_KINDS, CacheScope, OptionField, RawOptions, TIMEOUTS};

/// One field of the form, in the order shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The repository path on this machine.
    Repo,
    /// What the agent should do.
    Prompt,
    /// The backend plugin (a choice of the daemon's loaded plugins).
    Backend,
    /// The session's name.
    Name,
    /// The agent's model.
    Model,
    /// Plan mode (a checkbox).
    PlanMode,
    /// Print mode (a checkbox).
    Print,
    /// A local worktree in two-way sync with the sandbox (a choice: the config's default, on,
    /// off).
    Sync,
    /// The "Advanced options" heading, which shows or hides them.
    Advanced,
    /// CPUs for the sandbox.
    CpuLimit,
    /// Memory for the sandbox.
    MemoryLimit,
    /// Idle time before hibernating (a choice).
    HibernationTimeout,
    /// Build caching on or off.
    CacheEnabled,
    /// The cache kinds (cargo, npm, ...), each a checkbox.
    CacheTypes,
    /// Other cache directories, comma-separated.
    CacheDirs,
    /// Caches shared per project or kept per session (a choice).
    CacheScope,
    /// The "Create session" button.
    Submit,
}

impl Field {
    /// The label shown before the value.
    fn label(self) -> &'static str {
        match self {
            Field::Repo => "Repository",
            Field::Prompt => "Prompt",
            Field::Backend => "Backend",
            Field::Name => "Name",
            Field::Model => "Model",
            Field::PlanMode => "Plan mode",
            Field::Print => "Print mode",
            Field::Sync => "Local sync",
            Field::Advanced => "",
            Field::CpuLimit => "CPU limit",
            Field::MemoryLimit => "Memory limit",
            Field::HibernationTimeout => "Hibernate after",
            Field::CacheEnabled => "Build caching",
            Field::CacheTypes => "Cache types",
            Field::CacheDirs => "Other caches",
            Field::CacheScope => "Cache sharing",
            Field::Submit => "",
        }
    }

    /// The form field a request field path names (`repo`, `options.cpu_limit`).
    pub fn of_path(path: &str) -> Option<Field> {
        if let Some(f) = OptionField::ALL.into_iter().find(|f| f.path() == path) {
            return Some(match f {
                OptionField::HibernationTimeout => Field::HibernationTimeout,
                OptionField::CpuLimit => Field::CpuLimit,
                OptionField::MemoryLimit => Field::MemoryLimit,
                OptionField::BuildCache => Field::CacheTypes,
                OptionField::CacheScope => Field::CacheScope,
                OptionField::Model => Field::Model,
            });
        }
        Some(match path {
            "repo" => Field::Repo,
            "prompt" => Field::Prompt,
            "name" => Field::Name,
            "backend" => Field::Backend,
            "options.plan_mode" => Field::PlanMode,
            "options.print" => Field::Print,
            "options.sync" => Field::Sync,
            _ => return None,
        })
    }

    fn is_advanced(self) -> bool {
        matches!(
            self,
            Field::CpuLimit
                | Field::MemoryLimit
                | Field::HibernationTimeout
                | Field::CacheEnabled
                | Field::CacheTypes
                | Field::CacheDirs
                | Field::CacheScope
        )
    }

    fn is_cache(self) -> bool {
        matches!(
            self,
            Field::CacheTypes | Field::CacheDirs | Field::CacheScope
        )
    }
}

/// A one-line text input with a cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextInput {
    value: String,
    /// The cursor, in characters.
    cursor: usize,
}

impl TextInput {
    /// An input holding `value`, the cursor at its end.
    pub fn new(value: &str) -> TextInput {
        TextInput {
            value: value.to_owned(),
            cursor: value.chars().count(),
        }
    }

    /// The text.
    pub fn value(&self) -> &str {
        &self.value
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.value
            .char_indices()
            .nth(chars)
            .map_or(self.value.len(), |(i, _)| i)
    }

    /// Edits by one key; `true` when the key was an edit or a cursor move.
    fn key(&mut self, key: &KeyEvent) -> bool {
        let len = self.value.chars().count();
        match key.code {
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.value.clear();
                self.cursor = 0;
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                let at = self.byte_at(self.cursor);
                self.value.insert(at, c);
                self.cursor += 1;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                let at = self.byte_at(self.cursor);
                self.value.remove(at);
            }
            KeyCode::Delete if self.cursor < len => {
                let at = self.byte_at(self.cursor);
                self.value.remove(at);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(len),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = len,
            _ => return false,
        }
        true
    }

    /// The trimmed text, `None` when empty.
    fn given(&self) -> Option<&str> {
        Some(self.value.trim()).filter(|v| !v.is_empty())
    }
}

/// What a key did to the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormAction {
    /// Nothing to do outside the form.
    None,
    /// Close the form.
    Cancel,
    /// Send the request.
    Submit(CreateSession),
}

/// The create form's state.
#[derive(Debug, Clone)]
pub struct CreateForm {
    repo: TextInput,
    prompt: TextInput,
    name: TextInput,
    model: TextInput,
    cpu: TextInput,
    memory: TextInput,
    cache_dirs: TextInput,
    /// Loaded backends; index 0 of the choice is "the default backend".
    backends: Vec<String>,
    backend: usize,
    plan_mode: bool,
    print: bool,
    /// `None`: the config's `sync` default; else `--sync` / `--no-sync`.
    sync: Option<bool>,
    advanced: bool,
    /// 0: the backend's default; `i`: `TIMEOUTS[i - 1]`.
    timeout: usize,
    cache_enabled: bool,
    cache_kinds: [bool; CACHE_KINDS.len()],
    cache_cursor: usize,
    scope: CacheScope,
    focus: Field,
    errors: Vec<(Field, String)>,
    /// An error no field owns (the backend list failed, a 409, the daemon is gone).
    general: Option<String>,
    /// A request is in flight.
    pub submitting: bool,
}

impl CreateForm {
    /// An empty form; `repo` prefills the repository (the current directory's git work tree).
    pub fn new(repo: Option<&str>) -> CreateForm {
        CreateForm {
            repo: TextInput::new(repo.unwrap_or_default()),
            prompt: TextInput::default(),
            name: TextInput::default(),
            model: TextInput::default(),
            cpu: TextInput::default(),
            memory: TextInput::default(),
            cache_dirs: TextInput::default(),
            backends: Vec::new(),
            backend: 0,
            plan_mode: false,
            print: false,
            sync: None,
            advanced: false,
            timeout: 0,
            cache_enabled: false,
            cache_kinds: [false; CACHE_KINDS.len()],
            cache_cursor: 0,
            scope: CacheScope::Project,
            focus: if repo.is_some() {
                Field::Prompt
            } else {
                Field::Repo
            },
            errors: Vec::new(),
            general: None,
            submitting: false,
        }
    }

    /// The daemon's loaded backends arrived.
    pub fn set_backends(&mut self, backends: Vec<String>) {
        self.backends = backends;
        self.backend = self.backend.min(self.backends.len());
    }

    /// The field with the focus.
    pub fn focus(&self) -> Field {
        self.focus
    }

    /// The error shown at `field`, if any.
    pub fn error(&self, field: Field) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    /// The error shown above the fields, if any.
    pub fn general_error(&self) -> Option<&str> {
        self.general.as_deref()
    }

    /// Shows `message` next to the field `path` names (a daemon 400's `error.field`), or
    /// above the form when it names none this form has; moves the focus there.
    pub fn show_error(&mut self, path: Option<&str>, message: &str) {
        self.submitting = false;
        match path.and_then(Field::of_path) {
            Some(field) => self.set_error(field, message.to_owned()),
            None => self.general = Some(message.to_owned()),
        }
    }

    fn set_error(&mut self, field: Field, message: String) {
        self.errors.retain(|(f, _)| *f != field);
        self.errors.push((field, message));
        if field.is_advanced() {
            self.advanced = true;
        }
        if field.is_cache() {
            self.cache_enabled = true;
        }
        self.focus = field;
    }

    /// The fields shown now, in order (the advanced ones when open, the cache ones when
    /// caching is on).
    pub fn visible(&self) -> Vec<Field> {
        let mut v = vec![
            Field::Repo,
            Field::Prompt,
            Field::Backend,
            Field::Name,
            Field::Model,
            Field::PlanMode,
            Field::Print,
            Field::Sync,
            Field::Advanced,
        ];
        if self.advanced {
            v.extend([
                Field::CpuLimit,
                Field::MemoryLimit,
                Field::HibernationTimeout,
                Field::CacheEnabled,
            ]);
            if self.cache_enabled {
                v.extend([Field::CacheTypes, Field::CacheDirs, Field::CacheScope]);
            }
        }
        v.push(Field::Submit);
        v
    }

    fn step(&mut self, forward: bool) {
        let v = self.visible();
        let i = v.iter().position(|f| *f == self.focus).unwrap_or(0);
        let n = v.len();
        let next = if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        };
        self.focus = v[next];
    }

    fn input(&mut self, field: Field) -> Option<&mut TextInput> {
        Some(match field {
            Field::Repo => &mut self.repo,
            Field::Prompt => &mut self.prompt,
            Field::Name => &mut self.name,
            Field::Model => &mut self.model,
            Field::CpuLimit => &mut self.cpu,
            Field::MemoryLimit => &mut self.memory,
            Field::CacheDirs => &mut self.cache_dirs,
            _ => return None,
        })
    }

    fn input_ref(&self, field: Field) -> Option<&TextInput> {
        Some(match field {
            Field::Repo => &self.repo,
            Field::Prompt => &self.prompt,
            Field::Name => &self.name,
            Field::Model => &self.model,
            Field::CpuLimit => &self.cpu,
            Field::MemoryLimit => &self.memory,
            Field::CacheDirs => &self.cache_dirs,
            _ => return None,
        })
    }

    /// Changes a choice or checkbox field: `delta` +1/-1 for choices, any for toggles.
    fn change(&mut self, field: Field, delta: isize) {
        let cycle = |i: usize, n: usize| -> usize {
            let n = isize::try_from(n).unwrap_or(1).max(1);
            let i = isize::try_from(i).unwrap_or(0);
            usize::try_from((i + delta).rem_euclid(n)).unwrap_or(0)
        };
        match field {
            Field::Backend => self.backend = cycle(self.backend, self.backends.len() + 1),
            Field::HibernationTimeout => self.timeout = cycle(self.timeout, TIMEOUTS.len() + 1),
            Field::CacheScope => {
                self.scope = match self.scope {
                    CacheScope::Project => CacheScope::Session,
                    CacheScope::Session => CacheScope::Project,
                }
            }
            Field::PlanMode => self.plan_mode = !self.plan_mode,
            Field::Sync => {
                const CHOICES: [Option<bool>; 3] = [None, Some(true), Some(false)];
                let i = CHOICES.iter().position(|c| *c == self.sync).unwrap_or(0);
                self.sync = CHOICES[cycle(i, CHOICES.len())];
            }
            Field::Print => self.print = !self.print,
            Field::Advanced => self.advanced = !self.advanced,
            Field::CacheEnabled => self.cache_enabled = !self.cache_enabled,
            Field::CacheTypes => {
                if let Some(k) = self.cache_kinds.get_mut(self.cache_cursor) {
                    *k = !*k;
                }
            }
            _ => return,
        }
        self.errors.retain(|(f, _)| *f != field);
    }

    /// Handles one key.
    pub fn key(&mut self, key: KeyEvent) -> FormAction {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let focus = self.focus;
        match key.code {
            KeyCode::Esc => return FormAction::Cancel,
            KeyCode::Char('s') if ctrl => return self.submit(),
            KeyCode::Tab | KeyCode::Down => self.step(true),
            KeyCode::BackTab | KeyCode::Up => self.step(false),
            KeyCode::Enter => match focus {
                Field::Submit => return self.submit(),
                Field::Advanced
                | Field::PlanMode
                | Field::Print
                | Field::CacheEnabled
                | Field::CacheTypes => self.change(focus, 1),
                _ => self.step(true),
            },
            KeyCode::Left | KeyCode::Right if self.input_ref(focus).is_none() => {
                let delta = if key.code == KeyCode::Left { -1 } else { 1 };
                if focus == Field::CacheTypes {
                    let n = CACHE_KINDS.len();
                    self.cache_cursor = if delta < 0 {
                        (self.cache_cursor + n - 1) % n
                    } else {
                        (self.cache_cursor + 1) % n
                    };
                } else if matches!(
                    focus,
                    Field::Backend | Field::HibernationTimeout | Field::CacheScope | Field::Sync
                ) {
                    self.change(focus, delta);
                }
            }
            KeyCode::Char(' ') if self.input_ref(focus).is_none() => self.change(focus, 1),
            _ => {
                if let Some(input) = self.input(focus)
                    && input.key(&key)
                {
                    self.errors.retain(|(f, _)| *f != focus);
                    self.general = None;
                }
            }
        }
        FormAction::None
    }

    fn submit(&mut self) -> FormAction {
        if self.submitting {
            return FormAction::None;
        }
        match self.request() {
            Ok(req) => {
                self.errors.clear();
                self.general = None;
                self.submitting = true;
                FormAction::Submit(req)
            }
            Err((field, message)) => {
                self.errors.clear();
                self.set_error(field, message);
                FormAction::None
            }
        }
    }

    /// The request the form describes, checked by the CLI's rules; the first bad field and its
    /// message otherwise.
    pub fn request(&self) -> Result<CreateSession, (Field, String)> {
        let mut caches: Vec<&str> = Vec::new();
        if self.cache_enabled {
            caches.extend(
                CACHE_KINDS
                    .iter()
                    .zip(self.cache_kinds)
                    .filter(|(_, on)| *on)
                    .map(|((name, _), _)| *name),
            );
            caches.extend(
                self.cache_dirs
                    .value()
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty()),
            );
            if caches.is_empty() {
                return Err((
                    Field::CacheTypes,
                    "choose at least one cache type or directory, or turn build caching off"
                        .to_owned(),
                ));
            }
        }
        let caches = caches.join(",");
        let scope = self.scope.to_string();
        let options = RawOptions {
            hibernation_timeout: self
                .timeout
                .checked_sub(1)
                .and_then(|i| TIMEOUTS.get(i))
                .map(|t| t.as_str()),
            cpu_limit: self.cpu.given(),
            memory_limit: self.memory.given(),
            build_cache: self.cache_enabled.then_some(caches.as_str()),
            cache_scope: self.cache_enabled.then_some(scope.as_str()),
            model: self.model.given(),
            plan_mode: self.plan_mode,
            print: self.print,
            sync: self.sync,
        }
        .validate()
        .map_err(|e| {
            let field = Field::of_path(e.field.path()).unwrap_or(Field::Advanced);
            (field, e.to_string())
        })?;
        let req = CreateSession {
            backend: self
                .backend
                .checked_sub(1)
                .and_then(|i| self.backends.get(i))
                .cloned(),
            repo: self.repo.value().trim().to_owned(),
            prompt: self.prompt.value().to_owned(),
            name: self.name.given().map(str::to_owned),
            options,
        };
        match req.clone().validate() {
            Ok(_) => Ok(req),
            Err(e) => Err((Field::of_path(e.field).unwrap_or(Field::Repo), e.message)),
        }
    }

    fn value_spans(&self, field: Field, focused: bool) -> Vec<Span<'static>> {
        let choice = |text: String| {
            if focused {
                vec![Span::raw("◂ "), Span::raw(text).bold(), Span::raw(" ▸")]
            } else {
                vec![Span::raw(text)]
            }
        };
        let check = |on: bool, text: &str| {
            vec![
                Span::raw(if on { "[x] " } else { "[ ] " }),
                Span::raw(text.to_owned()),
            ]
        };
        match field {
            Field::Backend => choice(match self.backend.checked_sub(1) {
                Some(i) => self.backends.get(i).cloned().unwrap_or_default(),
                None => "(default backend)".to_owned(),
            }),
            Field::HibernationTimeout => choice(match self.timeout.checked_sub(1) {
                Some(i) => TIMEOUTS
                    .get(i)
                    .map(|t| t.as_str().to_owned())
                    .unwrap_or_default(),
                None => "(backend default)".to_owned(),
            }),
            Field::CacheScope => choice(match self.scope {
                CacheScope::Project => "project-wide".to_owned(),
                CacheScope::Session => "this session only".to_owned(),
            }),
            Field::Sync => choice(
                match self.sync {
                    None => "(config default)",
                    Some(true) => "on: a local worktree in two-way sync",
                    Some(false) => "off",
                }
                .to_owned(),
            ),
            Field::PlanMode => check(self.plan_mode, "plan before changing anything"),
            Field::Print => check(self.print, "no terminal; output goes to the log"),
            Field::CacheEnabled => check(self.cache_enabled, "keep build caches"),
            Field::CacheTypes => {
                let mut spans = Vec::new();
                for (i, ((name, _), on)) in CACHE_KINDS.iter().zip(self.cache_kinds).enumerate() {
                    let text = format!("[{}] {name}", if on { 'x' } else { ' ' });
                    let style = if focused && i == self.cache_cursor {
                        Style::new().add_modifier(Modifier::REVERSED)
                    } else {
                        Style::new()
                    };
                    spans.push(Span::styled(text, style));
                    spans.push(Span::raw(" "));
                }
                spans
            }
            Field::Advanced => vec![
                Span::raw(if self.advanced { "▾ " } else { "▸ " }),
                Span::raw("Advanced options").bold(),
                Span::raw(if self.advanced {
                    ""
                } else {
                    "  (CPU, memory, hibernation, build caching)"
                })
                .dim(),
            ],
            Field::Submit => {
                let text = if self.submitting {
                    "[ Creating… ]"
                } else {
                    "[ Create session ]"
                };
                let style = if focused {
                    Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
                } else {
                    Style::new().bold()
                };
                vec![Span::styled(text, style)]
            }
            _ => {
                let input = self.input_ref(field);
                let value = input.map(TextInput::value).unwrap_or_default();
                if value.is_empty() && !focused {
                    vec![Span::raw(placeholder(field)).dim()]
                } else {
                    vec![Span::raw(value.to_owned())]
                }
            }
        }
    }

    /// Draws the form over `area` (centered, at most 90 columns), with the cursor in the
    /// focused text field.
    pub fn render(&self, frame: &mut Frame<'_>, area: Rect) {
        let width = area.width.min(90);
        let rows =
            self.visible().len() + self.errors.len() * 2 + usize::from(self.general.is_some()) * 2;
        let height = u16::try_from(rows + 2).unwrap_or(u16::MAX).min(area.height);
        let rect = Rect::new(area.x + (area.width - width) / 2, area.y, width, height);
        frame.render_widget(Clear, rect);
        let block = Block::default()
            .borders(Borders::ALL)
            .title(" New session ")
            .title_bottom(Line::from(
                " Tab/↓ next · ↑ back · ←→ choose · Space toggle · Ctrl-S create · Esc cancel ",
            ));
        let inner = block.inner(rect);
        frame.render_widget(block, rect);
        const LABEL: usize = 16;
        let text_width = usize::from(inner.width).saturating_sub(LABEL + 2).max(8);
        let mut lines: Vec<Line<'static>> = Vec::new();
        let mut focus_line = 0;
        let mut cursor: Option<(usize, usize)> = None;
        if let Some(g) = &self.general {
            for part in wrap(g, usize::from(inner.width).saturating_sub(1)) {
                lines.push(Line::from(Span::raw(part).red()));
            }
        }
        for field in self.visible() {
            let focused = field == self.focus;
            if focused {
                focus_line = lines.len();
            }
            let marker = if focused { "› " } else { "  " };
            let label = format!("{:<LABEL$}", field.label());
            let label = if focused {
                Span::raw(label).bold().cyan()
            } else {
                Span::raw(label)
            };
            let mut spans = vec![Span::raw(marker), label];
            let mut value = self.value_spans(field, focused);
            if let Some(input) = self.input_ref(field) {
                // Scroll a long value so the cursor stays visible.
                let skip = input.cursor.saturating_sub(text_width.saturating_sub(1));
                let shown: String = input.value.chars().skip(skip).take(text_width).collect();
                if !input.value.is_empty() || focused {
                    value = vec![Span::raw(shown)];
                }
                if focused {
                    cursor = Some((lines.len(), 2 + LABEL + input.cursor - skip));
                }
            }
            spans.extend(value);
            lines.push(Line::from(spans));
            if let Some(e) = self.error(field) {
                for part in wrap(e, usize::from(inner.width).saturating_sub(LABEL + 4)) {
                    lines.push(Line::from(vec![
                        Span::raw(" ".repeat(LABEL + 2)),
                        Span::raw(part).red(),
                    ]));
                }
            }
        }
        let height = usize::from(inner.height).max(1);
        let scroll = (focus_line + 2).saturating_sub(height);
        if let Some((row, col)) = cursor
            && row >= scroll
            && row - scroll < height
        {
            let x = inner.x + u16::try_from(col).unwrap_or(0);
            let y = inner.y + u16::try_from(row - scroll).unwrap_or(0);
            if x < inner.x + inner.width {
                frame.set_cursor_position(Position::new(x, y));
            }
        }
        let para = Paragraph::new(lines).scroll((u16::try_from(scroll).unwrap_or(0), 0));
        frame.render_widget(para, inner);
    }
}

fn placeholder(field: Field) -> &'static str {
    match field {
        Field::Repo => "/path/to/a/git/repository",
        Field::Prompt => "what should the agent do?",
        Field::Name => "from the repository's name",
        Field::Model => "the agent's default",
        Field::CpuLimit => "e.g. 4 or 0.5",
        Field::MemoryLimit => "e.g. 8G",
        Field::CacheDirs => "./node_modules, /root/.cache/foo",
        _ => "",
    }
}

/// `text` in lines of at most `width` characters, broken at spaces where possible.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word = word.to_owned();
        loop {
            let have = line.chars().count();
            let need = word.chars().count() + usize::from(have > 0);
            if have + need <= width {
                if have > 0 {
                    line.push(' ');
                }
                line.push_str(&word);
                break;
            }
            if have > 0 {
                out.push(std::mem::take(&mut line));
                continue;
            }
            // A word longer than a line is cut.
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            out.push(head);
            if word.is_empty() {
                break;
            }
        }
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn typed(form: &mut CreateForm, text: &str) {
        for c in text.chars() {
            form.key(key(KeyCode::Char(c)));
        }
    }

    fn focus(form: &mut CreateForm, field: Field) {
        for _ in 0..40 {
            if form.focus() == field {
                return;
            }
            form.key(key(KeyCode::Tab));
        }
        panic!("{field:?} is not visible: {:?}", form.visible());
    }

    #[test]
    fn the_flags_rules_name_the_field() {
        let mut form = CreateForm::new(Some("/r"));
        typed(&mut form, "go");
        focus(&mut form, Field::Advanced);
        form.key(key(KeyCode::Enter));
        focus(&mut form, Field::CpuLimit);
        typed(&mut form, "two");
        focus(&mut form, Field::Submit);
        assert_eq!(form.key(key(KeyCode::Enter)), FormAction::None);
        assert_eq!(form.focus(), Field::CpuLimit);
        let e = form.error(Field::CpuLimit).unwrap();
        assert!(
            e.contains("`two`") && e.contains("options.cpu_limit"),
            "{e}"
        );
        // Editing the field clears its error.
        form.key(key(KeyCode::Backspace));
        assert_eq!(form.error(Field::CpuLimit), None);
    }

    #[test]
    fn a_request_with_the_advanced_options() {
        let mut form = CreateForm::new(None);
        form.set_backends(vec!["local".into(), "sprites".into()]);
        typed(&mut form, "/srv/repo");
        form.key(key(KeyCode::Tab));
        typed(&mut form, "fix the bug");
        form.key(key(KeyCode::Tab));
        form.key(key(KeyCode::Right));
        form.key(key(KeyCode::Right));
        focus(&mut form, Field::Advanced);
        form.key(key(KeyCode::Char(' ')));
        focus(&mut form, Field::MemoryLimit);
        typed(&mut form, "8G");
        form.key(key(KeyCode::Tab));
        form.key(key(KeyCode::Right));
        form.key(key(KeyCode::Right));
        form.key(key(KeyCode::Tab));
        form.key(key(KeyCode::Char(' ')));
        // Caching on without a type is refused before anything is sent.
        let e = form.request().unwrap_err();
        assert_eq!(e.0, Field::CacheTypes);
        focus(&mut form, Field::CacheTypes);
        form.key(key(KeyCode::Char(' ')));
        form.key(key(KeyCode::Right));
        form.key(key(KeyCode::Enter));
        focus(&mut form, Field::CacheScope);
        form.key(key(KeyCode::Right));
        let FormAction::Submit(req) =
            form.key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL))
        else {
            panic!("not submitted: {:?}", form.errors);
        };
        assert_eq!(req.backend.as_deref(), Some("sprites"));
        assert_eq!(req.repo, "/srv/repo");
        let o = serde_json::to_value(&req.options).unwrap();
        assert_eq!(
            o,
            serde_json::json!({"memory_limit": "8G", "hibernation_timeout": "15m",
                "build_cache": ["cargo", "npm"], "cache_scope": "session",
                "plan_mode": false, "print": false})
        );
        assert!(form.submitting);
    }

    #[test]
    fn daemon_errors_go_to_the_field_they_name() {
        let mut form = CreateForm::new(Some("/r"));
        form.show_error(Some("options.cache_scope"), "bad scope");
        assert_eq!(form.focus(), Field::CacheScope);
        assert!(form.visible().contains(&Field::CacheScope));
        form.show_error(Some("repo"), "not a git repository");
        assert_eq!(form.error(Field::Repo), Some("not a git repository"));
        form.show_error(None, "name taken");
        assert_eq!(form.general_error(), Some("name taken"));
    }

    #[test]
    fn wrapping() {
        assert_eq!(wrap("aaa bbb ccc", 8), ["aaa bbb", "ccc"]);
        assert_eq!(wrap("abcdefghijkl", 8), ["abcdefgh", "ijkl"]);
        assert_eq!(wrap("", 8), [""]);
    }
}
