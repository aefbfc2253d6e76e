//! Headless Chromium (Debian's `chromium`) driven over the Chrome DevTools Protocol: a small
//! client of our own over the browser's WebSocket with tokio-tungstenite (already in the
//! workspace), using flattened target sessions, one per page.
//!
//! ```ignore
//! let browser = Browser::launch().await;
//! let page = browser.new_page().await;
//! page.goto("http://127.0.0.1:PORT/").await;
//! page.wait_for("document.querySelector('#sessions')", "the list", Duration::from_secs(10)).await;
//! page.click("button[data-act=wake]").await;
//! page.screenshot(Path::new("docs/web-list.png")).await;
//! ```
//!
//! Every page records the Content-Security-Policy violations and uncaught script errors it saw
//! ([`Page::problems`]), so a test can assert the UI ran clean.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{broadcast, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long one DevTools command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

type Sink = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

struct Conn {
    sink: tokio::sync::Mutex<Sink>,
    next: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Value>>>,
    events: broadcast::Sender<Arc<Value>>,
}

impl Conn {
    async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending").insert(id, tx);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.sink
            .lock()
            .await
            .send(Message::Text(msg.to_string().into()))
            .await
            .map_err(|e| format!("{method}: send: {e}"))?;
        let answer = tokio::time::timeout(CALL_TIMEOUT, rx)
            .await
            .map_err(|_| format!("{method}: no answer within {CALL_TIMEOUT:?}"))?
            .map_err(|_| format!("{method}: the browser connection closed"))?;
        if let Some(err) = answer.get("error") {
            return Err(format!("{method}: {err}"));
        }
        Ok(answer.get("result").cloned().unwrap_or(Value::Null))
    }
}

/// A headless Chromium with a fresh profile (killed on drop).
pub struct Browser {
    child: Child,
    conn: Arc<Conn>,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("pid", &self.child.id())
            .finish()
    }
}

/// The Chromium binary: `$CHROMIUM`, else `chromium` or `chromium-browser` on PATH.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
        .find(|p| p.is_file())
}

