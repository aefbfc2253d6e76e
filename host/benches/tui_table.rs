//! `cargo bench -p clauderon --bench tui_table`: one redraw of `clauderon tui` with 1,000
//! sessions (the table with its badges, ages and the hibernated and failed rows, the detail
//! pane, header and footer: `view::draw` into ratatui's `TestBackend`, buffer diff included),
//! each round with the selection moved a screenful so every visible row changes. Target:
//! under 16 ms (one frame at 60 Hz).
//!
//! Baseline, in the same run and the same backend: the same visible rows written as plain
//! text (`format!` of the same columns and `Buffer::set_string`, no layout, widgets or styles).
//! The ratio is what the TUI's widgets cost over writing text.

use std::time::{Duration, Instant};

use clauderon::api::SessionSummary;
use clauderon::cli::tui::app::{App, Msg};
use clauderon::cli::tui::view;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Style;

const SESSIONS: usize = 1_000;
const ROUNDS: usize = 200;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn sessions(now: time::OffsetDateTime) -> Vec<SessionSummary> {
    let fmt = &time::format_description::well_known::Rfc3339;
    (0..SESSIONS)
        .map(|i| {
            let created = (now - time::Duration::minutes(i as i64 * 7))
                .format(fmt)
                .unwrap_or_default();
            let (status, reason, agent) = match i % 5 {
                0 => ("hibernated", None, serde_json::Value::Null),
                1 => (
                    "failed",
                    Some("backend `sprites` failed during `create`: no capacity"),
                    serde_json::json!({"state": "exited", "code": 1}),
                ),
                2 => ("running", None, serde_json::json!({"state": "working"})),
                3 => ("running", None, serde_json::json!({"state": "waiting"})),
                _ => ("running", None, serde_json::json!({"state": "idle"})),
            };
            serde_json::from_value(serde_json::json!({
                "id": format!("{i:08x}-89ab-4def-8123-456789abcdef"),
                "name": format!("session-{i}"),
                "backend": if i % 2 == 0 { "sprites" } else { "local" },
                "repository": format!("/home/me/src/project-{}", i % 17),
                "branch": format!("clauderon/session-{i}"),
                "status": status,
                "status_reason": reason,
                "agent": agent,
                "created_at": created,
                "updated_at": created,
            }))
            .expect("a session summary")
        })
        .collect()
}

/// The plain-text row of the baseline: the same columns, unstyled.
fn plain(s: &SessionSummary) -> String {
    format!(
        "{:<14} {:<24} {:<10} {:<8} {:<4} {}",
        s.name.as_str(),
        s.status.as_str(),
        s.agent.map_or_else(|| "-".to_owned(), |a| a.to_string()),
        s.backend,
        "5m",
        s.repository
    )
}

fn bench(width: u16, height: u16) {
    let now = time::OffsetDateTime::now_utc();
    let mut app = App::new("127.0.0.1:3030", now);
    app.update(Msg::Listed(sessions(now)));
    let page = KeyEvent::new(KeyCode::PageDown, KeyModifiers::NONE);
    let top = KeyEvent::new(KeyCode::Home, KeyModifiers::NONE);
    let mut term = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    let visible = usize::from(height);

    let mut tui = Vec::with_capacity(ROUNDS);
    let mut text = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        // Move a screenful (wrapping at the end) so every row on screen is new.
        let key = if round % 90 == 89 { top } else { page };
        for _ in 0..(visible / 10).max(1) {
            app.update(Msg::Key(key));
        }
        let t = Instant::now();
        term.draw(|f| view::draw(f, &app)).expect("draw");
        tui.push(t.elapsed());

        let first = app.selected_index();
        let t = Instant::now();
        term.draw(|f| {
            let buf = f.buffer_mut();
            for (y, s) in app.sessions().iter().skip(first).take(visible).enumerate() {
                let y = u16::try_from(y).unwrap_or(u16::MAX);
                buf.set_string(0, y, plain(s), Style::default());
            }
        })
        .expect("draw");
        text.push(t.elapsed());
    }
    let (tui, text) = (median(tui), median(text));
    println!(
        "tui_table {width}x{height}: redraw of a {SESSIONS}-session table (median of {ROUNDS}) \
         {:.3} ms (target < 16 ms); baseline plain-text rows in the same backend {:.3} ms; \
         ratio {:.1}x",
        tui.as_secs_f64() * 1e3,
        text.as_secs_f64() * 1e3,
        tui.as_secs_f64() / text.as_secs_f64().max(1e-9)
    );
    assert!(
        tui < Duration::from_millis(16),
        "the redraw took {tui:?}, over the 16 ms target"
    );
}

fn main() {
    for (w, h) in [(80, 24), (200, 60)] {
        bench(w, h);
    }
}
