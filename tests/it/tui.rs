//! `clauderon tui` in a real terminal: tmux runs a shell that runs the real binary against the
//! real daemon (and, for sessions, the Sprites plugin, the emulator and the demo agent); the
//! tests type with `send-keys` and read the screen with `capture-pane`. Every wait polls the
//! screen with a deadline.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::artifacts::artifacts;
use crate::support::daemon::TestDaemon;
use crate::support::emulator::Emulator;
use crate::support::git::git_repo;
use crate::support::home::TempHome;

const SHORT: Duration = Duration::from_secs(15);
const LONG: Duration = Duration::from_secs(90);

/// The shell's prompt in the pane, so a test sees when the shell has the terminal again.
const PROMPT: &str = "tui-test$ ";

/// A tmux server of its own (`-L`), with one window running a shell for `home`.
pub(crate) struct Tmux {
    socket: String,
}

impl Tmux {
    /// A `width` x `height` window whose shell starts in `dir`.
    pub(crate) fn start(home: &TempHome, dir: &Path, width: u16, height: u16) -> Tmux {
        static N: AtomicU64 = AtomicU64::new(0);
        let socket = format!(
            "clauderon-tui-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let t = Tmux { socket };
        let out = Command::new("tmux")
            .args([
                "-u",
                "-L",
                &t.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
            ])
            .args([
                "-s",
                "main",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .arg("-c")
            .arg(dir)
            .args(["sh", "-c", "exec bash --norc --noprofile"])
            .env("CLAUDERON_HOME", home.path())
            .env("PS1", PROMPT)
            .env("LANG", "C.UTF-8")
            .env("TERM", "xterm-256color")
            .env_remove("CLAUDERON_PLUGIN_PATH")
            .env_remove("CLAUDERON_BACKEND")
            .env_remove("CLAUDERON_LOG")
            .env_remove("SPRITES_API_KEY")
            .env_remove("TMUX")
            .output()
            .expect("run tmux (apt-get install tmux)");
        assert!(out.status.success(), "tmux new-session: {out:?}");
        t.wait_for(PROMPT.trim_end(), SHORT);
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-u", "-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux");
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Presses keys by tmux's names (`Enter`, `Tab`, `C-s`, `C-]`, `q`).
    pub(crate) fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "main"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Types `text` as it is.
    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "main", "-l", text]);
    }

    /// The screen as text.
    pub(crate) fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "main"])
    }

    /// Waits until the screen shows `needle`; the screen then.
    pub(crate) fn wait_for(&self, needle: &str, limit: Duration) -> String {
        self.wait_until(needle, limit, |s| s.contains(needle))
    }

    /// Waits until `ok(screen)`; panics with the last screen after `limit`.
    pub(crate) fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited {limit:?} for {what:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `clauderon tui` in the shell and waits for its table.
    pub(crate) fn start_tui(&self) -> String {
        let bin = artifacts().clauderon();
        self.type_text(&format!("'{}' tui", bin.display()));
        self.keys(&["Enter"]);
        self.wait_for("● live", SHORT)
    }

    /// After the TUI ended: the shell prompt is back and the terminal is in cooked mode with
    /// echo (`stty -a` shows `icanon` and `echo`, not `-icanon`, `-echo`).
    pub(crate) fn assert_restored(&self) {
        self.wait_until("the shell prompt", SHORT, |s| {
            s.trim_end().ends_with(PROMPT.trim_end())
        });
        self.keys(&["clear", "Enter"]);
        self.type_text("stty -a; echo stty-done");
        self.keys(&["Enter"]);
        let screen = self.wait_until("stty's output", SHORT, |s| {
            s.lines().any(|l| l.trim() == "stty-done")
        });
        let words: Vec<&str> = screen.split_whitespace().collect();
        for mode in ["icanon", "echo", "isig"] {
            assert!(
                words.contains(&mode),
                "{mode} is not on after the TUI:\n{screen}"
            );
        }
        // The alternate screen is gone: the TUI's header is not on the shell's screen.
        assert!(!screen.contains("● live"), "{screen}");
    }

    /// The pid of the program the shell runs in the foreground (the TUI).
    fn foreground_pid(&self) -> u32 {
        let shell: u32 = self
            .tmux(&["display-message", "-p", "-t", "main", "#{pane_pid}"])
            .trim()
            .parse()
            .unwrap();
        let mut children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .unwrap_or_default();
        if children.trim().is_empty() {
            let out = Command::new("pgrep")
                .args(["-P", &shell.to_string()])
                .output()
                .unwrap();
            children = String::from_utf8_lossy(&out.stdout).into_owned();
        }
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no child of the shell {shell}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// The line of the screen that holds `name`'s row.
fn row<'a>(screen: &'a str, name: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no row {name}:\n{screen}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_hibernated_indicator_create_form_attach_wake_and_restore() {
    let emu = Emulator::start();
    let home = crate::sprites_cli::sprites_home(&emu);
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let repo_s = repo.path().to_str().unwrap();
    // A hibernated session, made with the CLI.
    let run = home.run(&[
        "create", "--repo", repo_s, "--prompt", "sleep", "--name", "sleepy",
    ]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let run = home.run(&["hibernate", "sleepy"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);

    let tmux = Tmux::start(&home, repo.path(), 100, 30);
    let screen = tmux.start_tui();
    let screen = if screen.contains("☾ Hibernated") {
        screen
    } else {
        tmux.wait_for("☾ Hibernated", SHORT)
    };
    let line = row(&screen, "sleepy");
    assert!(
        line.contains("☾ Hibernated asleep "),
        "the Hibernated indicator and the time since it slept: {line}"
    );

    // The create form: the repository is this directory; the daemon's 400 about the
    // repository shows by it; the flags' rules catch a bad CPU limit before sending.
    tmux.keys(&["n"]);
    tmux.wait_for("New session", SHORT);
    tmux.wait_for(repo_s, SHORT);
    tmux.type_text("say hello");
    let not_git = tempfile::tempdir().unwrap();
    tmux.keys(&["BTab", "C-u"]);
    tmux.type_text(not_git.path().to_str().unwrap());
    tmux.keys(&["C-s"]);
    let screen = tmux.wait_for("not a git repository", SHORT);
    let lines: Vec<&str> = screen.lines().collect();
    let at = lines.iter().position(|l| l.contains("Repository")).unwrap();
    assert!(
        lines[at + 1].contains("is not a git repository"),
        "the daemon's message is under the repository:\n{screen}"
    );
    tmux.keys(&["C-u"]);
    tmux.type_text(repo_s);
    // Prompt, Backend, Name.
    tmux.keys(&["Tab", "Tab", "Tab"]);
    tmux.type_text("from-tui");
    // Model, Plan mode, Print mode, Local sync, Advanced options (Enter opens them), CPU limit.
    tmux.keys(&["Tab", "Tab", "Tab", "Tab", "Tab", "Enter", "Tab"]);
    tmux.type_text("two");
    tmux.keys(&["C-s"]);
    tmux.wait_for("invalid value `two` for options.cpu_limit", SHORT);
    tmux.keys(&["C-u"]);
    tmux.type_text("2");
    tmux.keys(&["Tab"]);
    tmux.type_text("2G");
    // Hibernate after: 30m; build caching on, cargo and npm, per session.
    tmux.keys(&["Tab", "Right", "Right", "Right", "Tab", "Space", "Tab"]);
    tmux.keys(&["Space", "Right", "Space", "Tab", "Tab", "Right"]);
    let screen = tmux.wait_for("this session only", SHORT);
    assert!(screen.contains("[x] cargo [x] npm"), "{screen}");
    assert!(screen.contains("30m"), "{screen}");
    tmux.keys(&["C-s"]);
    // The form closes; the new row shows, then the create's end (with its time).
    let screen = tmux.wait_for("from-tui is running (created in", LONG);
    assert!(row(&screen, "from-tui").contains("● Running"), "{screen}");
    let (_, s) = d.get("/api/sessions/from-tui").await;
    assert_eq!(s["options"]["cpu_limit"], 2, "{s}");
    assert_eq!(s["options"]["memory_limit"], "2G", "{s}");
    assert_eq!(s["options"]["hibernation_timeout"], "30m", "{s}");
    assert_eq!(
        s["options"]["build_cache"],
        serde_json::json!(["cargo", "npm"])
    );
    assert_eq!(s["options"]["cache_scope"], "session", "{s}");
    // The detail pane shows its events, rendered as the CLI renders them.
    tmux.wait_for("status creating -> running", SHORT);

    // Attach hands the terminal to the agent; Ctrl-] comes back to the TUI.
    tmux.keys(&["a"]);
    tmux.wait_for("demo-agent: ready", LONG);
    tmux.type_text("hello tui");
    tmux.keys(&["Enter"]);
    tmux.wait_for("demo-agent: you said: hello tui", SHORT);
    tmux.keys(&["C-]"]);
    let screen = tmux.wait_for("detached from from-tui; the agent keeps running", SHORT);
    assert!(screen.contains("● live"), "the table is back:\n{screen}");
    assert!(
        !screen.contains("you said"),
        "the agent's screen is gone:\n{screen}"
    );
    // The keys are the TUI's again: `?` opens the help.
    tmux.keys(&["?"]);
    tmux.wait_for("any key closes this", SHORT);
    tmux.keys(&["Escape"]);
    tmux.wait_until("the help closed", SHORT, |s| {
        !s.contains("any key closes this")
    });

    // Wake the hibernated session: it says how long it took.
    tmux.keys(&["g"]);
    tmux.keys(&["w"]);
    let screen = tmux.wait_for("sleepy is running (woke in", LONG);
    assert!(row(&screen, "sleepy").contains("● Running"), "{screen}");

    // Checkpoints of the selected session: make one with a comment, restore it after a yes.
    tmux.keys(&["c"]);
    tmux.wait_for("checkpoints of sleepy", SHORT);
    tmux.keys(&["n"]);
    tmux.wait_for("comment:", SHORT);
    tmux.type_text("before the tui test");
    tmux.keys(&["Enter"]);
    // Listed, and the checkpoint's end noticed (restore waits for it).
    let screen = tmux.wait_until("the new checkpoint listed", LONG, |s| {
        s.lines()
            .any(|l| l.contains("before the tui test") && !l.contains("comment:"))
            && s.lines()
                .any(|l| l.trim_start().starts_with("checkpoint ") && l.contains(" of sleepy"))
    });
    assert!(screen.contains("r/Enter restore"), "{screen}");
    tmux.keys(&["r"]);
    tmux.wait_for("Restore sleepy to checkpoint", SHORT);
    tmux.keys(&["y"]);
    tmux.wait_for("the state before was saved as checkpoint", LONG);
    tmux.keys(&["Escape"]);
    tmux.wait_until("the checkpoints closed", SHORT, |s| {
        !s.contains("checkpoints of sleepy")
    });

    // Delete asks, with the CLI's warning: the demo agent committed on the session branch.
    tmux.keys(&["G"]);
    tmux.keys(&["d"]);
    let screen = tmux.wait_for("Delete session from-tui", SHORT);
    assert!(screen.contains("destroyed"), "{screen}");
    let screen = tmux.wait_until("the unpushed check", LONG, |s| {
        !s.contains("checking the sandbox for unpushed commits")
    });
    assert!(
        screen.contains("unpushed commit"),
        "the CLI's warning:\n{screen}"
    );
    tmux.keys(&["y"]);
    let screen = tmux.wait_for("deleted from-tui", LONG);
    assert!(
        !screen.lines().any(|l| l.starts_with("from-tui ")),
        "the row is gone:\n{screen}"
    );
    assert_eq!(d.get("/api/sessions/from-tui").await.0, 404);

    // A smaller window: the TUI redraws to fit.
    tmux.tmux(&["resize-window", "-t", "main", "-x", "80", "-y", "24"]);
    // The header is padded to the width, its last word in the last columns.
    tmux.wait_until("a redraw at 80 columns", SHORT, |s| {
        s.lines().any(|l| {
            let l = l.trim_end();
            l.ends_with("● live") && l.chars().count() == 79
        })
    });

    tmux.keys(&["q"]);
    tmux.assert_restored();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_in_80x24_help_form_panic_and_sigterm_restore_the_terminal() {
    let home = TempHome::new();
    let _d = TestDaemon::start(&home);
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(&home, dir.path(), 80, 24);
    let screen = tmux.start_tui();
    assert!(
        screen.contains("no sessions yet; n creates one"),
        "{screen}"
    );
    assert!(
        screen.contains("n new  a attach  w wake  h hibernate  c checkpoints  d delete  ? help"),
        "every key hint fits in 80 columns:\n{screen}"
    );
    // The help fits.
    tmux.keys(&["?"]);
    let screen = tmux.wait_for("any key closes this", SHORT);
    assert!(screen.contains("Ctrl-] detaches"), "{screen}");
    tmux.keys(&["x"]);
    // The form with its advanced options open fits, the Create button included.
    tmux.keys(&["n"]);
    tmux.wait_for("New session", SHORT);
    for _ in 0..8 {
        tmux.keys(&["Tab"]);
    }
    tmux.keys(&["Enter", "Tab", "Tab", "Tab", "Tab", "Space"]);
    let screen = tmux.wait_for("Cache sharing", SHORT);
    assert!(screen.contains("[ Create session ]"), "{screen}");
    assert!(screen.contains("Hibernate after"), "{screen}");
    // Escape alone (Escape and a key at once read as Alt and the key).
    tmux.keys(&["Escape"]);
    tmux.wait_until("the form closed", SHORT, |s| !s.contains("New session"));
    tmux.keys(&["q"]);
    tmux.assert_restored();

    // A panic: the hook gives the terminal back before the message is printed.
    tmux.keys(&["clear", "Enter"]);
    tmux.type_text(&format!(
        "CLAUDERON_TUI_TEST_PANIC=1 RUST_BACKTRACE=0 '{}' tui; echo exit=$?",
        artifacts().clauderon().display()
    ));
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("exit=101", SHORT);
    assert!(
        screen.contains("CLAUDERON_TUI_TEST_PANIC is set"),
        "{screen}"
    );
    tmux.assert_restored();

    // SIGTERM: the terminal is given back too.
    tmux.keys(&["clear", "Enter"]);
    tmux.start_tui();
    let pid = tmux.foreground_pid();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    tmux.assert_restored();

    // The terminal goes away (an SSH connection drops, the window is closed): the TUI ends,
    // rather than living on against a hung-up terminal.
    tmux.keys(&["clear", "Enter"]);
    tmux.start_tui();
    let pid = tmux.foreground_pid();
    tmux.tmux(&["kill-server"]);
    let deadline = Instant::now() + SHORT;
    while is_alive(pid) {
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the TUI (pid {pid}) still runs {SHORT:?} after its terminal went away");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `pid` runs (a zombie has ended).
fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}