impl Browser {
    /// Starts Chromium headless on a fresh profile and connects to it. Panics, naming the
    /// package, when it is not installed (`.ci/run` installs it).
    pub async fn launch() -> Browser {
        let bin = chromium().expect(
            "the web UI tests need Chromium: `apt-get install chromium` (.ci/run installs it), \
             or set CHROMIUM to its binary",
        );
        let profile = tempfile::Builder::new()
            .prefix("clauderon-chromium-")
            .tempdir()
            .expect("profile dir");
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("log");
        let child = Command::new(&bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--window-size=1400,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        // Chromium writes the port and the browser target's path once it listens.
        let active = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            let text = std::fs::read_to_string(&active).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                break format!("ws://127.0.0.1:{port}{path}");
            }
            assert!(
                Instant::now() < deadline,
                "Chromium did not open its DevTools port within 60 s:\n{}",
                std::fs::read_to_string(profile.path().join("chromium.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect to Chromium's DevTools");
        let (sink, mut stream) = ws.split();
        let conn = Arc::new(Conn {
            sink: tokio::sync::Mutex::new(sink),
            next: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            events: broadcast::channel(4096).0,
        });
        let reader = Arc::clone(&conn);
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                match v.get("id").and_then(Value::as_u64) {
                    Some(id) => {
                        if let Some(tx) = reader.pending.lock().expect("pending").remove(&id) {
                            let _ = tx.send(v);
                        }
                    }
                    None => {
                        let _ = reader.events.send(Arc::new(v));
                    }
                }
            }
        });
        Browser {
            child,
            conn,
            _profile: profile,
        }
    }

    /// A new tab in its own browser context (its own cookies), attached and ready.
    pub async fn new_page(&self) -> Page {
        let ctx = self
            .conn
            .call(None, "Target.createBrowserContext", json!({}))
            .await
            .expect("createBrowserContext");
        let target = self
            .conn
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": ctx["browserContextId"]}),
            )
            .await
            .expect("createTarget");
        self.page_for(
            target["targetId"].as_str().expect("targetId"),
            ctx["browserContextId"].as_str(),
        )
        .await
    }

    /// A new tab sharing `other`'s cookies.
    pub async fn new_tab_like(&self, other: &Page) -> Page {
        let target = self
            .conn
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": other.context}),
            )
            .await
            .expect("createTarget");
        self.page_for(
            target["targetId"].as_str().expect("targetId"),
            other.context.as_deref(),
        )
        .await
    }

    async fn page_for(&self, target: &str, context: Option<&str>) -> Page {
        let attached = self
            .conn
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await
            .expect("attachToTarget");
        let session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        let problems = Arc::new(Mutex::new(Vec::new()));
        let ws_text = Arc::new(Mutex::new(Vec::new()));
        // Collect uncaught errors, policy violations and the WebSocket text frames the page
        // sent, for the page's whole life.
        let mut events = self.conn.events.subscribe();
        let (sid, sink, frames) = (session.clone(), Arc::clone(&problems), Arc::clone(&ws_text));
        tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                if ev.get("sessionId").and_then(Value::as_str) != Some(sid.as_str()) {
                    continue;
                }
                let params = &ev["params"];
                let text = match ev["method"].as_str() {
                    Some("Runtime.exceptionThrown") => Some(format!(
                        "uncaught: {}",
                        params["exceptionDetails"]["exception"]["description"]
                            .as_str()
                            .or(params["exceptionDetails"]["text"].as_str())
                            .unwrap_or("?")
                    )),
                    Some("Log.entryAdded")
                        if params["entry"]["level"] == "error"
                            && params["entry"]["source"] != "network" =>
                    {
                        Some(format!("log: {}", params["entry"]["text"]))
                    }
                    Some("Network.webSocketFrameSent") if params["response"]["opcode"] == 1 => {
                        if let Some(p) = params["response"]["payloadData"].as_str() {
                            frames.lock().expect("frames").push(p.to_owned());
                        }
                        None
                    }
                    _ => None,
                };
                if let Some(t) = text {
                    sink.lock().expect("problems").push(t);
                }
            }
        });
        let page = Page {
            conn: Arc::clone(&self.conn),
            session,
            context: context.map(str::to_owned),
            problems,
            ws_text,
        };
        for m in [
            "Page.enable",
            "Runtime.enable",
            "Log.enable",
            "Network.enable",
        ] {
            page.call(m, json!({})).await;
        }
        page.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": "document.addEventListener('securitypolicyviolation', (e) => \
                (window.__csp = window.__csp || []).push(e.violatedDirective + ' ' + e.blockedURI));"}),
        )
        .await;
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One tab.
pub struct Page {
    conn: Arc<Conn>,
    session: String,
    context: Option<String>,
    problems: Arc<Mutex<Vec<String>>>,
    ws_text: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("session", &self.session)
            .finish()
    }
}

/// `s` as a JavaScript string literal.
pub fn js_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

