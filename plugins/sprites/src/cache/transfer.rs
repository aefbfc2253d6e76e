//! Moving an archive between two sprites' exec streams through the plugin (the relay path):
//! the producer's stdout is written to the consumer's stdin chunk by chunk, hashed and counted
//! on the way (nothing is stored on the host), with a progress report (bytes, rate) at most
//! twice a second.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::client::{ChildStdin, OutputStream};
use crate::tunnel::locate::hex;

/// How often progress is reported while bytes move.
const REPORT_EVERY: Duration = Duration::from_millis(500);

/// What a finished transfer moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Bytes moved.
    pub bytes: u64,
    /// Their SHA-256 (hex).
    pub sha256: String,
    /// How long it took.
    pub elapsed: Duration,
}

/// Why a transfer stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// More than the allowed bytes came (the consumer's stdin was closed without EOF being
    /// meaningful: the caller discards what it got).
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// The consumer stopped reading (its stdin closed); the caller reads its exit status.
    ConsumerClosed {
        /// Bytes moved before.
        bytes: u64,
    },
}

/// Progress of a transfer: bytes so far, the total when known, bytes per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    /// Bytes moved so far.
    pub bytes: u64,
    /// The total, when known.
    pub total: Option<u64>,
    /// The average rate since the start, in bytes per second.
    pub rate: f64,
}

/// Pumps `from` into `to` until `from` ends, then closes `to` (EOF). `max` bounds the bytes;
/// `report` hears progress.
pub async fn pump(
    mut from: OutputStream,
    mut to: ChildStdin,
    total: Option<u64>,
    max: Option<u64>,
    report: &(dyn Fn(Tick) + Send + Sync),
) -> Result<Moved, Stopped> {
    let started = Instant::now();
    let mut last = started;
    let mut hash = Sha256::new();
    let mut bytes: u64 = 0;
    while let Some(chunk) = from.recv().await {
        bytes += chunk.len() as u64;
        if let Some(max) = max
            && bytes > max
        {
            return Err(Stopped::TooLarge { max });
        }
        hash.update(&chunk);
        if to.write_all(&chunk).await.is_err() {
            return Err(Stopped::ConsumerClosed { bytes });
        }
        if last.elapsed() >= REPORT_EVERY {
            last = Instant::now();
            report(Tick {
                bytes,
                total,
                rate: rate(bytes, started.elapsed()),
            });
        }
    }
    if to.shutdown().await.is_err() {
        return Err(Stopped::ConsumerClosed { bytes });
    }
    let elapsed = started.elapsed();
    report(Tick {
        bytes,
        total,
        rate: rate(bytes, elapsed),
    });
    Ok(Moved {
        bytes,
        sha256: hex(&hash.finalize()),
        elapsed,
    })
}

/// Bytes per second over `d` (0 for no time at all).
pub fn rate(bytes: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { bytes as f64 / s } else { 0.0 }
}

/// `12.3 MiB`-style size.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// One progress line: `12.3 MiB of 45.0 MiB at 30.2 MiB/s`.
pub fn describe(t: Tick) -> String {
    let of = t
        .total
        .map(|n| format!(" of {}", human(n)))
        .unwrap_or_default();
    format!(
        "{}{of} at {}/s",
        human(t.bytes),
        human(t.rate.round() as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_lines_read_well() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(45 << 20), "45.0 MiB");
        let t = Tick {
            bytes: 12 << 20,
            total: Some(48 << 20),
            rate: f64::from(3 << 20),
        };
        assert_eq!(describe(t), "12.0 MiB of 48.0 MiB at 3.0 MiB/s");
        assert_eq!(rate(10, Duration::ZERO), 0.0);
    }
}
