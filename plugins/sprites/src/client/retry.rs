//! When and how long to retry: only what cannot do harm twice.
//!
//! Reads (GET) are retried on refused connections, timeouts, transport failures and 502/503/504.
//! Anything else is retried only when the request provably did not take effect: the connection
//! was refused (nothing was sent) or the service answered 429 (it refused the work). A plain 500 is
//! not retried: the service uses it for deterministic failures (a missing sprite or checkpoint).

use std::time::Duration;

/// Whether a request may be repeated after an ambiguous failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// A read with no effect: safe to repeat.
    Read,
    /// A call that changes state: repeated only when it provably did not happen.
    Write,
}

/// Bounds of the retry loop.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts, the first included (at least 1).
    pub max_attempts: u32,
    /// The first backoff delay; doubled on each attempt.
    pub base_delay: Duration,
    /// The largest backoff delay.
    pub max_delay: Duration,
    /// The longest `Retry-After` the client waits out itself; a longer one is returned as
    /// [`Error::RateLimited`](super::Error::RateLimited) for the caller to schedule.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_rate_limit_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The backoff before attempt `failed + 1`, after `failed` (1-based) failures.
    pub fn backoff(&self, failed: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed.saturating_sub(1).min(16));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// True if another attempt is allowed after `failed` failures.
    pub fn allows_another(&self, failed: u32) -> bool {
        failed < self.max_attempts.max(1)
    }
}

/// True for the statuses a read is retried on.
pub(crate) fn retryable_read_status(status: u16) -> bool {
    matches!(status, 502..=504)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(350));
        assert_eq!(p.backoff(40), Duration::from_millis(350));
        assert!(p.allows_another(3));
        assert!(!p.allows_another(4));
        assert!(!RetryPolicy::none().allows_another(1));
    }
}
