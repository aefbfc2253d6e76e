//! The hibernation timer: per running session, reset by agent output and input, held off
//! while a client is attached; at expiry the session is hibernated.

use std::sync::Arc;
use std::time::Duration;

use crate::session::SessionId;
use crate::store::SessionRecord;

use super::Engine;

impl Engine {
    /// The idle time before hibernation: the session's `--hibernation-timeout`, else
    /// `[sessions] hibernation_timeout`, else `CLAUDERON_HIBERNATION_TIMEOUT` (read at daemon
    /// start), else the default idle time the backend plugin declares (30m for Sprites), else
    /// never. Durations are written like `30m` or `90s`, or `never`.
    pub fn idle_timeout(&self, rec: &SessionRecord) -> Option<Duration> {
        if let Some(t) = rec.options.hibernation_timeout {
            return t.duration();
        }
        if let Some(t) = self.config().sessions.hibernation_timeout {
            return t;
        }
        self.default_idle.or_else(|| {
            self.backends()
                .get(&rec.backend)
                .ok()
                .and_then(|c| c.default_idle())
        })
    }

    /// Starts (or restarts) the session's idle timer, when it has a timeout.
    pub(super) fn arm_idle_timer(self: &Arc<Self>, id: SessionId, rec: &SessionRecord) {
        self.disarm_idle_timer(id);
        let Some(timeout) = self.idle_timeout(rec) else {
            return;
        };
        tracing::info!(
            session = %id,
            "the session hibernates after {} without activity",
            humantime::format_duration(timeout)
        );
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

/// The environment variable giving the daemon's default idle time.
pub const IDLE_ENV: &str = "CLAUDERON_HIBERNATION_TIMEOUT";

pub use crate::config::parse_idle;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_times_parse() {
        assert_eq!(parse_idle("never"), Ok(None));
        assert_eq!(parse_idle("90s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_idle("1500ms"), Ok(Some(Duration::from_millis(1500))));
        assert!(parse_idle("0s").is_err());
        assert!(parse_idle("soon").unwrap_err().contains("soon"));
    }
}
