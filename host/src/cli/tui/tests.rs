//! The TUI's state and drawing without a terminal: messages in, effects and
//! [`ratatui::backend::TestBackend`] screens out, checked as the text a person would read.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::app::{App, Confirm, Detached, Done, Effect, Failure, Mode, Msg};
use super::form::Field;
use super::view;
use crate::api::{ApiEvent, CheckpointView, SessionSummary, SessionView, Unpushed, Woken};
use crate::session::{SessionId, Status};

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        "2026-01-01T12:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

fn id(n: u8) -> SessionId {
    format!("{n:08x}-89ab-4def-8123-456789abcdef")
        .parse()
        .unwrap()
}

fn view_of(n: u8, name: &str, extra: serde_json::Value) -> SessionView {
    let mut v =
        serde_json::json!({"id": id(n), "name": name, "branch": format!("clauderon/{name}")});
    if let (Some(b), Some(o)) = (v.as_object_mut(), extra.as_object()) {
        b.extend(o.clone());
    }
    crate::cli::output::tests::session(v)
}

fn summary(n: u8, name: &str, extra: serde_json::Value) -> SessionSummary {
    SessionSummary::from(&view_of(n, name, extra))
}

fn event(n: u8, seq: u64, kind: &str, data: serde_json::Value) -> ApiEvent {
    ApiEvent {
        session_id: id(n),
        seq,
        kind: kind.into(),
        data,
        at: "2026-01-01T11:58:30Z".into(),
    }
}

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ch(c: char) -> Msg {
    key(KeyCode::Char(c))
}

/// Four sessions: running with a working agent, hibernated, failed with a reason, creating.
fn app() -> App {
    let mut app = App::new("127.0.0.1:3030", now());
    app.update(Msg::Listed(vec![
        summary(
            1,
            "fix-it",
            serde_json::json!({"agent": {"state": "working"}}),
        ),
        summary(
            2,
            "docs",
            serde_json::json!({"status": "hibernated", "updated_at": "2026-01-01T11:55:00Z",
                "created_at": "2025-12-31T09:00:00Z"}),
        ),
        summary(
            3,
            "broken",
            serde_json::json!({"status": "failed", "backend": "local",
                "status_reason": "the agent exited with code 1",
                "agent": {"state": "exited", "code": 1}, "repository": "/srv/other"}),
        ),
        summary(
            4,
            "new-one",
            serde_json::json!({"status": "creating", "created_at": "2026-01-01T11:59:58Z"}),
        ),
    ]));
    app
}

/// The screen as text, one line per row, trailing blanks cut.
fn screen(app: &App, width: u16, height: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(width, height)).unwrap();
    t.draw(|f| view::draw(f, app)).unwrap();
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn the_table_at_80x24_with_badges_and_the_detail() {
    let mut app = app();
    // The selection moves to the hibernated session; its detail and events arrive.
    let effects = app.update(key(KeyCode::Down));
    assert_eq!(effects, [Effect::LoadDetail(id(2))]);
    app.update(Msg::Detail(
        id(2),
        Ok((
            Box::new(view_of(
                2,
                "docs",
                serde_json::json!({"status": "hibernated",
                    "options": {"cpu_limit": 2, "memory_limit": "4G", "hibernation_timeout": "30m",
                        "build_cache": ["cargo", "npm"], "model": "opus"}}),
            )),
            vec![
                event(
                    2,
                    7,
                    "status",
                    serde_json::json!({"from": "running", "to": "hibernating"}),
                ),
                event(
                    2,
                    8,
                    "progress",
                    serde_json::json!({"stage": "hibernate", "message": "saving the sandbox"}),
                ),
                event(2, 9, "output", serde_json::json!({"b64": "aGk="})),
                event(
                    2,
                    10,
                    "status",
                    serde_json::json!({"from": "hibernating", "to": "hibernated"}),
                ),
            ],
        )),
    ));
    // A progress event of the creating session shows on its row.
    app.update(Msg::Event(event(
        4,
        11,
        "progress",
        serde_json::json!({"stage": "clone", "message": "cloning from the origin"}),
    )));
    insta::assert_snapshot!("table_80x24", screen(&app, 80, 24));
    // Narrow terminals keep name, status and age.
    insta::assert_snapshot!("table_50x16", screen(&app, 50, 16));
}

