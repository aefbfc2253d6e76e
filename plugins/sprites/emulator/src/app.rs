//! Shared server state: the sprites, their sandboxes and lifecycle transitions.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cli::{Config, SandboxArg};
use crate::error::ApiError;
use crate::faults::{FaultKind, Faults};
use crate::lifecycle::{Activity, AtomicState, State};
use crate::sandbox::{Holder, NsFds};
use crate::session::Session;
use crate::store::{self, SpritePaths, SpriteRecord};
use crate::time_fmt;

/// One sprite: metadata, disk paths, sandbox and sessions.
#[derive(Debug)]
pub struct Sprite {
    /// Name.
    pub name: String,
    /// Storage paths.
    pub paths: SpritePaths,
    /// Persisted metadata.
    pub record: Mutex<SpriteRecord>,
    /// Lifecycle lock: the sandbox holder and when it went warm.
    pub life: tokio::sync::Mutex<Life>,
    /// Current status.
    pub state: AtomicState,
    /// What keeps it awake.
    pub activity: Activity,
    /// Exec sessions by id.
    pub sessions: Mutex<BTreeMap<u64, Arc<Session>>>,
    /// Ids of recently ended sessions (kill answers 410 Gone for them).
    pub ended: Mutex<std::collections::VecDeque<u64>>,
    /// Next session id.
    pub next_session: AtomicU64,
    /// Set once deleted (late tasks then do nothing).
    pub deleted: AtomicBool,
    /// Its network policy as the egress proxy applies it.
    pub egress: Arc<crate::egress::SpriteEgress>,
}

/// State behind the lifecycle lock.
#[derive(Debug, Default)]
pub struct Life {
    /// The sandbox of an awake (running or warm) sprite; `None` without namespaces.
    pub holder: Option<Holder>,
    /// When it went warm.
    pub warm_since: Option<Instant>,
    /// The egress proxy inside the sandbox (with the holder).
    pub egress: Option<crate::egress::Running>,
}

impl Sprite {
    /// A sprite object for `record` (cold).
    pub fn new(data: &std::path::Path, record: SpriteRecord) -> Self {
        let egress = Arc::new(crate::egress::SpriteEgress::new(&record.network_policy));
        Sprite {
            egress,
            name: record.name.clone(),
            paths: SpritePaths::new(data, &record.name),
            record: Mutex::new(record),
            life: tokio::sync::Mutex::new(Life::default()),
            state: AtomicState::new(),
            activity: Activity::default(),
            sessions: Mutex::new(BTreeMap::new()),
            ended: Mutex::new(std::collections::VecDeque::new()),
            next_session: AtomicU64::new(1),
            deleted: AtomicBool::new(false),
        }
    }

    /// A copy of the metadata.
    pub fn record(&self) -> SpriteRecord {
        match self.record.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Changes and persists the metadata.
    pub fn update<R>(&self, f: impl FnOnce(&mut SpriteRecord) -> R) -> Result<R, ApiError> {
        let mut g = self
            .record
            .lock()
            .map_err(|_| ApiError::internal("sprite metadata lock poisoned"))?;
        let r = f(&mut g);
        if !self.deleted.load(Ordering::SeqCst) {
            store::save(&self.paths, &g)
                .map_err(|e| ApiError::internal(format!("cannot save sprite metadata: {e}")))?;
        }
        Ok(r)
    }

    /// Live sessions.
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        self.sessions
            .lock()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }

    /// A live session.
    pub fn session(&self, id: u64) -> Option<Arc<Session>> {
        self.sessions.lock().ok().and_then(|g| g.get(&id).cloned())
    }

    /// Whether `id` is a session that has ended.
    pub fn has_ended(&self, id: u64) -> bool {
        self.ended.lock().map(|g| g.contains(&id)).unwrap_or(false)
    }

    /// Kills every session's process group.
    pub fn kill_sessions(&self) {
        for s in self.sessions() {
            s.signal(Signal::SIGKILL);
        }
    }
}

/// The whole server state.
#[derive(Debug)]
pub struct App {
    /// Configuration.
    pub cfg: Config,
    /// Whether sprites run in namespaces.
    pub sandboxed: bool,
    /// Why not, when not.
    pub sandbox_note: String,
    /// Sprites by name.
    pub sprites: RwLock<BTreeMap<String, Arc<Sprite>>>,
    /// Injected faults.
    pub faults: Faults,
    /// Connection ids.
    pub next_conn: AtomicU64,
    /// How sprites' CPU and memory limits are enforced here.
    pub limits: crate::limits::Enforcer,
    /// The CA and TLS configurations of sprite URLs.
    pub url_tls: crate::sprite_url::UrlTls,
    /// The bundle every sprite trusts as its system bundle (the host's plus the URL CA).
    pub ca_bundle: Option<std::path::PathBuf>,
    /// Where sprites' egress proxies hand connections to sprite URLs
    /// ([`crate::sprite_url::run`] serves them).
    pub url_conns: tokio::sync::mpsc::UnboundedSender<crate::sprite_url::UrlConn>,
    /// The receiving end, until [`crate::sprite_url::run`] takes it.
    pub url_conns_rx:
        std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<crate::sprite_url::UrlConn>>>,
}

