//! Making the requests [`App::update`](super::app::App::update) asks for, each on its own task,
//! with the answer sent back as a [`Msg`]. Every request is one the CLI makes too, through the
//! same [`ApiClient`] and the same contract types.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::app::{Done, Effect, Failure, Msg};
use crate::api::{
    CacheCleared, CacheGcReport, CacheList, CheckpointList, ClearedCache, EventPage, Restored,
    SessionAnswer, SessionView, Unpushed, Woken,
};
use crate::cli::api::{ApiClient, ApiError, encode};
use crate::session::SessionId;

/// How long the selection must rest on a session before its detail is read (holding an arrow
/// key over a thousand rows asks for one detail, not a thousand).
const DETAIL_DELAY: Duration = Duration::from_millis(120);

/// How many recent events the detail pane asks for.
const DETAIL_TAIL: usize = 100;

/// Runs effects against one daemon.
#[derive(Debug, Clone)]
pub struct Runner {
    api: ApiClient,
    tx: UnboundedSender<Msg>,
    detail_generation: Arc<AtomicU64>,
}

fn path(id: &SessionId, rest: &str) -> String {
    format!("/api/sessions/{}{rest}", encode(&id.to_string()))
}

impl Runner {
    /// A runner sending answers to `tx`.
    pub fn new(api: ApiClient, tx: UnboundedSender<Msg>) -> Runner {
        Runner {
            api,
            tx,
            detail_generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The client.
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = Option<Msg>> + Send + 'static,
    {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            if let Some(msg) = work.await {
                let _ = tx.send(msg);
            }
        });
    }

    /// Starts the request of `effect` (all but [`Effect::Attach`], which the loop runs itself
    /// because it takes the terminal).
    pub fn run(&self, effect: Effect) {
        let api = self.api.clone();
        match effect {
            Effect::Attach(_) => {}
            Effect::LoadBackends => self.spawn(async move {
                let v: Result<serde_json::Value, ApiError> = api.get("/api/plugins").await;
                Some(Msg::Backends(
                    v.map(|v| backends(&v)).map_err(|e| e.to_string()),
                ))
            }),
            Effect::LoadDetail(id) => {
                let generation = self.detail_generation.fetch_add(1, Ordering::SeqCst) + 1;
                let current = Arc::clone(&self.detail_generation);
                self.spawn(async move {
                    tokio::time::sleep(DETAIL_DELAY).await;
                    if current.load(Ordering::SeqCst) != generation {
                        return None;
                    }
                    let read = async {
                        let view: SessionView = api.get(&path(&id, "")).await?;
                        let page: EventPage = api
                            .get(&path(
                                &id,
                                &format!("/events?tail={DETAIL_TAIL}&output=false"),
                            ))
                            .await?;
                        Ok::<_, ApiError>((Box::new(view), page.events))
                    };
                    Some(Msg::Detail(id, read.await.map_err(|e| e.to_string())))
                });
            }
            Effect::Reread(id) => self.spawn(async move {
                match api.get::<SessionView>(&path(&id, "")).await {
                    Ok(v) => Some(Msg::Reread(Box::new(v))),
                    Err(e) if e.status() == Some(404) => Some(Msg::Gone(id)),
                    Err(_) => None,
                }
            }),
            Effect::Create(req) => {
                self.spawn(async move {
                    let body = match serde_json::to_value(&req) {
                        Ok(b) => b,
                        Err(e) => return Some(Msg::Created(Err(Failure::new(e.to_string())))),
                    };
                    let answer = api.post::<SessionView>("/api/sessions", &body).await;
                    Some(Msg::Created(answer.map(Box::new).map_err(|e| Failure {
                        message: e.to_string(),
                        // A taken name is the name field's problem though the answer names none.
                        field: e.field().map(str::to_owned).or_else(|| {
                            (e.code() == Some("name_taken")).then(|| "name".to_owned())
                        }),
                    })))
                })
            }
            Effect::Wake(id) => self.post(id, "/wake".into(), None, "waking", |w: Woken| {
                Done::Woken(Box::new(w))
            }),
            Effect::Hibernate(id) => self.post(
                id,
                "/hibernate".into(),
                None,
                "hibernating",
                |a: SessionAnswer| Done::Hibernated(Box::new(a.session)),
            ),
            Effect::Delete(id) => self.spawn(async move {
                let r = api.delete::<SessionView>(&path(&id, "")).await;
                Some(Msg::Done(
                    id,
                    done(r, "deleting", |s| Done::Deleted(Box::new(s))),
                ))
            }),
            Effect::Unpushed(id) => self.spawn(async move {
                let r = api.get::<Unpushed>(&path(&id, "/unpushed")).await;
                Some(Msg::Unpushed(id, r.map_err(|e| e.to_string())))
            }),
            Effect::ListCheckpoints(id) => self.spawn(async move {
                let r = api.get::<CheckpointList>(&path(&id, "/checkpoints")).await;
                Some(Msg::Checkpoints(
                    id,
                    r.map(|l| l.checkpoints).map_err(|e| e.to_string()),
                ))
            }),
            Effect::Checkpoint(id, comment) => self.post(
                id,
                "/checkpoints".into(),
                Some(serde_json::json!({ "comment": comment })),
                "checkpoint of",
                Done::Checkpointed,
            ),
            Effect::ListCaches => self.spawn(async move {
                let r = api.get::<CacheList>("/api/caches").await;
                Some(Msg::Caches(r.map(|l| l.caches).map_err(|e| e.to_string())))
            }),
            Effect::ClearCache(key) => self.spawn(async move {
                let body = serde_json::json!({ "key": key });
                let r = api.post::<CacheCleared>("/api/caches/clear", &body).await;
                Some(Msg::CachesChanged(
                    r.map(|c| removed_line(&c.removed, &format!("nothing was removed for {key}")))
                        .map_err(|e| format!("clearing {key} failed: {e}")),
                ))
            }),
            Effect::CollectCaches => self.spawn(async move {
                let r = api
                    .post::<CacheGcReport>("/api/caches/gc", &serde_json::json!({}))
                    .await;
                Some(Msg::CachesChanged(
                    r.map(|g| {
                        removed_line(&g.removed, "nothing has gone unused long enough to collect")
                    })
                    .map_err(|e| format!("the collection failed: {e}")),
                ))
            }),
            Effect::Restore(id, checkpoint) => self.post(
                id,
                format!("/checkpoints/{}/restore", encode(&checkpoint)),
                None,
                "restoring",
                |r: Restored| Done::Restored(Box::new(r)),
            ),
        }
    }

