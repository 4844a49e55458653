//! Identical reads coalesced, so that a dashboard polling one route does not
//! grow the audit log by an entry a request. The writer thread owns one
//! `Coalescer`.
//!
//! Reads by one token with the same route, path, query, status and action
//! in one window (the UTC minute in the service) are one kind. The first of
//! a kind in its window is written durably before its answer leaves, like
//! any entry; the repeats are only counted in memory, and once the window
//! has closed they are written as one entry whose detail carries `count`
//! (the repeats it stands for, their rows summed), `from_ms` and `to_ms`
//! (the window). A crash loses only the counts of windows not yet written:
//! the open one, and one that closed since the writer's last pass (the
//! writer flushes on its next request; the maintenance pass comes every
//! minute). Never the first read of a kind.
//!
//! Requests refused by the per-token rate limit are counted the same way,
//! per token and minute, with no entry of their own.

use super::{AuditAction, AuditEntry};
use headcount_domain::clock::UnixMs;
use std::collections::{HashMap, HashSet};

/// The window the service coalesces reads in.
pub const READ_WINDOW_MS: i64 = 60_000;
/// Refusals are counted per token and minute, whatever the read window.
const REFUSAL_WINDOW_MS: i64 = 60_000;
/// The target of the entry counting a token's refused requests.
const RATE_LIMITED_TARGET: &str = "rate limit";
/// Kinds of read tracked at once: beyond it, a new kind is written on its
/// own as with coalescing off, so that memory stays bounded.
const MAX_OPEN: usize = 10_000;

/// What makes two entries the same kind in one window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Kind {
    window_start: UnixMs,
    window_ms: i64,
    actor: String,
    role: String,
    action: AuditAction,
    target: String,
    detail: String,
}

impl Kind {
    fn of(entry: &AuditEntry, at: UnixMs, window_ms: i64) -> Kind {
        Kind {
            window_start: at.div_euclid(window_ms) * window_ms,
            window_ms,
            actor: entry.actor.clone(),
            role: entry.role.clone(),
            action: entry.action,
            target: entry.target.clone(),
            detail: entry.detail.to_string(),
        }
    }

    fn window_end(&self) -> UnixMs {
        self.window_start.saturating_add(self.window_ms)
    }
}

/// What becomes of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Admission {
    /// Written now, before its answer; later reads of its kind (if any)
    /// are counted as its repeats.
    Write(Option<Kind>),
    /// Counted once the batch it came in is durable.
    Repeat(Kind),
}

/// Counts waiting for their window to close.
struct Pending {
    entry: AuditEntry,
    count: u64,
    rows: u64,
}

pub(super) struct Coalescer {
    /// 0: every read is written on its own.
    read_window_ms: i64,
    open: HashMap<Kind, Pending>,
    /// The end of the earliest open window: before it, nothing is due.
    next_due: Option<UnixMs>,
}

impl Coalescer {
    pub(super) fn new(read_window_ms: i64) -> Coalescer {
        Coalescer {
            read_window_ms: read_window_ms.max(0),
            open: HashMap::new(),
            next_due: None,
        }
    }

    fn insert(&mut self, kind: Kind, entry: AuditEntry) -> &mut Pending {
        let end = kind.window_end();
        self.next_due = Some(self.next_due.map_or(end, |due| due.min(end)));
        self.open.entry(kind).or_insert(Pending {
            entry,
            count: 0,
            rows: 0,
        })
    }

    /// Decides a read at `at`, without changing anything: the batch it came
    /// in may still fail. `batch` holds the kinds admitted for writing in
    /// the same batch, whose repeats count too.
    pub(super) fn admit(
        &self,
        at: UnixMs,
        entry: &AuditEntry,
        batch: &mut HashSet<Kind>,
    ) -> Admission {
        if self.read_window_ms == 0 {
            return Admission::Write(None);
        }
        let kind = Kind::of(entry, at, self.read_window_ms);
        if self.open.contains_key(&kind) || batch.contains(&kind) {
            return Admission::Repeat(kind);
        }
        if self.open.len() + batch.len() >= MAX_OPEN {
            return Admission::Write(None);
        }
        batch.insert(kind.clone());
        Admission::Write(Some(kind))
    }