#[test]
fn events_change_rows_and_ask_for_the_session_again() {
    let mut app = app();
    let effects = app.update(Msg::Event(event(
        1,
        20,
        "status",
        serde_json::json!({"from": "running", "to": "hibernated"}),
    )));
    assert_eq!(effects, [Effect::Reread(id(1))]);
    assert_eq!(app.sessions()[0].status, Status::Hibernated);
    // A session made elsewhere is read in full when its first event arrives.
    let effects = app.update(Msg::Event(event(
        9,
        21,
        "status",
        serde_json::json!({"to": "creating"}),
    )));
    assert_eq!(effects, [Effect::Reread(id(9))]);
    app.update(Msg::Reread(Box::new(view_of(
        9,
        "elsewhere",
        serde_json::json!({"status": "creating", "created_at": "2026-01-01T11:59:59Z"}),
    ))));
    assert_eq!(app.sessions().last().unwrap().name.as_str(), "elsewhere");
    // Deleted sessions leave the table; the selection stays on a row.
    app.update(Msg::Event(event(
        9,
        22,
        "status",
        serde_json::json!({"from": "deleting", "to": "deleted"}),
    )));
    assert_eq!(app.sessions().len(), 4);
    app.update(Msg::Event(event(
        1,
        23,
        "agent_state",
        serde_json::json!({"state": "waiting"}),
    )));
    assert_eq!(
        app.sessions()[0].agent,
        Some(crate::agent::AgentState::Waiting)
    );
}

#[test]
fn wake_shows_how_long_it_took() {
    let mut app = app();
    app.update(key(KeyCode::Down));
    assert_eq!(app.update(ch('w')), [Effect::Wake(id(2))]);
    assert!(app.busy());
    // A second action on a busy session is refused.
    assert_eq!(app.update(ch('h')), []);
    let woken = Woken {
        session: view_of(2, "docs", serde_json::json!({})),
        elapsed_ms: 2340,
    };
    app.update(Msg::Done(id(2), Done::Woken(Box::new(woken))));
    assert!(!app.busy());
    let notice = app.notice.clone().unwrap();
    assert_eq!(notice.text, "docs is running (woke in 2.3s)");
    assert_eq!(app.sessions()[1].status, Status::Running);
}

#[test]
fn delete_asks_and_warns_of_unpushed_commits() {
    let mut app = app();
    assert_eq!(app.update(ch('d')), [Effect::Unpushed(id(1))]);
    // No answer while the sandbox is being asked.
    assert_eq!(app.update(ch('y')), []);
    app.update(Msg::Unpushed(
        id(1),
        Ok(Unpushed {
            branch: Some("clauderon/fix-it".into()),
            checked: true,
            count: 2,
            against: Some("origin/main".into()),
            reason: None,
        }),
    ));
    let Mode::Confirm(Confirm::Delete { warning, .. }) = &app.mode else {
        panic!("not asking");
    };
    assert!(warning.as_deref().unwrap().contains("2 unpushed commits"));
    insta::assert_snapshot!("delete_80x24", screen(&app, 80, 24));
    assert_eq!(app.update(ch('y')), [Effect::Delete(id(1))]);
    app.update(Msg::Done(
        id(1),
        Done::Deleted(Box::new(view_of(
            1,
            "fix-it",
            serde_json::json!({"status": "deleted"}),
        ))),
    ));
    assert_eq!(app.sessions().len(), 3);
    // Any other key is a no.
    assert_eq!(app.update(ch('d')), [Effect::Unpushed(id(2))]);
    app.update(ch('x'));
    assert!(matches!(app.mode, Mode::List));
    assert_eq!(app.notice.clone().unwrap().text, "docs not deleted");
}

