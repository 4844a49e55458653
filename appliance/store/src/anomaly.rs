//! Anomalies as stored (`anomaly_event`, the events data class): opened,
//! closed and acknowledged through the writer, read by the API.

use super::{Database, StorageError};
use headcount_domain::anomaly::monitor::Change;
use headcount_domain::anomaly::{Anomaly, Finding, Kind, Severity, Transition};
use headcount_domain::clock::UnixMs;
use rusqlite::{params, OptionalExtension, Row, Transaction};

/// Which anomalies to read, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyQuery {
    /// Only those still open.
    pub open_only: bool,
    /// Only those open at or after this time (ended at or after it, or open).
    pub since: Option<UnixMs>,
    pub kind: Option<Kind>,
    pub limit: usize,
}

const COLUMNS: &str = "id, kind, subject_type, subject, started_ms, ended_ms, severity, value, threshold, explanation, acknowledged_ms, acknowledged_by";

fn anomaly(row: &Row<'_>) -> rusqlite::Result<Anomaly> {
    let text = |i: usize| row.get::<_, String>(i);
    let kind = text(1)?;
    let severity = text(6)?;
    let bad = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown {what}").into(),
        )
    };
    Ok(Anomaly {
        id: row.get(0)?,
        kind: Kind::parse(&kind).ok_or_else(|| bad(1, "anomaly kind"))?,
        subject_type: text(2)?,
        subject: text(3)?,
        started_ms: row.get(4)?,
        ended_ms: row.get(5)?,
        severity: Severity::parse(&severity).ok_or_else(|| bad(6, "severity"))?,
        value: row.get(7)?,
        threshold: row.get(8)?,
        explanation: text(9)?,
        acknowledged_ms: row.get(10)?,
        acknowledged_by: row.get(11)?,
    })
}

fn insert(
    tx: &Transaction<'_>,
    started: UnixMs,
    ended: Option<UnixMs>,
    f: &Finding,
) -> rusqlite::Result<Anomaly> {
    tx.query_row(
        &format!(
            "INSERT INTO anomaly_event (kind, subject_type, subject, started_ms, ended_ms, severity, value, threshold, explanation)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (kind, subject_type, subject, started_ms) DO UPDATE SET ended_ms = excluded.ended_ms
             RETURNING {COLUMNS}"
        ),
        params![
            f.kind.as_str(),
            f.subject.kind(),
            f.subject.name(),
            started,
            ended,
            f.severity.as_str(),
            f.value,
            f.threshold,
            f.explanation,
        ],
        anomaly,
    )
}

impl Database {
    /// Stores the monitor's changes in one transaction; returns what each
    /// did, for the notices. A close of an anomaly that is not stored (it
    /// was swept, or opened before a restart) changes nothing.
    pub fn record_anomalies(
        &mut self,
        changes: &[Change],
    ) -> Result<Vec<(Transition, Anomaly)>, StorageError> {
        self.write(|tx| {
            let mut done = Vec::new();
            for change in changes {
                match change {
                    Change::Open { started, finding } => {
                        done.push((Transition::Opened, insert(tx, *started, None, finding)?));
                    }
                    Change::Instant { at, finding } => {
                        let stored = insert(tx, *at, Some(*at), finding)?;
                        done.push((Transition::Opened, stored.clone()));
                        done.push((Transition::Closed, stored));
                    }
                    Change::Close {
                        kind,
                        subject,
                        started,
                        ended,
                    } => {
                        let closed = tx
                            .query_row(
                                &format!(
                                    "UPDATE anomaly_event SET ended_ms = ?1
                                     WHERE kind = ?2 AND subject_type = ?3 AND subject = ?4 AND started_ms = ?5 AND ended_ms IS NULL
                                     RETURNING {COLUMNS}"
                                ),
                                params![ended, kind.as_str(), subject.kind(), subject.name(), started],
                                anomaly,
                            )
                            .optional()?;
                        if let Some(closed) = closed {
                            done.push((Transition::Closed, closed));
                        }
                    }
                }
            }
            Ok(done)
        })
    }

