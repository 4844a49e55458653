//! Time is injected so that analytics, health and storage are deterministic in tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, UTC.
pub type UnixMs = i64;

/// A time as RFC 3339 in UTC, to the second or finer as the time has it:
/// how every response, push and payload writes a time.
pub fn rfc3339(ms: UnixMs) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// A time as RFC 3339 in UTC with exactly three fraction digits (syslog's
/// TIMESTAMP), or `-` (syslog's NILVALUE) when it is out of range.
pub fn rfc3339_millis(ms: UnixMs) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_else(|_| "-".into())
}

pub trait Clock: Send + Sync {
    fn now_ms(&self) -> UnixMs;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> UnixMs {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as UnixMs)
            // A clock before 1970 is a broken clock; 0 keeps the arithmetic sane.
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: UnixMs) -> Self {
        Self(Arc::new(AtomicI64::new(start)))
    }
    pub fn set(&self, now: UnixMs) {
        self.0.store(now, Ordering::SeqCst);
    }
    pub fn advance(&self, by_ms: i64) {
        self.0.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> UnixMs {
        self.0.load(Ordering::SeqCst)
    }
}

/// The wall clock plus an offset in milliseconds read from a file, for
/// fault injection (`HEADCOUNT_FAULT_CLOCK_OFFSET_FILE`): the soak (`scripts/soak.sh`) steps the appliance's
/// time by hours, back and forward, without touching the machine's clock.
/// A missing or unreadable file leaves the offset as it was.
#[derive(Debug)]
pub struct OffsetFileClock {
    path: PathBuf,
    offset_ms: AtomicI64,
    read_at: Mutex<Option<Instant>>,
}

/// How often the offset file is read again.
const OFFSET_REREAD: Duration = Duration::from_millis(200);

impl OffsetFileClock {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset_ms: AtomicI64::new(0),
            read_at: Mutex::new(None),
        }
    }

    fn offset_ms(&self) -> i64 {
        // Whoever finds the offset due reads it; the others use the last one.
        if let Ok(mut read_at) = self.read_at.try_lock() {
            if read_at.is_none_or(|at| at.elapsed() >= OFFSET_REREAD) {
                *read_at = Some(Instant::now());
                if let Some(offset) = std::fs::read_to_string(&self.path)
                    .ok()
                    .and_then(|text| text.trim().parse().ok())
                {
                    self.offset_ms.store(offset, Ordering::SeqCst);
                }
            }
        }
        self.offset_ms.load(Ordering::SeqCst)
    }
}

impl Clock for OffsetFileClock {
    fn now_ms(&self) -> UnixMs {
        SystemClock.now_ms() + self.offset_ms()
    }
}

/// The environment variable that offsets the appliance's clock, for fault
/// injection only: it names a file holding the offset in milliseconds.
pub const CLOCK_OFFSET_FILE_VAR: &str = "HEADCOUNT_FAULT_CLOCK_OFFSET_FILE";

/// The clock the appliance runs on: the wall clock, or, with
/// `HEADCOUNT_FAULT_CLOCK_OFFSET_FILE=PATH`, the wall clock moved by the
/// offset in PATH.
pub fn from_environment() -> Result<Arc<dyn Clock>, String> {
    match std::env::var_os(CLOCK_OFFSET_FILE_VAR) {
        None => Ok(Arc::new(SystemClock)),
        Some(path) if path.is_empty() => Err(format!("{CLOCK_OFFSET_FILE_VAR} names no file")),
        Some(path) => {
            let path = PathBuf::from(path);
            tracing::warn!(path = %path.display(), "fault injection: the clock is offset by the milliseconds in this file");
            Ok(Arc::new(OffsetFileClock::new(path)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_file_moves_the_clock_and_a_bad_file_keeps_the_last_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offset");
        let clock = OffsetFileClock::new(path.clone());
        std::fs::write(&path, "-7200000\n").unwrap();
        let stepped = clock.now_ms();
        assert!((SystemClock.now_ms() - 7_200_000 - stepped).abs() < 1_000);
        std::fs::write(&path, "not a number").unwrap();
        std::thread::sleep(OFFSET_REREAD);
        assert!((SystemClock.now_ms() - 7_200_000 - clock.now_ms()).abs() < 1_000);
        std::fs::write(&path, "3600000").unwrap();
        std::thread::sleep(OFFSET_REREAD);
        assert!((SystemClock.now_ms() + 3_600_000 - clock.now_ms()).abs() < 1_000);
    }
}