impl App {
    /// Loads persisted sprites and decides the sandbox mode.
    pub fn new(cfg: Config) -> anyhow::Result<App> {
        let (sandboxed, note) = match cfg.sandbox {
            SandboxArg::None => (false, "disabled by --sandbox none".to_owned()),
            SandboxArg::Namespaces | SandboxArg::Auto => match crate::sandbox::probe(&cfg.helper) {
                Ok(()) => (true, String::new()),
                Err(e) if cfg.sandbox == SandboxArg::Namespaces => {
                    anyhow::bail!(
                        "--sandbox namespaces: this system cannot create the namespaces ({e}); \
                             run as root or enable unprivileged user namespaces, or pass --sandbox none"
                    )
                }
                Err(e) => (false, e),
            },
        };
        let mut map = BTreeMap::new();
        for record in store::load_all(&cfg.data)? {
            let s = Sprite::new(&cfg.data, record);
            map.insert(s.name.clone(), Arc::new(s));
        }
        let faults = Faults::new(cfg.faults.clone());
        let url_tls =
            crate::sprite_url::UrlTls::new().map_err(|e| anyhow::anyhow!("sprite URLs: {e}"))?;
        let cfg_data = cfg.data.clone();
        let (url_conns, url_conns_rx) = tokio::sync::mpsc::unbounded_channel();
        Ok(App {
            cfg,
            sandboxed,
            sandbox_note: note,
            sprites: RwLock::new(map),
            faults,
            next_conn: AtomicU64::new(1),
            limits: crate::limits::Enforcer::detect(),
            ca_bundle: url_tls.write_bundle(&cfg_data.join("sprite-url")),
            url_tls,
            url_conns,
            url_conns_rx: std::sync::Mutex::new(Some(url_conns_rx)),
        })
    }

    /// A sprite by name.
    pub fn sprite(&self, name: &str) -> Option<Arc<Sprite>> {
        self.sprites.read().ok().and_then(|g| g.get(name).cloned())
    }

    /// All sprites, by name.
    pub fn all(&self) -> Vec<Arc<Sprite>> {
        self.sprites
            .read()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }

    /// A sprite for a sprite-env call: 404 when missing, woken otherwise.
    pub async fn sprite_env(&self, name: &str) -> Result<Arc<Sprite>, ApiError> {
        let sprite = self.sprite(name).ok_or_else(ApiError::sprite_not_found)?;
        self.wake(&sprite).await?;
        Ok(sprite)
    }

    /// Makes `sprite` running (with the configured and injected wake delays).
    pub async fn wake(&self, sprite: &Arc<Sprite>) -> Result<(), ApiError> {
        let mut life = sprite.life.lock().await;
        self.wake_locked(sprite, &mut life).await
    }