#[test]
fn checkpoints_list_create_and_restore_with_confirmation() {
    let mut app = app();
    assert_eq!(app.update(ch('c')), [Effect::ListCheckpoints(id(1))]);
    let cp = |n: &str, comment: &str| CheckpointView {
        id: format!("{n}aaaaaaa-0000"),
        comment: comment.into(),
        created_at: "2026-01-01T11:50:00Z".into(),
        git_head: Some("0123456789abcdef".into()),
    };
    app.update(Msg::Checkpoints(
        id(1),
        Ok(vec![cp("1", "before refactor"), cp("2", "tests pass")]),
    ));
    insta::assert_snapshot!("checkpoints_80x24", screen(&app, 80, 24));
    app.update(ch('n'));
    for c in "try it".chars() {
        app.update(ch(c));
    }
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        [Effect::Checkpoint(id(1), "try it".into())]
    );
    app.update(Msg::Done(id(1), Done::Checkpointed(cp("3", "try it"))));
    // Restore asks first; yes restores.
    app.update(key(KeyCode::Up));
    app.update(ch('r'));
    assert!(matches!(app.mode, Mode::Confirm(Confirm::Restore { .. })));
    let effects = app.update(ch('y'));
    assert_eq!(
        effects,
        [
            Effect::ListCheckpoints(id(1)),
            Effect::Restore(id(1), "1aaaaaaa-0000".into())
        ]
    );
}

#[test]
fn caches_list_each_cache_with_its_entries_and_clear_after_asking() {
    let mut app = app();
    assert_eq!(app.update(ch('b')), [Effect::ListCaches]);
    let cache: crate::api::CacheView = serde_json::from_value(serde_json::json!({
        "key": "p-57740cf96b2f24fe",
        "project": "https://github.com/me/app",
        "scope": "project",
        "backend": "sprites",
        "types": ["cargo"],
        "size": 87_000_000u64,
        "last_used": "2026-01-01T11:00:00Z",
        "instance": "clauderon-cache-p-57740cf96b2f24fe",
        "state": "hibernated",
        "entries": [
            {"key": "cargo-1a2b-x86_64-unknown-linux-gnu-9f8e", "type": "cargo",
             "size": 82_700_000u64, "created_at": "2026-01-01T10:00:00Z",
             "last_used": "2026-01-01T10:00:00Z"},
            {"key": "cargo-1a2b-x86_64-unknown-linux-gnu-77aa", "type": "cargo",
             "size": 4_300_000u64, "created_at": "2026-01-01T11:00:00Z",
             "last_used": "2026-01-01T11:00:00Z",
             "base": "cargo-1a2b-x86_64-unknown-linux-gnu-9f8e"}
        ]
    }))
    .unwrap();
    app.update(Msg::Caches(Ok(vec![cache])));
    insta::assert_snapshot!("caches_100x24", screen(&app, 100, 24));
    // The layer (third row): asked first; any other key keeps it.
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Down));
    assert!(app.update(ch('x')).is_empty());
    let Mode::Caches(pane) = &app.mode else {
        panic!("{:?}", app.mode)
    };
    assert!(
        pane.confirm
            .as_ref()
            .is_some_and(|r| r.question().contains("77aa (and any layer")),
        "{pane:?}"
    );
    assert!(app.update(ch('n')).is_empty());
    assert!(
        app.notice
            .clone()
            .unwrap()
            .text
            .ends_with("77aa not cleared")
    );
    // The cache itself: yes clears it and reads the list again.
    app.update(key(KeyCode::Up));
    app.update(key(KeyCode::Up));
    app.update(ch('x'));
    let screen_text = screen(&app, 100, 24);
    assert!(
        screen_text.contains("clear cache p-57740cf96b2f24fe: its 2 entries"),
        "{screen_text}"
    );
    assert_eq!(
        app.update(ch('y')),
        [Effect::ClearCache("p-57740cf96b2f24fe".into())]
    );
    assert_eq!(
        app.update(Msg::CachesChanged(Ok(
            "cache p-57740cf96b2f24fe removed".into()
        ))),
        [Effect::ListCaches]
    );
    assert_eq!(
        app.notice.clone().unwrap().text,
        "cache p-57740cf96b2f24fe removed"
    );
    assert_eq!(app.update(ch('g')), [Effect::CollectCaches]);
    app.update(key(KeyCode::Esc));
    assert!(matches!(app.mode, Mode::List));
}