    /// Takes in a read admitted by `admit`, once its batch is durable.
    pub(super) fn confirm(&mut self, admission: Admission, entry: &AuditEntry) {
        match admission {
            Admission::Write(None) => {}
            Admission::Write(Some(kind)) => {
                self.insert(kind, entry.clone());
            }
            Admission::Repeat(kind) => {
                if let Some(pending) = self.open.get_mut(&kind) {
                    pending.count += 1;
                    pending.rows = pending.rows.saturating_add(entry.rows);
                }
            }
        }
    }

    /// Counts a request the rate limit refused.
    pub(super) fn refused(&mut self, at: UnixMs, entry: AuditEntry) {
        let kind = Kind::of(&entry, at, REFUSAL_WINDOW_MS);
        self.insert(kind, entry).count += 1;
    }

    /// The entries of the windows closed by `now` that counted anything.
    pub(super) fn closed(&self, now: UnixMs) -> Vec<AuditEntry> {
        if self.next_due.is_none_or(|due| due > now) {
            return Vec::new();
        }
        let mut closed: Vec<(&Kind, &Pending)> = self
            .open
            .iter()
            .filter(|(kind, pending)| kind.window_end() <= now && pending.count > 0)
            .collect();
        // In time order, so the log reads in order.
        closed.sort_by(|a, b| {
            (a.0.window_start, &a.0.actor, &a.0.target, &a.0.detail).cmp(&(
                b.0.window_start,
                &b.0.actor,
                &b.0.target,
                &b.0.detail,
            ))
        });
        closed
            .into_iter()
            .map(|(kind, pending)| counted(kind, pending))
            .collect()
    }

    /// Forgets the windows closed by `now`, once `closed(now)` is written.
    pub(super) fn forget_closed(&mut self, now: UnixMs) {
        if self.next_due.is_none_or(|due| due > now) {
            return;
        }
        self.open.retain(|kind, _| kind.window_end() > now);
        self.next_due = self.open.keys().map(Kind::window_end).min();
    }

