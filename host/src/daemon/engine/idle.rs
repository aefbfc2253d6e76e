//! The hibernation timer: per running session, reset by agent output and input, held off
//! while a client is attached; at expiry the session is hibernated.

use std::sync::Arc;
use std::time::Duration;

use crate::session::SessionId;
use crate::store::SessionRecord;

use super::Engine;

impl Engine {
    /// The idle time before hibernation: the session's `--hibernation-timeout`, else the
    /// backend table's `hibernation_timeout` (a duration such as `30m`, or `never`), else never.
    pub fn idle_timeout(&self, rec: &SessionRecord) -> Option<Duration> {
        if let Some(t) = rec.options.hibernation_timeout {
            return t.duration();
        }
        let v = self
            .config()
            .backend_table(&rec.backend)?
            .get("hibernation_timeout")?
            .as_str()?
            .trim()
            .to_owned();
        if v.eq_ignore_ascii_case("never") {
            return None;
        }
        match humantime::parse_duration(&v) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => {
                tracing::warn!(
                    backend = %rec.backend,
                    "ignoring hibernation_timeout `{v}`: expected a duration such as 30m, or never"
                );
                None
            }
        }
    }

    /// Starts (or restarts) the session's idle timer, when it has a timeout.
    pub(super) fn arm_idle_timer(self: &Arc<Self>, id: SessionId, rec: &SessionRecord) {
        self.disarm_idle_timer(id);
        let Some(timeout) = self.idle_timeout(rec) else {
            return;
        };
        let rt = self.runtime(id);
        rt.touch();
        let engine = Arc::clone(self);
        let timer_rt = Arc::clone(&rt);
        let task = tokio::spawn(async move {
            loop {
                let deadline = timer_rt.last_activity() + timeout;
                tokio::time::sleep_until(deadline.into()).await;
                if timer_rt.attached() > 0 {
                    timer_rt.touch();
                    continue;
                }
                if timer_rt.last_activity() + timeout <= std::time::Instant::now() {
                    break;
                }
            }
            // Hibernate disarms this timer; run it outside so it is not aborted half-way.
            tokio::spawn(async move {
                if let Err(e) = engine.hibernate(id, "idle timeout").await {
                    tracing::warn!(session = %id, error = %e, "idle hibernation failed");
                }
            });
        });
        *super::lock(&rt.timer) = Some(task.abort_handle());
    }

    /// Stops the session's idle timer.
    pub(super) fn disarm_idle_timer(&self, id: SessionId) {
        if let Some(t) = super::lock(&self.runtime(id).timer).take() {
            t.abort();
        }
    }
}
