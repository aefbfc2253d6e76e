//! Drawing the state: a header, the session table (status badges; `☾ Hibernated` with the time
//! since it slept; failed with its reason; the agent's state; live progress), the selected
//! session's detail with its recent events (rendered by [`crate::api::render`]), a footer with
//! the last notice and the keys, and the form, help, question and checkpoint overlays. Only
//! the rows on screen are built, so a table of thousands draws as fast as one screenful.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize as _};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table};

use super::app::{App, CacheRow, Confirm, Feed, Mode};
use super::form::wrap;
use super::keys;
use crate::agent::AgentState;
use crate::api::{ApiEvent, SessionSummary, render};
use crate::cli::output::{self, age};
use crate::session::Status;

/// The spinner's frames.
const SPINNER: [&str; 4] = ["◐", "◓", "◑", "◒"];

/// The badge of a status: symbol, word, colour.
pub fn badge(status: Status) -> (&'static str, &'static str, Color) {
    match status {
        Status::Creating => ("◌", "Creating", Color::Yellow),
        Status::Running => ("●", "Running", Color::Green),
        Status::Hibernating => ("◌", "Hibernating", Color::Yellow),
        Status::Hibernated => ("☾", "Hibernated", Color::Magenta),
        Status::Waking => ("◌", "Waking", Color::Yellow),
        Status::Failed => ("✗", "Failed", Color::Red),
        Status::Deleting => ("◌", "Deleting", Color::Yellow),
        Status::Deleted => ("-", "Deleted", Color::DarkGray),
    }
}

/// A session's status as spans: the badge, then `asleep 5m` for a hibernated session, the
/// reason of a failed one, or the latest progress of one with work in flight.
pub fn status_spans(app: &App, s: &SessionSummary) -> Vec<Span<'static>> {
    let (symbol, word, colour) = badge(s.status);
    let mut spans = vec![Span::styled(
        format!("{symbol} {word}"),
        Style::new().fg(colour).add_modifier(Modifier::BOLD),
    )];
    match s.status {
        Status::Hibernated => {
            spans.push(Span::raw(format!(" asleep {}", age(&s.updated_at, app.now))).dim())
        }
        Status::Failed => {
            if let Some(r) = s.status_reason.as_deref().filter(|r| !r.is_empty()) {
                spans.push(Span::raw(format!(": {r}")).red());
            }
        }
        _ => {
            if let Some(p) = app.progress(&s.id) {
                spans.push(Span::raw(format!(" {p}")).dim());
            }
        }
    }
    spans
}

/// The agent's state as a styled word (`-` when no agent process is expected).
pub fn agent_span(agent: Option<AgentState>) -> Span<'static> {
    match agent {
        None => Span::raw("-").dim(),
        Some(a) => {
            let style = match a {
                AgentState::Working => Style::new().fg(Color::Cyan),
                AgentState::Waiting => Style::new().fg(Color::Yellow).bold(),
                AgentState::Idle => Style::new().fg(Color::Green),
                AgentState::Exited { code: 0 } => Style::new().dim(),
                AgentState::Exited { .. } => Style::new().fg(Color::Red),
                AgentState::Starting | AgentState::Running => Style::new(),
            };
            Span::styled(a.to_string(), style)
        }
    }
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let area = frame.area();
    let footer = if app.notice.is_some() { 2 } else { 1 };
    let detail = (area.height / 3).clamp(6, 14);
    let [head, table, pane, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(detail),
        Constraint::Length(footer),
    ])
    .areas(area);
    draw_header(frame, app, head);
    draw_table(frame, app, table);
    draw_detail(frame, app, pane);
    draw_footer(frame, app, foot);
    let below_header = Rect::new(
        area.x,
        area.y + 1,
        area.width,
        area.height.saturating_sub(1),
    );
    match &app.mode {
        Mode::List => {}
        Mode::Help => draw_help(frame, below_header),
        Mode::Create(form) => form.render(frame, below_header),
        Mode::Confirm(c) => draw_confirm(frame, c, below_header),
        Mode::Checkpoints(_) => draw_checkpoints(frame, app, below_header),
        Mode::Caches(_) => draw_caches(frame, app, below_header),
    }
}