    pub(super) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// The entry standing for a window's repeats (or refusals).
fn counted(kind: &Kind, pending: &Pending) -> AuditEntry {
    let window = [
        ("count", serde_json::Value::from(pending.count)),
        ("from_ms", kind.window_start.into()),
        ("to_ms", kind.window_end().into()),
    ];
    let detail = match pending.entry.detail.clone() {
        serde_json::Value::Object(mut fields) => {
            for (key, value) in window {
                fields.insert(key.into(), value);
            }
            serde_json::Value::Object(fields)
        }
        other => {
            let mut fields: serde_json::Map<String, serde_json::Value> = window
                .into_iter()
                .map(|(key, value)| (key.to_string(), value))
                .collect();
            fields.insert("detail".into(), other);
            serde_json::Value::Object(fields)
        }
    };
    AuditEntry {
        rows: pending.rows,
        detail,
        ..pending.entry.clone()
    }
}

/// The entry a refused request of `actor` (`role`) is counted under.
pub(super) fn refusal(actor: String, role: String) -> AuditEntry {
    AuditEntry {
        actor,
        role,
        action: AuditAction::ApiAccess,
        target: RATE_LIMITED_TARGET.into(),
        rows: 0,
        detail: serde_json::json!({ "status": 429 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: UnixMs = 1_764_000_000_000; // on a minute boundary

    fn read(actor: &str, query: &str, status: u16, rows: u64) -> AuditEntry {
        AuditEntry {
            actor: actor.into(),
            role: "facilities".into(),
            action: AuditAction::ApiAccess,
            target: "GET /api/v1/occupancy".into(),
            rows,
            detail: serde_json::json!({ "status": status, "query": query }),
        }
    }

    /// Admits and confirms `entry` alone in its batch; whether it was written.
    fn take(c: &mut Coalescer, at: UnixMs, entry: &AuditEntry) -> bool {
        let admission = c.admit(at, entry, &mut HashSet::new());
        let written = matches!(admission, Admission::Write(_));
        c.confirm(admission, entry);
        written
    }

    #[test]
    fn identical_reads_in_a_minute_are_one_entry_and_one_count() {
        let mut c = Coalescer::new(READ_WINDOW_MS);
        let e = read("token:a", "", 200, 3);
        assert!(take(&mut c, T + 1_000, &e));
        for i in 0..9 {
            assert!(!take(&mut c, T + 2_000 + i, &e));
        }
        // Not closed yet: nothing to write.
        assert!(c.closed(T + 59_999).is_empty());
        let closed = c.closed(T + 60_000);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].rows, 27);
        assert_eq!(closed[0].target, e.target);
        assert_eq!(
            closed[0].detail,
            serde_json::json!({ "status": 200, "query": "", "count": 9, "from_ms": T, "to_ms": T + 60_000 })
        );
        c.forget_closed(T + 60_000);
        assert!(c.is_empty());
        // The next minute starts again with a written first read.
        assert!(take(&mut c, T + 60_000, &e));
    }

    #[test]
    fn another_token_query_or_status_is_another_kind() {
        let mut c = Coalescer::new(READ_WINDOW_MS);
        for e in [
            read("token:a", "", 200, 1),
            read("token:b", "", 200, 1),
            read("token:a", "zone=x", 200, 1),
            read("token:a", "", 404, 0),
        ] {
            assert!(take(&mut c, T, &e), "{e:?}");
        }
        // Kinds that were never repeated leave nothing to write.
        assert!(c.closed(T + 60_000).is_empty());
    }

    #[test]
    fn repeats_in_the_first_reads_batch_count_only_once_it_is_durable() {
        let mut c = Coalescer::new(READ_WINDOW_MS);
        let e = read("token:a", "", 200, 1);
        let mut batch = HashSet::new();
        let first = c.admit(T, &e, &mut batch);
        let second = c.admit(T, &e, &mut batch);
        assert!(matches!(first, Admission::Write(Some(_))));
        assert!(matches!(second, Admission::Repeat(_)));
        // The batch failed: nothing was taken in, the next read is a first.
        assert!(c.is_empty());
        assert!(take(&mut c, T, &e));
        c.confirm(second, &e);
        assert_eq!(c.closed(T + 60_000)[0].detail["count"], 1);
    }

    #[test]
    fn with_the_window_off_every_read_is_written() {
        let mut c = Coalescer::new(0);
        let e = read("token:a", "", 200, 1);
        for _ in 0..3 {
            assert!(take(&mut c, T, &e));
        }
        assert!(c.is_empty());
    }

    #[test]
    fn refusals_are_counted_per_token_and_minute_without_a_first_entry() {
        let mut c = Coalescer::new(0);
        for i in 0..5 {
            c.refused(T + i, refusal("token:a".into(), "planner".into()));
        }
        c.refused(T + 61_000, refusal("token:a".into(), "planner".into()));
        c.refused(T, refusal("token:b".into(), "planner".into()));
        let closed = c.closed(T + 60_000);
        assert_eq!(closed.len(), 2);
        assert_eq!(closed[0].actor, "token:a");
        assert_eq!(closed[0].target, RATE_LIMITED_TARGET);
        assert_eq!(closed[0].detail["count"], 5);
        assert_eq!(closed[0].detail["status"], 429);
        assert_eq!(closed[1].detail["count"], 1);
        c.forget_closed(T + 60_000);
        assert_eq!(c.closed(T + 120_000)[0].detail["count"], 1);
    }

    #[test]
    fn kinds_beyond_the_limit_are_written_on_their_own() {
        let mut c = Coalescer::new(READ_WINDOW_MS);
        for i in 0..MAX_OPEN {
            assert!(take(&mut c, T, &read("token:a", &i.to_string(), 200, 0)));
        }
        let extra = read("token:a", "extra", 200, 0);
        assert!(take(&mut c, T, &extra));
        assert!(take(&mut c, T, &extra), "untracked: written again");
        assert_eq!(c.open.len(), MAX_OPEN);
    }
}
