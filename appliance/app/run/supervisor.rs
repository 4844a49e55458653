//! The stages' supervisor. Every stage thread of the daemon is started here
//! and keeps a heartbeat; threads started elsewhere (the storage writer) are
//! watched for their end. A stage that ends while the appliance is not
//! stopping stops the process with `EXIT_STAGE_FAILED`, and a panic anywhere
//! aborts it (`process::abort_on_panic`), so systemd restarts the service instead of
//! leaving stale counts on a dashboard. A stage whose heartbeat is older
//! than its allowed silence makes the process unhealthy: systemd's watchdog
//! is no longer fed (it restarts the service) and `/livez` answers 503.
//!
//! Fault injection (`HEADCOUNT_FAULT_STAGE=<stage>:<panic|end|stall>[@SECONDS]`,
//! comma-separated), for the tests that prove this: SECONDS (default 0)
//! after it starts, the named stage panics at its next heartbeat, ends, or
//! stops beating.

use anyhow::Context;
use headcount_domain::health::HealthBoard;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The exit status of a process whose stage ended (BSD's EX_SOFTWARE).
pub const EXIT_STAGE_FAILED: i32 = 70;

/// How often the watcher looks at the watched threads.
const WATCH_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    Panic,
    End,
    Stall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fault {
    kind: FaultKind,
    after: Duration,
}

struct Stage {
    name: String,
    max_silence: Duration,
    /// Milliseconds since the supervisor started, at the last beat.
    beat_ms: AtomicU64,
    started: Instant,
    fault: Option<Fault>,
}

struct Inner {
    started: Instant,
    stages: Mutex<Vec<Arc<Stage>>>,
    watched: Mutex<Vec<(String, JoinHandle<()>)>>,
    stopping: AtomicBool,
    faults: Vec<(String, Fault)>,
    /// Where the silent stages are shown (`/livez`).
    board: Mutex<Option<HealthBoard>>,
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A stage ended while the appliance runs: nothing can take its place.
    fn ended(&self, name: &str) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        tracing::error!(
            stage = name,
            "a stage of the appliance ended; stopping so that the service is restarted"
        );
        std::process::exit(EXIT_STAGE_FAILED);
    }
}

/// The supervisor of one running appliance. Cloning shares it.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

/// A stage's heartbeat: `beat` at least once per allowed silence, also
/// while idle.
pub struct Heartbeat {
    stage: Arc<Stage>,
    inner: Arc<Inner>,
}

impl Heartbeat {
    pub fn beat(&self) {
        let due = self
            .stage
            .fault
            .filter(|f| self.stage.started.elapsed() >= f.after);
        match due.map(|f| f.kind) {
            Some(FaultKind::Panic) => panic!("fault injected: stage {} panics", self.stage.name),
            Some(FaultKind::Stall) => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
            _ => {}
        }
        self.stage
            .beat_ms
            .store(self.inner.now_ms(), Ordering::Relaxed);
    }
}

/// Marks its stage ended when the stage's function returns.
struct EndGuard {
    name: String,
    inner: Arc<Inner>,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.inner.ended(&self.name);
    }
}

impl Supervisor {
    /// A supervisor with the faults `HEADCOUNT_FAULT_STAGE` asks for.
    pub fn from_environment() -> anyhow::Result<Supervisor> {
        let faults = match std::env::var("HEADCOUNT_FAULT_STAGE") {
            Ok(text) => parse_faults(&text).with_context(|| {
                format!("HEADCOUNT_FAULT_STAGE: `{text}` is not stage:panic|end|stall[@SECONDS]")
            })?,
            Err(_) => Vec::new(),
        };
        Ok(Supervisor::with_faults(faults))
    }