fn draw_header(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let count = |st: Status| app.sessions().iter().filter(|s| s.status == st).count();
    let mut left = vec![
        Span::raw(" clauderon ").bold().reversed(),
        Span::raw(format!(" {} sessions", app.sessions().len())),
    ];
    for (st, word) in [
        (Status::Hibernated, "hibernated"),
        (Status::Failed, "failed"),
    ] {
        let n = count(st);
        if n > 0 {
            left.push(Span::raw(format!(" · {n} {word}")));
        }
    }
    let right = match &app.feed {
        Feed::Connecting => Span::raw("○ connecting ").yellow(),
        Feed::Live => Span::raw("● live ").green(),
        Feed::Lost(why) => Span::raw(format!("✗ events lost ({why}); reconnecting ")).red(),
    };
    let used: usize = left.iter().map(|s| s.width()).sum();
    let gap = usize::from(area.width).saturating_sub(used + right.width());
    left.push(Span::raw(" ".repeat(gap)));
    left.push(right);
    frame.render_widget(Paragraph::new(Line::from(left)), area);
}

/// Which columns fit a width: (agent, backend, repository).
fn columns(width: u16) -> (bool, bool, bool) {
    (width >= 56, width >= 72, width >= 64)
}

fn draw_table(frame: &mut Frame<'_>, app: &App, area: Rect) {
    if app.sessions().is_empty() {
        let text = if app.loaded {
            "no sessions yet; n creates one, ? shows every key"
        } else {
            "reading the sessions…"
        };
        frame.render_widget(Paragraph::new(format!(" {text}")).dim(), area);
        return;
    }
    let rows_shown = usize::from(area.height.saturating_sub(1)).max(1);
    let selected = app.selected_index();
    // Keep the selection on screen, moving the window as little as possible.
    let mut offset = app.offset.get();
    if selected < offset {
        offset = selected;
    } else if selected >= offset + rows_shown {
        offset = selected + 1 - rows_shown;
    }
    offset = offset.min(app.sessions().len().saturating_sub(rows_shown));
    app.offset.set(offset);
    let (show_agent, show_backend, show_repo) = columns(area.width);
    let name_w = app
        .sessions()
        .iter()
        .map(|s| s.name.as_str().chars().count())
        .max()
        .unwrap_or(4)
        .clamp(6, 24);
    let backend_w = app
        .sessions()
        .iter()
        .map(|s| s.backend.chars().count())
        .max()
        .unwrap_or(7)
        .clamp(7, 12);
    let mut header = vec![Cell::from("NAME"), Cell::from("STATUS")];
    let mut widths = vec![
        Constraint::Length(u16::try_from(name_w).unwrap_or(24)),
        Constraint::Min(22),
    ];
    if show_agent {
        header.push(Cell::from("AGENT"));
        widths.push(Constraint::Length(10));
    }
    if show_backend {
        header.push(Cell::from("BACKEND"));
        widths.push(Constraint::Length(u16::try_from(backend_w).unwrap_or(12)));
    }
    header.push(Cell::from("AGE"));
    widths.push(Constraint::Length(4));
    if show_repo {
        header.push(Cell::from("REPOSITORY"));
        widths.push(Constraint::Percentage(30));
    }
    let rows = app
        .sessions()
        .iter()
        .enumerate()
        .skip(offset)
        .take(rows_shown)
        .map(|(i, s)| {
            let mut cells = vec![
                Cell::from(s.name.to_string()),
                Cell::from(Line::from(status_spans(app, s))),
            ];
            if show_agent {
                cells.push(Cell::from(agent_span(s.agent)));
            }
            if show_backend {
                cells.push(Cell::from(s.backend.clone()));
            }
            cells.push(Cell::from(age(&s.created_at, app.now)));
            if show_repo {
                cells.push(Cell::from(tail(&s.repository, 40)));
            }
            let row = Row::new(cells);
            if i == selected {
                row.style(Style::new().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        });
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().bold().underlined()))
        .column_spacing(1);
    frame.render_widget(table, area);
}

/// The end of a long path (`…/src/project`), at most `max` characters.
fn tail(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().skip(n + 1 - max).collect();
    format!("…{kept}")
}

/// `12:01:02` (UTC) of an RFC 3339 time.
fn clock(at: &str) -> String {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map(|t| {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
        })
        .unwrap_or_else(|_| "--:--:--".into())
}

/// An event as the detail pane shows it: time and the one rendering of events.
pub fn event_line(ev: &ApiEvent) -> Option<String> {
    let text = match ev.event() {
        Some(e) => render::line(&e)?,
        None => render::unknown_line(ev),
    };
    Some(format!("{} {text}", clock(&ev.at)))
}

