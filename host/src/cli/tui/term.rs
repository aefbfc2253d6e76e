//! The terminal while the TUI runs: raw mode and the alternate screen, given back on every way
//! out (a return, an error, a panic, SIGTERM), set aside while attached to an agent; and the
//! key reader, a thread that can be paused so an attachment reads the keys itself.

use std::io::{Stdout, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::Duration;

use crossterm::event::{self, Event, KeyEventKind};
use crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc::UnboundedSender;

use super::app::Msg;

/// Set by the panic hook: the TUI stops at its next turn.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Whether a thread panicked while the TUI ran.
pub fn panicked() -> bool {
    PANICKED.load(Ordering::SeqCst)
}

/// Whether the TUI has the alternate screen up. Leaving it twice is not harmless: the second
/// `LeaveAlternateScreen` restores the cursor saved on entry, so whatever was printed since (a
/// panic's message) would be overwritten by the shell's prompt.
static ON_ALTERNATE_SCREEN: AtomicBool = AtomicBool::new(false);

/// Gives the terminal back: raw mode off, the main screen, the cursor shown. Safe to call more
/// than once: the alternate screen is left only by the first call.
pub fn restore() {
    let _ = terminal::disable_raw_mode();
    let mut out = std::io::stdout();
    let _ = execute!(out, terminal::EndSynchronizedUpdate);
    if ON_ALTERNATE_SCREEN.swap(false, Ordering::SeqCst) {
        let _ = execute!(out, terminal::LeaveAlternateScreen);
    }
    let _ = execute!(out, cursor::Show);
    let _ = out.flush();
}

/// Restores the terminal before a panic's message is printed, so the message is readable and
/// the shell is usable; the TUI then stops.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            restore();
            previous(info);
        }));
    });
}

/// The alternate screen with the cursor hidden, remembered for [`restore`].
fn show_alternate_screen() -> anyhow::Result<()> {
    execute!(
        std::io::stdout(),
        terminal::EnterAlternateScreen,
        cursor::Hide
    )?;
    ON_ALTERNATE_SCREEN.store(true, Ordering::SeqCst);
    Ok(())
}

/// The terminal in TUI mode for as long as it lives.
pub struct Screen {
    /// The ratatui terminal over stdout.
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    /// Raw mode, the alternate screen, the cursor hidden.
    pub fn enter() -> anyhow::Result<Screen> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        let screen = Screen {
            terminal: Terminal::new(CrosstermBackend::new(std::io::stdout()))?,
        };
        show_alternate_screen()?;
        Ok(screen)
    }

    /// Sets the TUI aside for an attachment: the main screen and the cursor back, raw mode
    /// kept (the attachment wants it too).
    pub fn suspend(&mut self) -> anyhow::Result<()> {
        ON_ALTERNATE_SCREEN.store(false, Ordering::SeqCst);
        execute!(
            std::io::stdout(),
            terminal::LeaveAlternateScreen,
            cursor::Show
        )?;
        Ok(())
    }

    /// Back from an attachment: raw mode (the attachment turned it off), the alternate screen,
    /// and a full redraw.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        terminal::enable_raw_mode()?;
        show_alternate_screen()?;
        self.terminal.clear()?;
        Ok(())
    }

    /// Draws with `f`, as one synchronized update where the terminal supports it (no tearing).
    pub fn draw(&mut self, f: impl FnOnce(&mut ratatui::Frame<'_>)) -> anyhow::Result<()> {
        let mut out = std::io::stdout();
        let _ = execute!(out, terminal::BeginSynchronizedUpdate);
        let drawn = self.terminal.draw(f).map(|_| ());
        let _ = execute!(out, terminal::EndSynchronizedUpdate);
        Ok(drawn?)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

#[derive(Debug, Default)]
struct Control {
    pause: bool,
    paused: bool,
    stop: bool,
}

/// Reads keys and resizes on a thread and sends them as [`Msg`]s. It waits for input in short
/// slices, so a pause takes effect within one (an attachment then owns the keys).
pub struct Input {
    control: Arc<(Mutex<Control>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Input {
    /// Starts the reader.
    pub fn spawn(tx: UnboundedSender<Msg>) -> anyhow::Result<Input> {
        let control = Arc::new((Mutex::new(Control::default()), Condvar::new()));
        let shared = Arc::clone(&control);
        let thread = std::thread::Builder::new()
            .name("tui-input".into())
            .spawn(move || read_loop(&shared, &tx))?;
        Ok(Input {
            control,
            thread: Some(thread),
        })
    }

    /// Stops reading until [`Input::resume`]; returns once the reader is idle (at most 1 s).
    pub fn pause(&self) {
        let (lock, cv) = &*self.control;
        let Ok(mut c) = lock.lock() else { return };
        c.pause = true;
        cv.notify_all();
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while !c.paused && !c.stop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match cv.wait_timeout(c, left) {
                Ok((guard, _)) => c = guard,
                Err(_) => return,
            }
        }
    }

    /// Reads again.
    pub fn resume(&self) {
        let (lock, cv) = &*self.control;
        if let Ok(mut c) = lock.lock() {
            c.pause = false;
            cv.notify_all();
        }
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        let (lock, cv) = &*self.control;
        if let Ok(mut c) = lock.lock() {
            c.stop = true;
            cv.notify_all();
        }
        // The reader sees `stop` within one poll (50 ms). On a hung-up terminal crossterm's
        // read can spin without returning, so it is waited for briefly and otherwise left to
        // end with the process: never a TUI that cannot exit.
        if let Some(t) = self.thread.take() {
            let deadline = std::time::Instant::now() + Duration::from_millis(500);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Whether the terminal went away (a dropped SSH connection, a closed window): a hung-up
/// terminal answers every ioctl with EIO, so it is no longer a terminal.
pub fn terminal_gone() -> bool {
    use std::io::IsTerminal;
    !std::io::stdout().is_terminal()
}

fn read_loop(control: &(Mutex<Control>, Condvar), tx: &UnboundedSender<Msg>) {
    let (lock, cv) = control;
    loop {
        {
            let Ok(mut c) = lock.lock() else { return };
            while c.pause && !c.stop {
                c.paused = true;
                cv.notify_all();
                c = match cv.wait(c) {
                    Ok(g) => g,
                    Err(_) => return,
                };
            }
            c.paused = false;
            if c.stop {
                return;
            }
        }
        // Never poll a hung-up terminal: crossterm would read its end-of-file forever.
        if terminal_gone() {
            let _ = tx.send(Msg::Quit);
            return;
        }
        match event::poll(Duration::from_millis(50)) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(_) => return,
        }
        let msg = match event::read() {
            Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => Msg::Key(k),
            Ok(Event::Resize(..)) => Msg::Resized,
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}