    /// `POST` to the session's `rest` (with `body`, else `{}`); the answer, or the failure of
    /// `what`, comes back as [`Msg::Done`].
    fn post<T, F>(
        &self,
        id: SessionId,
        rest: String,
        body: Option<serde_json::Value>,
        what: &'static str,
        ok: F,
    ) where
        T: serde::de::DeserializeOwned + Send + 'static,
        F: FnOnce(T) -> Done + Send + 'static,
    {
        let api = self.api.clone();
        self.spawn(async move {
            let body = body.unwrap_or_else(|| serde_json::json!({}));
            let r = api.post::<T>(&path(&id, &rest), &body).await;
            Some(Msg::Done(id, done(r, what, ok)))
        });
    }
}

/// What a clear or a collection removed, as one line (`none` when it removed nothing).
fn removed_line(removed: &[ClearedCache], none: &str) -> String {
    if removed.is_empty() {
        return none.to_owned();
    }
    let parts: Vec<String> = removed
        .iter()
        .map(|c| match &c.key {
            Some(k) => format!("entry {k} {}", c.outcome),
            None => format!("cache {} {}", c.cache, c.outcome),
        })
        .collect();
    parts.join("; ")
}

fn done<T>(r: Result<T, ApiError>, what: &'static str, ok: impl FnOnce(T) -> Done) -> Done {
    match r {
        Ok(v) => ok(v),
        Err(e) => Done::Failed(what, e.to_string()),
    }
}

/// The names of the loaded backends in a `GET /api/plugins` report (the create form's
/// choices), as the web form reads them.
pub fn backends(report: &serde_json::Value) -> Vec<String> {
    report
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| matches!(p["status"].as_str(), Some("loaded" | "faulted")))
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}