    /// Ends, at `at`, every anomaly left open by a previous run: whoever
    /// watched it has gone. A condition that persists is raised afresh.
    pub fn close_interrupted_anomalies(
        &mut self,
        at: UnixMs,
    ) -> Result<Vec<Anomaly>, StorageError> {
        self.write(|tx| {
            let mut stmt = tx.prepare(&format!(
                "UPDATE anomaly_event SET ended_ms = max(started_ms, ?1) WHERE ended_ms IS NULL RETURNING {COLUMNS}"
            ))?;
            let rows = stmt.query_map([at], anomaly)?;
            rows.collect()
        })
    }

    /// Records who acknowledged an anomaly. `None`: no such anomaly;
    /// `Some((false, a))`: it was acknowledged before (kept as it was).
    pub fn acknowledge_anomaly(
        &mut self,
        id: i64,
        by: &str,
        at: UnixMs,
    ) -> Result<Option<(bool, Anomaly)>, StorageError> {
        self.write(|tx| {
            let updated = tx
                .query_row(
                    &format!(
                        "UPDATE anomaly_event SET acknowledged_ms = ?2, acknowledged_by = ?3
                         WHERE id = ?1 AND acknowledged_ms IS NULL RETURNING {COLUMNS}"
                    ),
                    params![id, at, by],
                    anomaly,
                )
                .optional()?;
            if let Some(a) = updated {
                return Ok(Some((true, a)));
            }
            let existing = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM anomaly_event WHERE id = ?1"),
                    [id],
                    anomaly,
                )
                .optional()?;
            Ok(existing.map(|a| (false, a)))
        })
    }

    /// Anomalies matching `query`, newest first.
    pub fn anomalies(&self, query: &AnomalyQuery) -> Result<Vec<Anomaly>, StorageError> {
        let mut sql = format!("SELECT {COLUMNS} FROM anomaly_event WHERE 1");
        if query.open_only {
            sql.push_str(" AND ended_ms IS NULL");
        }
        if query.since.is_some() {
            sql.push_str(" AND (ended_ms IS NULL OR ended_ms >= ?1)");
        } else {
            sql.push_str(" AND ?1 IS NULL");
        }
        if query.kind.is_some() {
            sql.push_str(" AND kind = ?2");
        } else {
            sql.push_str(" AND ?2 IS NULL");
        }
        sql.push_str(" ORDER BY started_ms DESC, id DESC LIMIT ?3");
        self.query(
            &sql,
            params![
                query.since,
                query.kind.map(Kind::as_str),
                query.limit as i64
            ],
            anomaly,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use headcount_domain::anomaly::Subject;
    use headcount_domain::retention::{DataClass, RetentionPolicy, HOUR_MS};

    const T: UnixMs = 1_764_000_000_000;

    fn receipt_key() -> headcount_domain::security::ReceiptKey {
        headcount_domain::security::ReceiptKey::from_bytes(&[1; 32])
    }

    fn finding(kind: Kind, subject: Subject, value: f64) -> Finding {
        Finding {
            kind,
            subject,
            severity: Severity::Warning,
            value,
            threshold: 5.0,
            explanation: format!("{value} against 5"),
        }
    }

    fn zone() -> Subject {
        Subject::Zone("lobby.door".into())
    }

    fn open(started: UnixMs) -> Change {
        Change::Open {
            started,
            finding: finding(Kind::OverCapacity, zone(), 7.0),
        }
    }

    fn close(kind: Kind, subject: Subject, started: UnixMs, ended: UnixMs) -> Change {
        Change::Close {
            kind,
            subject,
            started,
            ended,
        }
    }

    fn db(dir: &tempfile::TempDir) -> Database {
        Database::open(&dir.path().join("a.db")).unwrap()
    }

    fn all() -> AnomalyQuery {
        AnomalyQuery {
            open_only: false,
            since: None,
            kind: None,
            limit: 100,
        }
    }

    fn ids(list: &[Anomaly]) -> Vec<i64> {
        list.iter().map(|a| a.id).collect()
    }

    #[test]
    fn opens_instants_and_closes_are_stored_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = db(&dir);
        let done = db.record_anomalies(&[open(T)]).unwrap();
        assert_eq!(done.len(), 1);
        let (transition, a) = &done[0];
        assert_eq!(*transition, Transition::Opened);
        assert_eq!(
            a,
            &Anomaly {
                id: 1,
                kind: Kind::OverCapacity,
                subject_type: "zone".into(),
                subject: "lobby.door".into(),
                started_ms: T,
                ended_ms: None,
                severity: Severity::Warning,
                value: 7.0,
                threshold: 5.0,
                explanation: "7 against 5".into(),
                acknowledged_ms: None,
                acknowledged_by: None,
            }
        );

        // An instant: opened and closed at once, one row.
        let line = Subject::Line("lobby.entrance".into());
        let done = db
            .record_anomalies(&[Change::Instant {
                at: T + 10,
                finding: finding(Kind::WrongWay, line.clone(), 1.0),
            }])
            .unwrap();
        let transitions: Vec<_> = done.iter().map(|(t, a)| (*t, a.id)).collect();
        assert_eq!(
            transitions,
            [(Transition::Opened, 2), (Transition::Closed, 2)]
        );
        assert_eq!(done[0].1.started_ms, T + 10);
        assert_eq!(done[0].1.ended_ms, Some(T + 10));
        assert_eq!(done[0].1.subject_type, "line");

        // A close of something never stored (another start, another
        // subject) changes nothing; the real close ends anomaly 1.
        let done = db
            .record_anomalies(&[
                close(Kind::OverCapacity, zone(), T - 1, T + 20),
                close(
                    Kind::OverCapacity,
                    Subject::Space("lobby.door".into()),
                    T,
                    T + 20,
                ),
                close(Kind::Loitering, zone(), T, T + 20),
                close(Kind::OverCapacity, zone(), T, T + 30),
            ])
            .unwrap();
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!(done[0].0, Transition::Closed);
        assert_eq!((done[0].1.id, done[0].1.ended_ms), (1, Some(T + 30)));
        // A second close of the same one is ignored: the end stands.
        let done = db
            .record_anomalies(&[close(Kind::OverCapacity, zone(), T, T + 99)])
            .unwrap();
        assert!(done.is_empty(), "{done:?}");
        let stored = db.anomalies(&all()).unwrap();
        assert_eq!(ids(&stored), [2, 1]);
        assert_eq!(stored[1].ended_ms, Some(T + 30));
        // The next one gets the next id.
        let done = db.record_anomalies(&[open(T + 40)]).unwrap();
        assert_eq!(done[0].1.id, 3);
    }

    /// 1: over capacity, open since T-10h; 2: loitering T-3h..T-2h;
    /// 3: over capacity T-31h..T-30h; 4: wrong way at T-1h; 5: stream loss,
    /// open since T-1h (same start as 4).
    fn seeded(dir: &tempfile::TempDir) -> Database {
        let mut db = db(dir);
        let h = HOUR_MS;
        let camera = Subject::Camera("yard".into());
        db.record_anomalies(&[
            open(T - 10 * h),
            Change::Open {
                started: T - 3 * h,
                finding: finding(Kind::Loitering, zone(), 6.0),
            },
            close(Kind::Loitering, zone(), T - 3 * h, T - 2 * h),
            Change::Open {
                started: T - 31 * h,
                finding: finding(Kind::OverCapacity, Subject::Space("hall".into()), 60.0),
            },
            close(
                Kind::OverCapacity,
                Subject::Space("hall".into()),
                T - 31 * h,
                T - 30 * h,
            ),
            Change::Instant {
                at: T - h,
                finding: finding(Kind::WrongWay, Subject::Line("lobby.entrance".into()), 1.0),
            },
            Change::Open {
                started: T - h,
                finding: finding(Kind::StreamLoss, camera, 31.0),
            },
        ])
        .unwrap();
        db
    }

    #[test]
    fn queries_filter_and_list_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = seeded(&dir);
        assert_eq!(ids(&db.anomalies(&all()).unwrap()), [5, 4, 2, 1, 3]);
        let open_only = AnomalyQuery {
            open_only: true,
            ..all()
        };
        assert_eq!(ids(&db.anomalies(&open_only).unwrap()), [5, 1]);
        // Since: ended at or after it, or still open.
        let since = |at| AnomalyQuery {
            since: Some(at),
            ..all()
        };
        assert_eq!(
            ids(&db.anomalies(&since(T - 24 * HOUR_MS)).unwrap()),
            [5, 4, 2, 1]
        );
        assert_eq!(
            ids(&db.anomalies(&since(T - 2 * HOUR_MS)).unwrap()),
            [5, 4, 2, 1]
        );
        assert_eq!(
            ids(&db.anomalies(&since(T - 2 * HOUR_MS + 1)).unwrap()),
            [5, 4, 1]
        );
        let kind = |k| AnomalyQuery {
            kind: Some(k),
            ..all()
        };
        assert_eq!(
            ids(&db.anomalies(&kind(Kind::OverCapacity)).unwrap()),
            [1, 3]
        );
        assert_eq!(ids(&db.anomalies(&kind(Kind::WrongWay)).unwrap()), [4]);
        assert!(db.anomalies(&kind(Kind::CounterDrift)).unwrap().is_empty());
        let limited = AnomalyQuery { limit: 2, ..all() };
        assert_eq!(ids(&db.anomalies(&limited).unwrap()), [5, 4]);
        // Filters combine.
        let combined = AnomalyQuery {
            open_only: true,
            kind: Some(Kind::OverCapacity),
            since: Some(T - 24 * HOUR_MS),
            limit: 10,
        };
        assert_eq!(ids(&db.anomalies(&combined).unwrap()), [1]);
    }

    #[test]
    fn the_first_acknowledgement_stands() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = seeded(&dir);
        let (fresh, a) = db.acknowledge_anomaly(2, "facilities", T).unwrap().unwrap();
        assert!(fresh);
        assert_eq!(a.id, 2);
        assert_eq!(a.acknowledged_ms, Some(T));
        assert_eq!(a.acknowledged_by.as_deref(), Some("facilities"));
        let (fresh, a) = db.acknowledge_anomaly(2, "admin", T + 5).unwrap().unwrap();
        assert!(!fresh);
        assert_eq!(
            (a.acknowledged_ms, a.acknowledged_by.as_deref()),
            (Some(T), Some("facilities"))
        );
        assert_eq!(db.acknowledge_anomaly(99, "admin", T).unwrap(), None);
        // Only anomaly 2 was touched.
        let acked: Vec<_> = db
            .anomalies(&all())
            .unwrap()
            .into_iter()
            .filter(|a| a.acknowledged_ms.is_some())
            .map(|a| a.id)
            .collect();
        assert_eq!(acked, [2]);
        // An open anomaly can be acknowledged, and stays open.
        let (_, a) = db.acknowledge_anomaly(1, "admin", T).unwrap().unwrap();
        assert_eq!(a.ended_ms, None);
    }

    #[test]
    fn anomalies_left_open_by_a_previous_run_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = seeded(&dir);
        // Anomaly 5 started at T-1h: closing "at" T-2h never ends it
        // before it started.
        let closed = db.close_interrupted_anomalies(T - 2 * HOUR_MS).unwrap();
        let mut ends: Vec<_> = closed.iter().map(|a| (a.id, a.ended_ms)).collect();
        ends.sort();
        assert_eq!(ends, [(1, Some(T - 2 * HOUR_MS)), (5, Some(T - HOUR_MS))]);
        assert!(db
            .anomalies(&AnomalyQuery {
                open_only: true,
                ..all()
            })
            .unwrap()
            .is_empty());
        // Ended ones kept their ends; nothing left to close.
        let stored = db.anomalies(&all()).unwrap();
        let end_of = |id| stored.iter().find(|a| a.id == id).unwrap().ended_ms;
        assert_eq!(end_of(2), Some(T - 2 * HOUR_MS));
        assert_eq!(end_of(3), Some(T - 30 * HOUR_MS));
        assert!(db.close_interrupted_anomalies(T).unwrap().is_empty());
        // The next run's close of a closed one is ignored.
        let done = db
            .record_anomalies(&[close(Kind::OverCapacity, zone(), T - 10 * HOUR_MS, T)])
            .unwrap();
        assert!(done.is_empty());
    }

    #[test]
    fn the_sweep_deletes_anomalies_ended_past_their_lifetime_with_a_receipt() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = db(&dir);
        let h = HOUR_MS;
        let space = |name: &str| Subject::Space(name.into());
        let opened = |name: &str, started| Change::Open {
            started,
            finding: finding(Kind::AfterHours, space(name), 2.0),
        };
        let ended =
            |name: &str, started, ended| close(Kind::AfterHours, space(name), started, ended);
        db.record_anomalies(&[
            // Ended 73 h ago: gone.
            opened("old", T - 80 * h),
            ended("old", T - 80 * h, T - 73 * h),
            // Ended exactly 72 h ago: kept (the cutoff is exclusive).
            opened("edge", T - 75 * h),
            ended("edge", T - 75 * h, T - 72 * h),
            // Ended 71 h ago: kept.
            opened("recent", T - 90 * h),
            ended("recent", T - 90 * h, T - 71 * h),
            // Open for 100 h: kept, however old.
            opened("open", T - 100 * h),
        ])
        .unwrap();
        let receipts = db
            .sweep(T, &RetentionPolicy::default(), &receipt_key())
            .unwrap();
        assert_eq!(receipts.len(), 1, "{receipts:?}");
        let r = &receipts[0];
        assert_eq!(
            (r.class, r.from, r.to, r.rows),
            (DataClass::Events, Some(T - 73 * h), T - 72 * h, 1)
        );
        let left: Vec<_> = db
            .anomalies(&all())
            .unwrap()
            .into_iter()
            .map(|a| a.subject)
            .collect();
        assert_eq!(left, ["edge", "recent", "open"].map(String::from));
        // The receipt is in the audit log, for the events class.
        let logged = db.deletion_receipts(10).unwrap();
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert_eq!(logged[0].target, "events");
        assert_eq!(logged[0].rows, 1);
        assert_eq!(logged[0].actor, crate::audit::RETENTION_ACTOR);
        assert_eq!(logged[0].detail["hmac_sha256"], r.digest);
        assert_eq!(logged[0].detail["to"], T - 72 * h);
        let (swept_at, cutoff, rows): (i64, i64, i64) = db
            .conn
            .query_row(
                "SELECT swept_at, cutoff, rows FROM retention_sweep WHERE class = 'events'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((swept_at, cutoff, rows), (T, T - 72 * h, 1));
        let overview = db.retention_overview().unwrap();
        let events = overview
            .iter()
            .find(|c| c.class == DataClass::Events)
            .unwrap();
        assert_eq!((events.rows, events.oldest), (3, Some(T - 100 * h)));
        // A second sweep at the same time finds nothing more.
        assert!(db
            .sweep(T, &RetentionPolicy::default(), &receipt_key())
            .unwrap()
            .is_empty());
        // A millisecond later, "edge" and nothing else has aged out.
        let receipts = db
            .sweep(T + 1, &RetentionPolicy::default(), &receipt_key())
            .unwrap();
        assert_eq!(receipts.len(), 1);
        assert_eq!(receipts[0].rows, 1);
        assert_eq!(db.anomalies(&all()).unwrap().len(), 2);
    }

    #[test]
    fn a_migrated_database_stores_anomalies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE keep_me (x INTEGER);")
            .unwrap();
        let mut db = Database::open(&path).unwrap();
        let done = db.record_anomalies(&[open(T)]).unwrap();
        assert_eq!(done[0].1.id, 1);
        assert_eq!(ids(&db.anomalies(&all()).unwrap()), [1]);
    }

    mod writer {
        use super::*;
        use crate::{Announce, Writer};
        use headcount_domain::anomaly::Notice;
        use tokio::sync::broadcast::{self, error::TryRecvError};

        fn recv(rx: &mut broadcast::Receiver<Notice>) -> Notice {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                match rx.try_recv() {
                    Ok(n) => return n,
                    Err(TryRecvError::Empty) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(5))
                    }
                    Err(e) => panic!("no notice: {e:?}"),
                }
            }
        }

        #[test]
        fn notices_go_out_once_stored() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("w.db");
            let (notices, mut rx) = broadcast::channel(16);
            let (writer, thread) = Writer::spawn_announcing(
                Database::open(&path).unwrap(),
                None,
                Some(Announce {
                    site: "hq".into(),
                    notices,
                }),
            )
            .unwrap();
            let reader = Database::open(&path).unwrap();
            // Nothing to store: nothing queued, nothing announced.
            assert!(writer.anomalies_blocking(vec![]));
            assert!(writer.anomalies_blocking(vec![open(T)]));
            let n = recv(&mut rx);
            assert_eq!((n.site.as_str(), n.transition), ("hq", Transition::Opened));
            assert_eq!((n.anomaly.id, n.anomaly.ended_ms), (1, None));
            // Announced only once stored: another connection sees it.
            assert_eq!(
                reader.anomalies(&all()).unwrap(),
                std::slice::from_ref(&n.anomaly)
            );

            // An instant: opened, then closed, the same anomaly.
            assert!(writer.anomalies_blocking(vec![Change::Instant {
                at: T + 5,
                finding: finding(Kind::WrongWay, Subject::Line("lobby.entrance".into()), 2.0),
            }]));
            let a = recv(&mut rx);
            let b = recv(&mut rx);
            assert_eq!(
                (a.transition, b.transition),
                (Transition::Opened, Transition::Closed)
            );
            assert_eq!((a.anomaly.id, b.anomaly.id), (2, 2));
            assert_eq!(b.anomaly.ended_ms, Some(T + 5));
            assert_eq!(b.site, "hq");

            // A close of something unknown announces nothing; a real one does.
            assert!(writer.anomalies_blocking(vec![
                close(Kind::OverCapacity, zone(), T - 1, T + 9),
                close(Kind::OverCapacity, zone(), T, T + 10),
            ]));
            let c = recv(&mut rx);
            assert_eq!(c.transition, Transition::Closed);
            assert_eq!((c.anomaly.id, c.anomaly.ended_ms), (1, Some(T + 10)));

            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let acked = runtime
                .block_on(writer.acknowledge(1, "facilities".into(), T + 20))
                .unwrap()
                .unwrap();
            assert_eq!(acked.acknowledged_by.as_deref(), Some("facilities"));
            let d = recv(&mut rx);
            assert_eq!(
                (d.site.as_str(), d.transition, d.anomaly.id),
                ("hq", Transition::Acknowledged, 1)
            );
            assert_eq!(d.anomaly.acknowledged_ms, Some(T + 20));
            // A second acknowledgement keeps the first and is not announced
            // (the reply comes after any notice would have been sent).
            let again = runtime
                .block_on(writer.acknowledge(1, "admin".into(), T + 30))
                .unwrap()
                .unwrap();
            assert_eq!(again.acknowledged_by.as_deref(), Some("facilities"));
            assert_eq!(again.acknowledged_ms, Some(T + 20));
            assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
            // An unknown id: None, nothing announced.
            let none = runtime
                .block_on(writer.acknowledge(42, "admin".into(), T))
                .unwrap();
            assert_eq!(none, None);
            assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);

            writer.stop_blocking();
            drop(writer);
            thread.join().unwrap();
        }
    }
}
