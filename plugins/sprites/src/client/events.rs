//! Events the client reports while it works (retries, rate-limit waits, create recovery).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Something the host may want to show while a call is in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A 429 answer: the client waits `wait` before trying again.
    RateLimitWait {
        /// What was being done (e.g. `GET /v1/sprites/x`).
        operation: String,
        /// How long the client waits.
        wait: Duration,
        /// Which attempt failed (1-based).
        attempt: u32,
    },
    /// A transient failure (refused connection, 5xx on a read): the client retries after `wait`.
    Retrying {
        /// What was being done.
        operation: String,
        /// Why it is retried.
        reason: String,
        /// How long the client waits.
        wait: Duration,
        /// Which attempt failed (1-based).
        attempt: u32,
    },
    /// A create failed ambiguously; the client looks the sprite up by name instead of repeating.
    CreateRecovering {
        /// The sprite name.
        name: String,
        /// The ambiguous failure.
        reason: String,
    },
    /// The recovery found the sprite with the requested labels and adopted it.
    CreateAdopted {
        /// The sprite name.
        name: String,
    },
}

impl fmt::Display for ClientEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientEvent::RateLimitWait { wait, .. } => {
                write!(f, "waiting {} (rate limited)", fmt_secs(*wait))
            }
            ClientEvent::Retrying {
                operation,
                reason,
                wait,
                attempt,
            } => write!(
                f,
                "{operation} failed ({reason}); retry {attempt} in {}",
                fmt_secs(*wait)
            ),
            ClientEvent::CreateRecovering { name, reason } => write!(
                f,
                "creating sprite {name} failed ambiguously ({reason}); checking whether it exists"
            ),
            ClientEvent::CreateAdopted { name } => {
                write!(f, "sprite {name} was created after all; using it")
            }
        }
    }
}

fn fmt_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f32())
    }
}

/// The callback the host installs to observe [`ClientEvent`]s.
pub type EventCallback = Arc<dyn Fn(&ClientEvent) + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_wait_reads_well() {
        let e = ClientEvent::RateLimitWait {
            operation: "GET /v1/sprites".into(),
            wait: Duration::from_secs(3),
            attempt: 1,
        };
        assert_eq!(e.to_string(), "waiting 3s (rate limited)");
    }
}