#[test]
fn create_shows_the_daemons_400_by_its_field_and_follows_progress() {
    let mut app = app();
    app.default_repo = Some("/home/me/project".into());
    assert_eq!(app.update(ch('n')), [Effect::LoadBackends]);
    app.update(Msg::Backends(Ok(vec!["sprites".into()])));
    for c in "say hi".chars() {
        app.update(ch(c));
    }
    let effects = app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('s'),
        KeyModifiers::CONTROL,
    )));
    let [Effect::Create(req)] = effects.as_slice() else {
        panic!("{effects:?}");
    };
    assert_eq!(req.prompt, "say hi");
    app.update(Msg::Created(Err(Failure {
        message: "invalid value `9000` for options.cpu_limit: the CPU count must be more than 0 \
                  and at most 256, e.g. 2 or 0.5"
            .into(),
        field: Some("options.cpu_limit".into()),
    })));
    let Mode::Create(form) = &app.mode else {
        panic!("the form closed");
    };
    assert_eq!(form.focus(), Field::CpuLimit);
    assert!(form.error(Field::CpuLimit).unwrap().contains("9000"));
    insta::assert_snapshot!("form_error_80x24", screen(&app, 80, 24));
    // Accepted: the form closes, the new row is selected, its progress and end show.
    app.update(Msg::Created(Ok(Box::new(view_of(
        5,
        "project",
        serde_json::json!({"status": "creating", "created_at": "2026-01-01T11:59:59Z"}),
    )))));
    assert!(matches!(app.mode, Mode::List));
    assert_eq!(app.selected().unwrap().name.as_str(), "project");
    assert!(app.busy());
    app.update(Msg::Event(event(
        5,
        30,
        "progress",
        serde_json::json!({"stage": "agent", "message": "starting the agent"}),
    )));
    assert!(screen(&app, 80, 24).contains("[agent] starting the agent"));
    app.update(Msg::Event(event(
        5,
        31,
        "status",
        serde_json::json!({"from": "creating", "to": "running"}),
    )));
    assert!(!app.busy());
    let text = app.notice.clone().unwrap().text;
    assert!(
        text.starts_with("project is running (created in "),
        "{text}"
    );
}

#[test]
fn attach_and_detach() {
    let mut app = app();
    app.update(key(KeyCode::Down));
    assert_eq!(app.update(key(KeyCode::Enter)), [Effect::Attach(id(2))]);
    assert!(
        app.notice
            .clone()
            .unwrap()
            .text
            .starts_with("waking and attaching to docs")
    );
    app.update(Msg::Detached(
        id(2),
        Detached::Back("detached from docs; the agent keeps running".into()),
    ));
    assert!(!app.busy() && !app.quit);
    app.update(Msg::Detached(id(2), Detached::Signal("SIGTERM".into())));
    assert!(app.quit);
}

#[test]
fn help_and_quit() {
    let mut app = app();
    app.update(ch('?'));
    insta::assert_snapshot!("help_80x24", screen(&app, 80, 24));
    app.update(key(KeyCode::Esc));
    assert!(matches!(app.mode, Mode::List) && !app.quit);
    app.update(ch('q'));
    assert!(app.quit);
}

#[test]
fn draws_only_when_something_changed() {
    let mut app = app();
    app.dirty = false;
    // The same second and nothing in flight: nothing to draw.
    app.update(Msg::Tick(now()));
    assert!(!app.dirty);
    // A new second redraws only while an age is shown in seconds (new-one is 2s old).
    app.update(Msg::Tick(now() + time::Duration::seconds(1)));
    assert!(app.dirty);
    let mut old = App::new("x", now());
    old.update(Msg::Listed(vec![summary(1, "old", serde_json::json!({}))]));
    old.dirty = false;
    old.update(Msg::Tick(now() + time::Duration::seconds(1)));
    assert!(!old.dirty, "ages in minutes do not change every second");
    old.update(Msg::Tick(now() + time::Duration::seconds(61)));
    assert!(old.dirty, "a new minute changes the ages");
}

#[test]
fn resizes_keep_the_selection_on_screen() {
    let mut app = App::new("x", now());
    let many: Vec<SessionSummary> = (0..200u8)
        .map(|i| summary(i, &format!("s{i}"), serde_json::json!({})))
        .collect();
    app.update(Msg::Listed(many));
    app.update(key(KeyCode::End));
    assert!(screen(&app, 100, 30).contains(" s199 "));
    // Smaller, then larger: the selected row stays visible and nothing panics.
    for (w, h) in [(80, 24), (40, 10), (20, 5), (1, 1), (120, 40)] {
        let text = screen(&app, w, h);
        if h >= 10 && w >= 40 {
            assert!(text.contains("s199"), "{w}x{h}\n{text}");
        }
    }
}