    async fn wake_locked(&self, sprite: &Arc<Sprite>, life: &mut Life) -> Result<(), ApiError> {
        sprite.activity.touch();
        let state = sprite.state.get();
        if state == State::Running && (life.holder.is_some() || !self.sandboxed) {
            return Ok(());
        }
        let slow: u64 = self
            .faults
            .take(
                &FaultKind::SlowWake,
                "",
                &format!("/v1/sprites/{}", sprite.name),
                "",
            )
            .iter()
            .map(|f| f.ms.unwrap_or(1000))
            .sum();
        let delay = match state {
            State::Warm => self.cfg.wake_delay_warm,
            State::Cold => self.cfg.wake_delay_cold,
            State::Running => Duration::ZERO,
        } + Duration::from_millis(slow);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match (&life.holder, state) {
            (Some(h), _) => h.thaw().await,
            (None, _) if self.sandboxed => {
                let holder = Holder::start(
                    &self.cfg.helper,
                    &sprite.paths.root(),
                    &sprite.paths.mnt(),
                    &self.cfg.data,
                    &sprite.name,
                    &self.cfg.languages,
                    self.ca_bundle.as_deref(),
                )
                .await
                .map_err(ApiError::internal)?;
                let (init, helper) = (holder.init_pid, holder.helper_pid);
                life.holder = Some(holder);
                // Without egress the sprite still works, offline as before: say why, go on.
                life.egress = match crate::egress::start(
                    &self.cfg.egress,
                    Arc::clone(&sprite.egress),
                    init,
                    helper,
                    self.url_conns.clone(),
                )
                .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!("sprite {} has no egress: {e}", sprite.name);
                        None
                    }
                };
            }
            (None, _) => {
                for s in sprite.sessions() {
                    s.signal(Signal::SIGCONT);
                }
            }
        }
        life.warm_since = None;
        sprite.state.set(State::Running);
        sprite.activity.touch();
        let now = time_fmt::micros(time_fmt::now());
        sprite.update(|r| r.last_running_at = Some(now))?;
        Ok(())
    }

    /// Pauses the sprite's processes.
    pub async fn go_warm(&self, sprite: &Arc<Sprite>, life: &mut Life) -> Result<(), ApiError> {
        if sprite.state.get() != State::Running {
            return Ok(());
        }
        match &life.holder {
            Some(h) => h.freeze().await,
            None => {
                for s in sprite.sessions() {
                    s.signal(Signal::SIGSTOP);
                }
            }
        }
        life.warm_since = Some(Instant::now());
        sprite.state.set(State::Warm);
        let now = time_fmt::micros(time_fmt::now());
        sprite.update(|r| r.last_warming_at = Some(now))?;
        Ok(())
    }

    /// Ends the sprite's processes; its disk stays.
    pub async fn go_cold(&self, sprite: &Arc<Sprite>, life: &mut Life) {
        sprite.kill_sessions();
        life.egress = None;
        if let Some(h) = life.holder.take() {
            h.stop().await;
        }
        life.warm_since = None;
        sprite.state.set(State::Cold);
    }

    /// Forces a state (admin endpoint).
    pub async fn force_state(&self, sprite: &Arc<Sprite>, state: State) -> Result<(), ApiError> {
        let mut life = sprite.life.lock().await;
        match state {
            State::Running => self.wake_locked(sprite, &mut life).await,
            State::Warm => {
                if sprite.state.get() == State::Cold {
                    self.wake_locked(sprite, &mut life).await?;
                }
                self.go_warm(sprite, &mut life).await
            }
            State::Cold => {
                self.go_cold(sprite, &mut life).await;
                Ok(())
            }
        }
    }

    /// The namespaces to exec in, or `None` without a sandbox (caller holds the lifecycle lock
    /// only briefly).
    pub async fn ns_for_exec(&self, sprite: &Arc<Sprite>) -> Result<Option<Arc<NsFds>>, ApiError> {
        if !self.sandboxed {
            return Ok(None);
        }
        let mut life = sprite.life.lock().await;
        let mut last_err = String::new();
        for _attempt in 0..2 {
            if life.holder.is_none() || sprite.state.get() != State::Running {
                self.wake_locked(sprite, &mut life).await?;
            }
            let h = life
                .holder
                .as_ref()
                .ok_or_else(|| ApiError::internal("sandbox not running"))?;
            let opened = if crate::sandbox::alive(h.init_pid) {
                NsFds::open(h.init_pid, h.helper_pid)
            } else {
                Err(std::io::Error::other("the sandbox's init process is dead"))
            };
            match opened {
                Ok(n) => return Ok(Some(Arc::new(n))),
                Err(e) => {
                    // The sandbox died under us (killed from outside): start a fresh one.
                    tracing::warn!("sandbox of {} is gone ({e}); restarting it", sprite.name);
                    last_err = e.to_string();
                    life.egress = None;
                    if let Some(h) = life.holder.take() {
                        h.stop().await;
                    }
                    sprite.kill_sessions();
                    sprite.state.set(State::Cold);
                }
            }
        }
        Err(ApiError::internal(format!(
            "cannot enter the sprite: {last_err}"
        )))
    }

    /// Host pid of the sprite's namespace init, when sandboxed and awake.
    pub async fn init_pid(&self, sprite: &Arc<Sprite>) -> Option<i32> {
        sprite.life.lock().await.holder.as_ref().map(|h| h.init_pid)
    }

    /// Host pids of the sprite's namespace init and of its helper, when awake.
    pub async fn holder_ids(&self, sprite: &Arc<Sprite>) -> Option<(i32, Option<i32>)> {
        sprite
            .life
            .lock()
            .await
            .holder
            .as_ref()
            .map(|h| (h.init_pid, h.helper_pid))
    }

    /// One pass of the idle timers.
    pub async fn tick(&self) {
        let now = Instant::now();
        for sprite in self.all() {
            let Ok(mut life) = sprite.life.try_lock() else {
                continue;
            };
            match sprite.state.get() {
                State::Running => {
                    if sprite.activity.active() == 0
                        && now.saturating_duration_since(sprite.activity.last())
                            >= self.cfg.idle_to_warm
                    {
                        let _ = self.go_warm(&sprite, &mut life).await;
                    }
                }
                State::Warm => {
                    if life
                        .warm_since
                        .is_some_and(|t| now.saturating_duration_since(t) >= self.cfg.warm_to_cold)
                    {
                        self.go_cold(&sprite, &mut life).await;
                    }
                }
                State::Cold => {}
            }
        }
    }

    /// Runs the idle timers until the process ends.
    pub fn spawn_ticker(self: &Arc<Self>) {
        let app = Arc::clone(self);
        let period = (self.cfg.idle_to_warm.min(self.cfg.warm_to_cold) / 5)
            .clamp(Duration::from_millis(10), Duration::from_millis(500));
        tokio::spawn(async move {
            let mut iv = tokio::time::interval(period);
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                iv.tick().await;
                app.tick().await;
            }
        });
    }

    /// A fresh connection id.
    pub fn conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::SeqCst)
    }

    /// Sends `sig` to a process group (used for sessions).
    pub fn killpg(pgid: i32, sig: Signal) {
        let _ = kill(Pid::from_raw(-pgid), sig);
    }
}
