//! `clauderon tui`: the sessions in a terminal UI, a client of the daemon's API like the rest of
//! the CLI and the web UI (DESIGN §14). One module per concept: [`app`] (the state and the one
//! function that changes it), [`view`] (drawing it), [`keys`] (the table's keys and the help),
//! [`form`] (the create form), [`feed`] (the live events stream), [`effects`] (the requests),
//! [`term`] (the terminal and the key reader). This module runs the loop: draw when something
//! changed, wait for a message, update, start the requests.

pub mod app;
pub mod effects;
pub mod feed;
pub mod form;
pub mod keys;
pub mod term;
#[cfg(test)]
mod tests;
pub mod view;

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use self::app::{App, Detached, Effect, Msg};
use self::effects::Runner;
use self::term::{Input, Screen};
use super::api::{ApiClient, Autostart, encode};
use super::attach::{self, End, Socket};
use super::{Context, UsageError};
use crate::api::SessionView;
use crate::session::SessionId;

/// `clauderon tui`
#[derive(Debug, Args)]
pub struct TuiArgs {}

/// An attachment's socket, or why there is none.
type Attachment = (SessionId, String, Result<Socket, String>);

impl TuiArgs {
    /// Runs the TUI until `q`, a signal or an error; the terminal is given back in every case.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
            return Err(UsageError::err(
                "clauderon tui needs a terminal on stdin and stdout; use `clauderon list` \
                 and the other commands in scripts",
            ));
        }
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        let mut app = App::new(&api.addr().to_string(), time::OffsetDateTime::now_utc());
        app.default_repo = super::create::check_repo(Path::new("."))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        let (tx, rx) = mpsc::unbounded_channel();
        let runner = Runner::new(api.clone(), tx.clone());
        let feed = tokio::spawn(feed::run(api, tx.clone()));
        let result = {
            let mut screen = Screen::enter()?;
            let input = Input::spawn(tx)?;
            let r = event_loop(&mut app, &mut screen, &input, &runner, rx).await;
            drop(input);
            drop(screen);
            r
        };
        feed.abort();
        if term::panicked() {
            anyhow::bail!("the TUI stopped after an internal error (the message is above)");
        }
        result?;
        if let Some(n) = app.notice.as_ref().filter(|n| n.error) {
            eprintln!("{}", n.text);
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// How many queued messages are taken before drawing again (a burst of events is one draw).
const BATCH: usize = 512;

async fn event_loop(
    app: &mut App,
    screen: &mut Screen,
    input: &Input,
    runner: &Runner,
    mut rx: UnboundedReceiver<Msg>,
) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (attach_tx, mut attach_rx) = mpsc::unbounded_channel::<Attachment>();
    loop {
        if app.dirty {
            screen.draw(|f| view::draw(f, app))?;
            app.dirty = false;
            // A test's way to panic with the TUI up (debug builds only): the panic hook must
            // give the terminal back.
            if cfg!(debug_assertions) && std::env::var_os("CLAUDERON_TUI_TEST_PANIC").is_some() {
                panic!("CLAUDERON_TUI_TEST_PANIC is set");
            }
        }
        if app.quit || term::panicked() {
            return Ok(());
        }
        let first = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => return Ok(()),
            },
            // Each second: the clock, and whether the terminal is still there (the reader
            // may be stuck in a read of a terminal that hung up).
            _ = tick.tick() => if term::terminal_gone() {
                Msg::Quit
            } else {
                Msg::Tick(time::OffsetDateTime::now_utc())
            },
            _ = sigterm.recv() => Msg::Quit,
            _ = sighup.recv() => Msg::Quit,
            _ = sigint.recv() => Msg::Quit,
            a = attach_rx.recv() => {
                if let Some((id, name, socket)) = a {
                    let how = match socket {
                        Ok(ws) => attached(screen, input, &name, ws).await?,
                        Err(e) => Detached::Failed(e),
                    };
                    start(app.update(Msg::Detached(id, how)), runner, &attach_tx);
                }
                continue;
            }
        };
        let mut effects = app.update(first);
        for _ in 0..BATCH {
            match rx.try_recv() {
                Ok(m) => effects.extend(app.update(m)),
                Err(_) => break,
            }
        }
        start(effects, runner, &attach_tx);
    }
}

/// Starts each effect; an attach first opens its socket on a task (waking a hibernated session
/// can take a while, and the table keeps showing its progress meanwhile).
fn start(effects: Vec<Effect>, runner: &Runner, attach_tx: &UnboundedSender<Attachment>) {
    for e in effects {
        match e {
            Effect::Attach(id) => {
                let api = runner.api().clone();
                let tx = attach_tx.clone();
                tokio::spawn(async move {
                    let opened = async {
                        let session: SessionView = api
                            .get(&format!("/api/sessions/{}", encode(&id.to_string())))
                            .await?;
                        let ws = attach::connect(&api, &session).await?;
                        Ok::<_, anyhow::Error>((session.name.to_string(), ws))
                    };
                    let _ = tx.send(match opened.await {
                        Ok((name, ws)) => (id, name, Ok(ws)),
                        Err(e) => (id, String::new(), Err(format!("{e:#}"))),
                    });
                });
            }
            other => runner.run(other),
        }
    }
}

/// Hands the terminal to the agent until the detach key, then takes it back.
async fn attached(
    screen: &mut Screen,
    input: &Input,
    name: &str,
    ws: Socket,
) -> anyhow::Result<Detached> {
    input.pause();
    screen.suspend()?;
    let mut out = std::io::stdout();
    let _ = write!(
        out,
        "attached to {name} (detach with Ctrl-], the agent keeps running)\r\n"
    );
    let _ = out.flush();
    let end = attach::pump(ws).await;
    screen.resume()?;
    input.resume();
    Ok(match end {
        End::Detached => Detached::Back(format!("detached from {name}; the agent keeps running")),
        End::Exited(code) => Detached::Back(format!("the agent in {name} exited with code {code}")),
        End::Closed => Detached::Back(format!(
            "the daemon closed the connection to {name}; the detail pane shows why"
        )),
        End::Error(m) => Detached::Failed(format!("attach to {name}: {m}")),
        End::Signal(s) => Detached::Signal(format!("{s} received while attached to {name}")),
    })
}