fn draw_detail(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let Some(s) = app.selected() else {
        frame.render_widget(Block::default().borders(Borders::TOP), area);
        return;
    };
    let block = Block::default()
        .borders(Borders::TOP)
        .title(Line::from(vec![
            Span::raw(" "),
            Span::raw(s.name.to_string()).bold(),
            Span::raw(" "),
        ]));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width).saturating_sub(1);
    let mut lines: Vec<Line<'static>> = Vec::new();
    let mut first = vec![Span::raw("status ").dim()];
    first.extend(status_spans(app, s));
    first.push(Span::raw("  agent ").dim());
    first.push(agent_span(s.agent));
    first.push(Span::raw("  backend ").dim());
    first.push(Span::raw(s.backend.clone()));
    lines.push(Line::from(first));
    let mut repo = vec![Span::raw("repo ").dim(), Span::raw(s.repository.clone())];
    if let Some(b) = &s.branch {
        repo.push(Span::raw("  branch ").dim());
        repo.push(Span::raw(b.clone()));
    }
    lines.push(Line::from(repo));
    let id: String = s.id.to_string().chars().take(8).collect();
    let mut third = vec![
        Span::raw("id ").dim(),
        Span::raw(id),
        Span::raw("  created ").dim(),
        Span::raw(format!("{} ago", age(&s.created_at, app.now))),
    ];
    if let Some(v) = app.detail.view.as_ref().filter(|v| v.id == s.id) {
        let o = &v.options;
        let mut opts: Vec<String> = Vec::new();
        if let Some(c) = o.cpu_limit {
            opts.push(format!("cpu {c}"));
        }
        if let Some(m) = o.memory_limit {
            opts.push(format!("memory {m}"));
        }
        if let Some(t) = o.hibernation_timeout {
            opts.push(format!("hibernate after {t}"));
        }
        if !o.build_cache.is_empty() {
            let kinds: Vec<&str> = o.build_cache.iter().map(|c| c.as_str()).collect();
            opts.push(format!("caches {} ({})", kinds.join(","), o.cache_scope));
        }
        if let Some(m) = &o.model {
            opts.push(format!("model {m}"));
        }
        if o.plan_mode {
            opts.push("plan mode".into());
        }
        if o.print {
            opts.push("print mode".into());
        }
        if o.sync == Some(true) {
            opts.push("local sync".into());
        }
        lines.push(Line::from(std::mem::take(&mut third)));
        if !opts.is_empty() {
            for (i, part) in wrap(&opts.join(" · "), width.saturating_sub(8))
                .into_iter()
                .enumerate()
            {
                let label = if i == 0 { "options " } else { "        " };
                lines.push(Line::from(vec![Span::raw(label).dim(), Span::raw(part)]));
            }
        }
    }
    if !third.is_empty() {
        lines.push(Line::from(third));
    }
    if s.status == Status::Failed
        && let Some(r) = &s.status_reason
    {
        for part in wrap(&format!("failed: {r}"), width) {
            lines.push(Line::from(Span::raw(part).red()));
        }
    }
    let room = usize::from(inner.height).saturating_sub(lines.len());
    if let Some(e) = &app.detail.error {
        lines.push(Line::from(
            Span::raw(format!("cannot read the events: {e}")).red(),
        ));
    } else if room > 0 {
        let events: Vec<String> = app
            .detail
            .events
            .iter()
            .filter(|e| e.session_id == s.id)
            .filter_map(event_line)
            .collect();
        let skip = events.len().saturating_sub(room);
        for e in events.into_iter().skip(skip) {
            lines.push(Line::from(Span::raw(e).dim()));
        }
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_footer(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let mut lines = Vec::new();
    if let Some(n) = &app.notice {
        let spin = if app.busy() {
            format!("{} ", SPINNER[app.spin % SPINNER.len()])
        } else {
            String::new()
        };
        let style = if n.error {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        };
        lines.push(Line::from(Span::styled(
            format!(" {spin}{}", n.text),
            style,
        )));
    }
    let hints = [
        ("n", "new"),
        ("a", "attach"),
        ("w", "wake"),
        ("h", "hibernate"),
        ("c", "checkpoints"),
        ("d", "delete"),
        ("?", "help"),
        ("q", "quit"),
    ];
    let full: usize = hints
        .iter()
        .map(|(k, w)| k.len() + w.len() + 3)
        .sum::<usize>()
        - 1;
    // A narrow terminal gets the keys without their words; `?` explains them.
    let short = full > usize::from(area.width);
    let mut spans = vec![Span::raw(" ")];
    for (i, (k, what)) in hints.iter().enumerate() {
        if short {
            spans.push(Span::raw(format!("{k} ")).bold());
            if *k == "?" {
                spans.push(Span::raw("help ").dim());
            }
            continue;
        }
        if i > 0 {
            spans.push(Span::raw("  "));
        }
        spans.push(Span::raw(*k).bold());
        spans.push(Span::raw(format!(" {what}")));
    }
    lines.push(Line::from(spans));
    frame.render_widget(Paragraph::new(lines), area);
}

/// A box of `width` x `height` in the middle of `area`, cleared.
fn popup(frame: &mut Frame<'_>, area: Rect, width: u16, height: u16, title: &str) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    let rect = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {title} "));
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    inner
}

fn draw_help(frame: &mut Frame<'_>, area: Rect) {
    let help = keys::help();
    let height = u16::try_from(help.len() + 3).unwrap_or(u16::MAX);
    let inner = popup(frame, area, 72, height, "keys");
    let mut lines: Vec<Line<'static>> = help
        .into_iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::raw(format!(" {k:<12} ")).bold(),
                Span::raw(what),
            ])
        })
        .collect();
    lines.push(Line::from(Span::raw(" any key closes this").dim()));
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_confirm(frame: &mut Frame<'_>, c: &Confirm, area: Rect) {
    let width = area.width.saturating_sub(4).min(76);
    let text_w = usize::from(width.saturating_sub(4));
    let mut lines: Vec<Line<'static>> = Vec::new();
    let title;
    match c {
        Confirm::Delete {
            what,
            checking,
            warning,
            note,
            ..
        } => {
            title = "delete";
            if *checking {
                lines.push(Line::from(
                    Span::raw("checking the sandbox for unpushed commits…").yellow(),
                ));
            }
            for w in warning.iter().chain(note.iter()) {
                for part in wrap(w, text_w) {
                    lines.push(Line::from(Span::raw(part).red().bold()));
                }
            }
            let q = format!(
                "Delete session {what}? Its sandbox and everything in it that is not pushed is \
                 destroyed."
            );
            for part in wrap(&q, text_w) {
                lines.push(Line::from(part));
            }
        }
        Confirm::Restore {
            name, checkpoint, ..
        } => {
            title = "restore";
            let q = format!(
                "Restore {name} to checkpoint {} ({}, \"{}\")? The current state is saved as a \
                 checkpoint first.",
                checkpoint.id, checkpoint.created_at, checkpoint.comment
            );
            for part in wrap(&q, text_w) {
                lines.push(Line::from(part));
            }
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::from(vec![
        Span::raw(" y ").bold().reversed(),
        Span::raw(" yes    "),
        Span::raw(" n ").bold().reversed(),
        Span::raw(" no (any other key)"),
    ]));
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let inner = popup(frame, area, width, height, title);
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_checkpoints(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let Mode::Checkpoints(pane) = &app.mode else {
        return;
    };
    let width = area.width.saturating_sub(2).min(90);
    let rows = pane.list.as_ref().map_or(1, |l| l.len().max(1) + 1);
    let extra = 1 + usize::from(pane.busy.is_some()) + usize::from(pane.error.is_some());
    let extra = extra + usize::from(pane.comment.is_some());
    let height = u16::try_from(rows + extra + 2)
        .unwrap_or(u16::MAX)
        .min(area.height.saturating_sub(2).min(18));
    let inner = popup(
        frame,
        area,
        width,
        height,
        &format!("checkpoints of {}", pane.name),
    );
    let mut lines: Vec<Line<'static>> = Vec::new();
    match &pane.list {
        None => lines.push(Line::from(Span::raw("reading the checkpoints…").dim())),
        Some(list) if list.is_empty() => lines.push(Line::from(
            Span::raw("no checkpoints yet; n makes one").dim(),
        )),
        Some(list) => {
            lines.push(Line::from(
                Span::raw(format!(
                    "{:<8}  {:<20}  {:<12}  COMMENT",
                    "ID", "CREATED", "GIT HEAD"
                ))
                .bold(),
            ));
            let room = usize::from(inner.height).saturating_sub(1 + extra).max(1);
            let skip = (pane.selected + 1).saturating_sub(room);
            for (i, c) in list.iter().enumerate().skip(skip).take(room) {
                let id: String = c.id.chars().take(8).collect();
                let head: String = c
                    .git_head
                    .as_deref()
                    .unwrap_or("-")
                    .chars()
                    .take(12)
                    .collect();
                let created: String = c.created_at.chars().take(20).collect();
                let text = format!("{id:<8}  {created:<20}  {head:<12}  {}", c.comment);
                let line = if i == pane.selected {
                    Line::from(Span::raw(text).reversed())
                } else {
                    Line::from(text)
                };
                lines.push(line);
            }
        }
    }
    push_state(&mut lines, pane.busy.as_deref(), pane.error.as_deref());
    if let Some(c) = &pane.comment {
        lines.push(Line::from(vec![
            Span::raw("comment: ").bold(),
            Span::raw(c.clone()),
            Span::raw("▏"),
        ]));
        lines.push(Line::from(
            Span::raw("Enter creates the checkpoint · Esc cancels").dim(),
        ));
    } else {
        lines.push(Line::from(
            Span::raw("n new · r/Enter restore · ↑↓ select · Esc back").dim(),
        ));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_caches(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let Mode::Caches(pane) = &app.mode else {
        return;
    };
    // Entry keys are long (a layer names its base too): as wide as the terminal allows.
    let width = area.width.saturating_sub(2).min(180);
    let rows = pane.rows();
    let text_w = usize::from(width.saturating_sub(2));
    let question = pane
        .confirm
        .as_ref()
        .map(|r| {
            wrap(
                &format!("{} y yes · any other key no", r.question()),
                text_w,
            )
        })
        .unwrap_or_default();
    let extra = usize::from(question.is_empty())
        + usize::from(pane.busy.is_some())
        + usize::from(pane.error.is_some())
        + question.len();
    let height = u16::try_from(rows.len().max(1) + 1 + extra + 2)
        .unwrap_or(u16::MAX)
        .min(area.height.saturating_sub(2).min(24));
    let inner = popup(frame, area, width, height, "build caches");
    let mut lines: Vec<Line<'static>> = Vec::new();
    match &pane.list {
        None => lines.push(Line::from(Span::raw("reading the caches…").dim())),
        Some(list) if list.is_empty() => lines.push(Line::from(
            Span::raw("no build caches yet; create a session with --build-cache").dim(),
        )),
        Some(list) => {
            lines.push(Line::from(
                Span::raw(format!(
                    "{:>10}  {:>9}  {:<16}  CACHE (STORE STATE, NAME) / ENTRY",
                    "SIZE", "LAST USED", "SCOPE / TYPE"
                ))
                .bold(),
            ));
            let mut texts = Vec::new();
            for c in list {
                let scope = match &c.session {
                    Some(s) => format!("session {s}"),
                    None => c.scope.to_string(),
                };
                texts.push(format!(
                    "{:>10}  {:>9}  {scope:<16}  {} ({}, {})",
                    output::bytes(c.size),
                    output::age(&c.last_used, app.now),
                    c.key,
                    c.state,
                    c.instance.as_deref().unwrap_or("no store")
                ));
                for e in &c.entries {
                    texts.push(format!(
                        "{:>10}  {:>9}  {:<16}    {}{}",
                        output::bytes(e.size),
                        output::age(&e.last_used, app.now),
                        e.kind,
                        e.key,
                        e.base
                            .as_deref()
                            .map(|b| format!(", a layer over {b}"))
                            .unwrap_or_default()
                    ));
                }
            }
            let room = usize::from(inner.height).saturating_sub(1 + extra).max(1);
            let skip = (pane.selected + 1).saturating_sub(room);
            for (i, text) in texts.into_iter().enumerate().skip(skip).take(room) {
                let line = if i == pane.selected {
                    Line::from(Span::raw(text).reversed())
                } else if matches!(rows.get(i), Some(CacheRow::Cache { .. })) {
                    Line::from(Span::raw(text).bold())
                } else {
                    Line::from(text)
                };
                lines.push(line);
            }
        }
    }
    push_state(&mut lines, pane.busy.as_deref(), pane.error.as_deref());
    if !question.is_empty() {
        lines.extend(
            question
                .into_iter()
                .map(|q| Line::from(Span::raw(q).bold())),
        );
    } else {
        lines.push(Line::from(
            Span::raw(
                "x clear (asks) · g collect unused now · r read again · ↑↓ select · Esc back",
            )
            .dim(),
        ));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// A pane's request in flight (yellow) and its last failure (red), each on a line.
fn push_state(lines: &mut Vec<Line<'static>>, busy: Option<&str>, error: Option<&str>) {
    if let Some(b) = busy {
        lines.push(Line::from(Span::raw(b.to_owned()).yellow()));
    }
    if let Some(e) = error {
        lines.push(Line::from(Span::raw(e.to_owned()).red()));
    }
}