    fn with_faults(faults: Vec<(String, Fault)>) -> Supervisor {
        let inner = Arc::new(Inner {
            started: Instant::now(),
            stages: Mutex::default(),
            watched: Mutex::default(),
            stopping: AtomicBool::new(false),
            faults,
            board: Mutex::default(),
        });
        let watcher = Arc::downgrade(&inner);
        // Ends with the last handle on the supervisor.
        let _ = std::thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || loop {
                std::thread::sleep(WATCH_EVERY);
                let Some(inner) = watcher.upgrade() else {
                    return;
                };
                let ended = lock(&inner.watched)
                    .iter()
                    .find(|(_, thread)| thread.is_finished())
                    .map(|(name, _)| name.clone());
                if let Some(name) = ended {
                    inner.ended(&name);
                }
                let board = lock(&inner.board).clone();
                if let Some(board) = board {
                    board.set_silent_stages(silent(&inner));
                }
            });
        Supervisor { inner }
    }

    /// Starts a stage on its own thread. `run` gets the stage's heartbeat;
    /// its return (before `stop`) stops the process.
    pub fn spawn(
        &self,
        name: &str,
        max_silence: Duration,
        run: impl FnOnce(Heartbeat) + Send + 'static,
    ) -> anyhow::Result<JoinHandle<()>> {
        let fault = self
            .inner
            .faults
            .iter()
            .find(|(stage, _)| stage == name)
            .map(|(_, fault)| *fault);
        let stage = Arc::new(Stage {
            name: name.to_string(),
            max_silence,
            beat_ms: AtomicU64::new(self.inner.now_ms()),
            started: Instant::now(),
            fault,
        });
        lock(&self.inner.stages).push(stage.clone());
        let heartbeat = Heartbeat {
            stage,
            inner: self.inner.clone(),
        };
        let guard = EndGuard {
            name: name.to_string(),
            inner: self.inner.clone(),
        };
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _guard = guard;
                if let Some(Fault {
                    kind: FaultKind::End,
                    after,
                }) = fault
                {
                    std::thread::sleep(after);
                    return;
                }
                heartbeat.beat();
                run(heartbeat)
            })
            .with_context(|| format!("cannot start thread {name}"))
    }

    /// Watches a thread started elsewhere: its end (before `stop`) stops
    /// the process. The supervisor keeps the handle; `stop` gives it back.
    pub fn watch(&self, name: &str, thread: JoinHandle<()>) {
        lock(&self.inner.watched).push((name.to_string(), thread));
    }

    /// The appliance is stopping: stages may end from now on. Returns the
    /// watched threads, to be joined.
    pub fn stop(&self) -> Vec<JoinHandle<()>> {
        self.inner.stopping.store(true, Ordering::SeqCst);
        lock(&self.inner.watched)
            .drain(..)
            .map(|(_, thread)| thread)
            .collect()
    }

    /// Shows the silent stages on `board` from now on, every second.
    pub fn report_to(&self, board: HealthBoard) {
        *lock(&self.inner.board) = Some(board);
    }

    /// The stages silent for longer than they may be.
    pub fn silent(&self) -> Vec<String> {
        silent(&self.inner)
    }
}

fn silent(inner: &Inner) -> Vec<String> {
    let now = inner.now_ms();
    lock(&inner.stages)
        .iter()
        .filter(|s| {
            let silence = now.saturating_sub(s.beat_ms.load(Ordering::Relaxed));
            Duration::from_millis(silence) > s.max_silence
        })
        .map(|s| s.name.clone())
        .collect()
}

fn parse_faults(text: &str) -> Option<Vec<(String, Fault)>> {
    text.split(',')
        .map(|item| {
            let (stage, fault) = item.trim().split_once(':')?;
            let (kind, after) = fault.split_once('@').unwrap_or((fault, "0"));
            let kind = match kind {
                "panic" => FaultKind::Panic,
                "end" => FaultKind::End,
                "stall" => FaultKind::Stall,
                _ => return None,
            };
            let after = Duration::from_secs(after.parse().ok()?);
            (!stage.is_empty()).then(|| (stage.to_string(), Fault { kind, after }))
        })
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_that_stops_beating_is_named_silent_and_one_that_beats_is_not() {
        let stall = Fault {
            kind: FaultKind::Stall,
            after: Duration::ZERO,
        };
        let supervisor = Supervisor::with_faults(vec![("stuck".into(), stall)]);
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        supervisor
            .spawn("busy", Duration::from_millis(200), move |heartbeat| {
                while stop_rx.recv_timeout(Duration::from_millis(20)).is_err() {
                    heartbeat.beat();
                }
            })
            .unwrap();
        supervisor
            .spawn("stuck", Duration::from_millis(200), |_| {})
            .unwrap();
        assert!(supervisor.silent().is_empty(), "{:?}", supervisor.silent());
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(supervisor.silent(), ["stuck"]);
        // Stopping first: the busy stage's end is expected then.
        supervisor.stop();
        stop_tx.send(()).unwrap();
    }

    #[test]
    fn faults_are_read_as_stage_and_kind() {
        let fault = |kind, secs| Fault {
            kind,
            after: Duration::from_secs(secs),
        };
        assert_eq!(
            parse_faults("analytics:panic@10, inference-0:end"),
            Some(vec![
                ("analytics".to_string(), fault(FaultKind::Panic, 10)),
                ("inference-0".to_string(), fault(FaultKind::End, 0))
            ])
        );
        assert_eq!(parse_faults("analytics"), None);
        assert_eq!(parse_faults("analytics:panic@soon"), None);
        assert_eq!(parse_faults("analytics:explode"), None);
        assert_eq!(parse_faults(":panic"), None);
    }
}