impl Page {
    /// A DevTools command on this page; panics on an error answer.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.conn
            .call(Some(&self.session), method, params)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Makes this the visible tab (a hidden tab's timers and events may be held back).
    pub async fn front(&self) {
        self.call("Page.bringToFront", json!({})).await;
    }

    /// Navigates and waits for the load event; returns the final URL.
    pub async fn goto(&self, url: &str) -> String {
        let mut events = self.conn.events.subscribe();
        let nav = self.call("Page.navigate", json!({"url": url})).await;
        if let Some(err) = nav.get("errorText").and_then(Value::as_str) {
            panic!("navigating to {url}: {err}");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, events.recv()).await {
                Ok(Ok(ev)) => {
                    if ev["method"] == "Page.loadEventFired"
                        && ev["sessionId"].as_str() == Some(self.session.as_str())
                    {
                        break;
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                _ => panic!("{url} did not load within 30 s"),
            }
        }
        self.eval("location.href")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Evaluates `expr` (awaiting a promise) and returns its JSON value; `Err` with the
    /// exception's text when it threw.
    pub async fn try_eval(&self, expr: &str) -> Result<Value, String> {
        let r = self
            .conn
            .call(
                Some(&self.session),
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(ex["exception"]["description"]
                .as_str()
                .or(ex["text"].as_str())
                .unwrap_or("exception")
                .to_owned());
        }
        Ok(r["result"]["value"].clone())
    }

    /// Evaluates `expr`; panics when it throws.
    pub async fn eval(&self, expr: &str) -> Value {
        self.try_eval(expr)
            .await
            .unwrap_or_else(|e| panic!("evaluating `{expr}`: {e}"))
    }

    /// Waits until `expr` is truthy (checked every 50 ms, at most `limit`); returns its value.
    /// On timeout it panics naming `what`, with the page's visible text.
    pub async fn wait_for(&self, expr: &str, what: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(v) = self.try_eval(expr).await {
                let truthy = match &v {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    Value::String(s) => !s.is_empty(),
                    Value::Number(n) => n.as_f64() != Some(0.0),
                    _ => true,
                };
                if truthy {
                    return v;
                }
            }
            if Instant::now() >= deadline {
                let text = self
                    .try_eval("document.body ? document.body.innerText : ''")
                    .await
                    .unwrap_or_default();
                panic!(
                    "{what}: not seen within {limit:?} (waited for `{expr}`)\npage text:\n{}\nproblems: {:?}",
                    text.as_str().unwrap_or_default(),
                    self.problems.lock().expect("problems")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the element `selector` exists and its text contains `needle`.
    pub async fn wait_text(&self, selector: &str, needle: &str, limit: Duration) {
        let expr = format!(
            "(() => {{ const el = document.querySelector({}); return !!el && el.textContent.includes({}); }})()",
            js_str(selector),
            js_str(needle)
        );
        self.wait_for(&expr, &format!("{needle:?} in {selector}"), limit)
            .await;
    }

    /// The text of `selector` (empty when absent).
    pub async fn text(&self, selector: &str) -> String {
        let v = self
            .eval(&format!(
                "(() => {{ const el = document.querySelector({}); return el ? el.textContent : ''; }})()",
                js_str(selector)
            ))
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Clicks the element `selector` (the element's own `click()`); panics when it is absent.
    pub async fn click(&self, selector: &str) {
        self.eval(&format!(
            "(() => {{ const el = document.querySelector({0}); if (!el) throw new Error('no element ' + {0}); \
             if (el.disabled) throw new Error('disabled: ' + {0}); el.click(); return true; }})()",
            js_str(selector)
        ))
        .await;
    }

    /// Sets an input's value as typing would (an `input` event follows).
    pub async fn fill(&self, selector: &str, value: &str) {
        self.eval(&format!(
            "(() => {{ const el = document.querySelector({0}); if (!el) throw new Error('no element ' + {0}); \
             el.value = {1}; el.dispatchEvent(new Event('input', {{bubbles: true}})); return true; }})()",
            js_str(selector),
            js_str(value)
        ))
        .await;
    }

    /// Types `text` into the focused element, as a keyboard would insert it.
    pub async fn insert_text(&self, text: &str) {
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// Presses one key (`key` as in `KeyboardEvent.key`), with `modifiers` (2 = Ctrl).
    pub async fn press(&self, key: &str, code: &str, vk: u32, text: Option<&str>, modifiers: u32) {
        let mut down = json!({"type": "keyDown", "key": key, "code": code,
            "windowsVirtualKeyCode": vk, "modifiers": modifiers});
        if let Some(t) = text {
            down["text"] = json!(t);
        }
        self.call("Input.dispatchKeyEvent", down).await;
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": vk, "modifiers": modifiers}),
        )
        .await;
    }

    /// Sets the viewport's size in CSS pixels.
    pub async fn viewport(&self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Every cookie this page's context holds for `url`.
    pub async fn cookies(&self, url: &str) -> Vec<Value> {
        let v = self
            .call("Network.getCookies", json!({"urls": [url]}))
            .await;
        v["cookies"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the page has sent a WebSocket text frame containing `needle`; returns it.
    pub async fn wait_ws_sent(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let found = self
                .ws_text
                .lock()
                .expect("frames")
                .iter()
                .find(|f| f.contains(needle))
                .cloned();
            if let Some(f) = found {
                return f;
            }
            assert!(
                Instant::now() < deadline,
                "no WebSocket text frame with {needle:?} within {limit:?}; sent: {:?}",
                self.ws_text.lock().expect("frames")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Uncaught script errors, console errors (not network ones) and CSP violations so far.
    pub async fn problems(&self) -> Vec<String> {
        let mut out = self.problems.lock().expect("problems").clone();
        if let Ok(Value::Array(v)) = self.try_eval("window.__csp || []").await {
            out.extend(v.into_iter().map(|x| format!("csp: {x}")));
        }
        out
    }
}
