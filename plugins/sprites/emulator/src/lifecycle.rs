//! Sprite lifecycle: running, warm, cold, and the idle timers between them.
//!
//! A request to a sprite-env endpoint wakes the sprite (`running`). With no exec session or
//! connection for `--idle-to-warm`, it goes `warm`: its processes are stopped with `SIGSTOP`. After
//! `--warm-to-cold` more, it goes `cold`: the PID namespace is killed (every process ends) and
//! the disk stays. Waking from warm sends `SIGCONT`; waking from cold starts a fresh sandbox.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

/// A sprite's reported status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Stopped; processes ended, disk kept.
    Cold,
    /// Paused; processes stopped.
    Warm,
    /// Awake.
    Running,
}

impl State {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Cold => "cold",
            State::Warm => "warm",
            State::Running => "running",
        }
    }

    /// Parses the API spelling.
    pub fn parse(s: &str) -> Option<State> {
        match s {
            "cold" => Some(State::Cold),
            "warm" => Some(State::Warm),
            "running" => Some(State::Running),
            _ => None,
        }
    }
}

/// The status as an atomic, readable without the lifecycle lock.
#[derive(Debug)]
pub struct AtomicState(AtomicU8);

impl AtomicState {
    /// Starts cold.
    pub fn new() -> Self {
        AtomicState(AtomicU8::new(0))
    }
    /// Current value.
    pub fn get(&self) -> State {
        match self.0.load(Ordering::SeqCst) {
            1 => State::Warm,
            2 => State::Running,
            _ => State::Cold,
        }
    }
    /// Sets the value.
    pub fn set(&self, s: State) {
        self.0.store(
            match s {
                State::Cold => 0,
                State::Warm => 1,
                State::Running => 2,
            },
            Ordering::SeqCst,
        );
    }
}

impl Default for AtomicState {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts what keeps a sprite awake (live sessions, open sockets) and when it was last busy.
#[derive(Debug)]
pub struct Activity {
    active: AtomicUsize,
    last: Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            active: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }
}

impl Activity {
    /// Records activity now.
    pub fn touch(&self) {
        if let Ok(mut g) = self.last.lock() {
            *g = Instant::now();
        }
    }
    /// How many holders of activity exist.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
    /// Time of the last activity.
    pub fn last(&self) -> Instant {
        self.last
            .lock()
            .map(|g| *g)
            .unwrap_or_else(|_| Instant::now())
    }
}

/// Keeps its sprite awake while it lives.
#[derive(Debug)]
pub struct ActivityGuard {
    activity: Arc<crate::app::Sprite>,
}

impl ActivityGuard {
    /// Registers one more holder of activity on `sprite`.
    pub fn new(sprite: Arc<crate::app::Sprite>) -> Self {
        sprite.activity.active.fetch_add(1, Ordering::SeqCst);
        sprite.activity.touch();
        ActivityGuard { activity: sprite }
    }
}

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        self.activity.activity.touch();
        self.activity.activity.active.fetch_sub(1, Ordering::SeqCst);
    }
}
