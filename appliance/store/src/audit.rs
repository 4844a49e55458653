//! The audit log, the data-protection officer's record of who read, changed,
//! exported or deleted what, and when. It is tamper-evident rather than
//! tamper-proof: anyone who can write the database can change it, but not
//! without `verify_audit` noticing.
//!
//! - Every entry's hash is SHA-256 over the previous entry's hash and a
//!   length-prefixed encoding of all its fields, so a changed entry no longer
//!   matches its hash, and one changed and re-hashed no longer links to the
//!   next. Seqs run without gaps, so a removed entry leaves one.
//! - Checkpoints: the device's audit key signs an entry's (seq, hash), which
//!   vouches for the whole chain up to it. A chain rewritten consistently
//!   from some entry on, or cut short at the end, is caught only by a
//!   checkpoint at or after that entry: the appliance signs one regularly.
//! - Retention removes a prefix of the log; the anchor keeps the seq and
//!   hash of the last entry removed, and a deletion receipt appended in the
//!   same transaction records them in the chain, so a prefix removed by hand
//!   (with a forged anchor) is caught too. The receipt's digest of the
//!   removed entries is keyed (HMAC-SHA256 under the device's receipt key),
//!   like every deletion receipt.

use super::{Database, StorageError};
use headcount_domain::clock::UnixMs;
use headcount_domain::security::{to_hex, AuditKey, ReceiptKey};
use ring::digest::{Context, SHA256};
use rusqlite::types::ValueRef;
use rusqlite::{params, OptionalExtension, Transaction};
use std::collections::HashMap;
use std::fmt;

/// The previous hash of the first entry.
const GENESIS: [u8; 32] = [0; 32];
/// Domain separation: an entry's hash input can never be a checkpoint's.
const ENTRY_TAG: &[u8] = b"headcount audit entry v1";
const CHECKPOINT_TAG: &[u8] = b"headcount audit checkpoint v1";
/// The role of what the appliance does by itself, such as retention.
pub const SYSTEM_ROLE: &str = "system";
/// The actor of the deletion receipts `sweep_audit_before` writes.
pub const RETENTION_ACTOR: &str = "retention";
/// The target of a deletion receipt for the audit log itself.
pub const AUDIT_LOG_TARGET: &str = "audit_log";
/// The detail key of a deletion receipt's digest: HMAC-SHA256 under the
/// receipt key, hex.
pub const RECEIPT_DIGEST: &str = "hmac_sha256";

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A read through the API.
    ApiAccess,
    /// A token created, rotated or revoked.
    TokenChange,
    ConfigChange,
    Export,
    /// Data removed, by retention or on request; `rows` says how much.
    Deletion,
}

impl AuditAction {
    pub const ALL: [AuditAction; 5] = [
        AuditAction::ApiAccess,
        AuditAction::TokenChange,
        AuditAction::ConfigChange,
        AuditAction::Export,
        AuditAction::Deletion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::ApiAccess => "api_access",
            AuditAction::TokenChange => "token_change",
            AuditAction::ConfigChange => "config_change",
            AuditAction::Export => "export",
            AuditAction::Deletion => "deletion",
        }
    }
}

impl std::str::FromStr for AuditAction {
    type Err = String;
    fn from_str(s: &str) -> Result<AuditAction, String> {
        AuditAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not an audit action"))
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Token pseudonym (`token:<id>`, never the holder's name), or the
    /// appliance part that acted (`RETENTION_ACTOR`).
    pub actor: String,
    /// The actor's role, or `SYSTEM_ROLE`.
    pub role: String,
    pub action: AuditAction,
    /// Route, token pseudonym or data class acted on.
    pub target: String,
    /// Rows read, changed or deleted.
    pub rows: u64,
    /// Anything else worth knowing. Never personal data.
    pub detail: serde_json::Value,
}

/// An entry as stored, for the DPO API.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub at_ms: UnixMs,
    pub actor: String,
    pub role: String,
    /// Kept as text: an entry written by a later version, or altered, is
    /// still shown as it is.
    pub action: String,
    pub target: String,
    pub rows: u64,
    pub detail: serde_json::Value,
    /// The entry's hash (hex), to compare with a verifier's.
    pub hash: String,
}

/// What a retention sweep of the audit log removed: what its deletion
/// receipt records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSweep {
    pub rows: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// The hash of the last entry removed, which the oldest kept entry links to.
    pub last_hash: Vec<u8>,
    /// HMAC-SHA256 under the receipt key over the removed entries' hashes,
    /// in seq order.
    pub digest: [u8; 32],
    pub cutoff_ms: UnixMs,
}

impl AuditSweep {
    /// The deletion receipt to append in the sweep's transaction. Its
    /// `last_seq` and `last_hash` are what `verify_audit` matches against the
    /// anchor: without such a receipt, a log that starts late was cut by hand.
    pub fn receipt(&self, actor: &str, role: &str) -> AuditEntry {
        AuditEntry {
            actor: actor.to_string(),
            role: role.to_string(),
            action: AuditAction::Deletion,
            target: AUDIT_LOG_TARGET.to_string(),
            rows: self.rows,
            detail: serde_json::json!({
                "first_seq": self.first_seq,
                "last_seq": self.last_seq,
                "last_hash": to_hex(&self.last_hash),
                RECEIPT_DIGEST: to_hex(&self.digest),
                "cutoff_ms": self.cutoff_ms,
            }),
        }
    }
}

/// What `verify_audit` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditProblem {
    /// An entry's contents no longer match its stored hash.
    Altered { seq: u64 },
    /// An entry's link to the previous entry's hash is broken while both
    /// match their contents: one was altered and re-hashed.
    BrokenLink { seq: u64 },
    /// Entries `after + 1 ..= before - 1` are missing.
    Removed { after: u64, before: u64 },
    /// A checkpoint whose signature does not verify with the audit key.
    BadSignature { seq: u64 },
    /// A validly signed checkpoint whose hash is not the entry's.
    CheckpointMismatch { seq: u64 },
    /// A validly signed checkpoint names an entry past the end of the log.
    Truncated { last_seq: u64, checkpoint_seq: u64 },
    /// The log starts after entry `seq` (the anchor), but no deletion
    /// receipt in the log records that retention removed up to it.
    UnrecordedSweep { seq: u64 },
    /// An entry at or before the anchor, where retention left none.
    Stray { seq: i64 },
}

impl AuditProblem {
    /// Where in the log the problem lies, for ordering.
    fn position(&self) -> i128 {
        match *self {
            AuditProblem::Altered { seq }
            | AuditProblem::BrokenLink { seq }
            | AuditProblem::BadSignature { seq }
            | AuditProblem::CheckpointMismatch { seq }
            | AuditProblem::UnrecordedSweep { seq } => i128::from(seq),
            AuditProblem::Removed { after, .. } => i128::from(after) + 1,
            AuditProblem::Truncated { last_seq, .. } => i128::from(last_seq) + 1,
            AuditProblem::Stray { seq } => i128::from(seq),
        }
    }
}

impl fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AuditProblem::Altered { seq } => write!(
                f,
                "entry {seq} was altered: its contents no longer match its hash"
            ),
            AuditProblem::BrokenLink { seq } if seq <= 1 => write!(
                f,
                "entry {seq} does not start the chain: it was altered and its hash recomputed"
            ),
            AuditProblem::BrokenLink { seq } => write!(
                f,
                "the chain is broken between entries {} and {seq}: one of them was altered and its hash recomputed",
                seq - 1
            ),
            AuditProblem::Removed { after, before } => {
                let (first, last) = (after + 1, before.saturating_sub(1));
                if first == last {
                    write!(f, "entry {first} was removed")?;
                } else {
                    write!(f, "entries {first}\u{2013}{last} were removed")?;
                }
                if after == 0 {
                    write!(f, " (the start of the log, before {before})")
                } else {
                    write!(f, " (between {after} and {before})")
                }
            }
            AuditProblem::BadSignature { seq } => write!(
                f,
                "the checkpoint at entry {seq} has a signature that does not verify with the audit key: it was forged or altered"
            ),
            AuditProblem::CheckpointMismatch { seq } => write!(
                f,
                "the signed checkpoint at entry {seq} does not match the log: entries up to {seq} were rewritten after it was signed"
            ),
            AuditProblem::Truncated {
                last_seq,
                checkpoint_seq,
            } => {
                if last_seq == 0 {
                    write!(f, "the log is empty")?;
                } else {
                    write!(f, "the log ends at entry {last_seq}")?;
                }
                write!(
                    f,
                    ", but a signed checkpoint vouches for entry {checkpoint_seq}: entries {}\u{2013}{checkpoint_seq} (at least) were removed from its end",
                    last_seq + 1
                )
            }
            AuditProblem::UnrecordedSweep { seq } => write!(
                f,
                "the log starts after entry {seq}, but no deletion receipt in it records that retention removed entries up to {seq}: they were removed by hand"
            ),
            AuditProblem::Stray { seq } => write!(
                f,
                "entry {seq} lies before the start of the kept log, where retention left none: it was added by hand"
            ),
        }
    }
}

/// The outcome of `verify_audit`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditReport {
    /// Entries checked.
    pub entries: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The last entry retention removed, when it has removed any.
    pub anchor_seq: Option<u64>,
    /// In log order.
    pub problems: Vec<AuditProblem>,
}

impl AuditReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// An entry's fields as hashed. Text as bytes and numbers as stored, so
/// that a row altered into something `append_audit` never writes (text
/// that is not UTF-8, a negative count) still hashes.
struct Fields<'a> {
    seq: i64,
    at_ms: i64,
    actor: &'a [u8],
    role: &'a [u8],
    action: &'a [u8],
    target: &'a [u8],
    rows: i64,
    detail: &'a [u8],
}

impl Fields<'_> {
    /// SHA-256 over `prev` and each field with its length before it, so no
    /// two different entries encode the same.
    fn hash(&self, prev: &[u8]) -> [u8; 32] {
        let (seq, at_ms, rows) = (
            self.seq.to_be_bytes(),
            self.at_ms.to_be_bytes(),
            self.rows.to_be_bytes(),
        );
        let mut ctx = Context::new(&SHA256);
        ctx.update(prev);
        for field in [
            ENTRY_TAG,
            &seq,
            &at_ms,
            self.actor,
            self.role,
            self.action,
            self.target,
            &rows,
            self.detail,
        ] {
            ctx.update(&(field.len() as u64).to_be_bytes());
            ctx.update(field);
        }
        digest32(ctx)
    }
}

fn digest32(ctx: Context) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// What a checkpoint signs.
fn checkpoint_message(seq: i64, at_ms: i64, hash: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(128);
    for field in [
        CHECKPOINT_TAG,
        &seq.to_be_bytes(),
        &at_ms.to_be_bytes(),
        hash,
    ] {
        message.extend_from_slice(&(field.len() as u64).to_be_bytes());
        message.extend_from_slice(field);
    }
    message
}

fn sql_int(n: u64) -> rusqlite::Result<i64> {
    i64::try_from(n).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// The last seq in use and the hash the next entry links to. The seq is past
/// any a checkpoint or the anchor names, so entries removed from the end are
/// never reused but stay a visible gap.
fn tail(conn: &rusqlite::Connection) -> rusqlite::Result<(i64, Vec<u8>)> {
    let last: i64 = conn.query_row(
        "SELECT max((SELECT coalesce(max(seq), 0) FROM audit_log),
                    (SELECT coalesce(max(seq), 0) FROM audit_checkpoint),
                    (SELECT coalesce(max(seq), 0) FROM audit_anchor))",
        [],
        |r| r.get(0),
    )?;
    let newest: Option<Vec<u8>> = conn
        .query_row(
            "SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let prev = match newest {
        Some(hash) => hash,
        None => conn
            .query_row("SELECT hash FROM audit_anchor", [], |r| r.get(0))
            .optional()?
            .unwrap_or_else(|| GENESIS.to_vec()),
    };
    Ok((last, prev))
}

impl Database {
    /// Appends `entries` in one transaction; returns the seq of the last one
    /// (the newest seq in use when `entries` is empty).
    pub fn append_audit(
        &mut self,
        at_ms: UnixMs,
        entries: &[AuditEntry],
    ) -> Result<u64, StorageError> {
        self.write(|tx| {
            let last = Database::append_audit_tx(tx, at_ms, entries)?;
            Ok(last)
        })
    }

    /// `append_audit` inside a caller's transaction, so that a deletion and
    /// its receipt commit together or not at all.
    pub fn append_audit_tx(
        tx: &Transaction<'_>,
        at_ms: UnixMs,
        entries: &[AuditEntry],
    ) -> rusqlite::Result<u64> {
        let (mut seq, mut prev) = tail(tx)?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO audit_log (seq, at_ms, actor, role, action, target, rows, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for e in entries {
            seq += 1;
            let rows = sql_int(e.rows)?;
            let detail = e.detail.to_string();
            let hash = Fields {
                seq,
                at_ms,
                actor: e.actor.as_bytes(),
                role: e.role.as_bytes(),
                action: e.action.as_str().as_bytes(),
                target: e.target.as_bytes(),
                rows,
                detail: detail.as_bytes(),
            }
            .hash(&prev);
            insert.execute(params![
                seq,
                at_ms,
                e.actor,
                e.role,
                e.action.as_str(),
                e.target,
                rows,
                detail,
                prev,
                &hash[..]
            ])?;
            prev = hash.to_vec();
        }
        Ok(seq.max(0) as u64)
    }

    /// Signs the newest entry with the device's audit key, unless it is
    /// signed already; returns its seq when it signed.
    pub fn checkpoint_audit(
        &mut self,
        at_ms: UnixMs,
        key: &AuditKey,
    ) -> Result<Option<u64>, StorageError> {
        self.write(|tx| {
            let newest: Option<(i64, Vec<u8>)> = tx
                .query_row(
                    "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((seq, hash)) = newest else {
                return Ok(None);
            };
            let signed: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM audit_checkpoint WHERE seq = ?1)",
                [seq],
                |r| r.get(0),
            )?;
            if signed {
                return Ok(None);
            }
            let signature = key.sign(&checkpoint_message(seq, at_ms, &hash));
            tx.execute(
            "INSERT INTO audit_checkpoint (seq, at_ms, hash, signature) VALUES (?1, ?2, ?3, ?4)",
            params![seq, at_ms, hash, signature],
        )?;
            Ok(Some(seq.max(0) as u64))
        })
    }

    /// Retention for the audit log in its own transaction: removes the
    /// entries older than `cutoff_ms` (see `sweep_audit_before_tx`) and
    /// appends the deletion receipt, at `at_ms`, by `RETENTION_ACTOR`.
    pub fn sweep_audit_before(
        &mut self,
        cutoff_ms: UnixMs,
        at_ms: UnixMs,
        key: &ReceiptKey,
    ) -> Result<Option<AuditSweep>, StorageError> {
        self.write(|tx| Database::sweep_audit_with_receipt_tx(tx, cutoff_ms, at_ms, key))
    }

    /// `sweep_audit_before_tx` and its deletion receipt (by
    /// `RETENTION_ACTOR`, at `at_ms`) in the caller's transaction.
    pub fn sweep_audit_with_receipt_tx(
        tx: &Transaction<'_>,
        cutoff_ms: UnixMs,
        at_ms: UnixMs,
        key: &ReceiptKey,
    ) -> rusqlite::Result<Option<AuditSweep>> {
        let sweep = Database::sweep_audit_before_tx(tx, cutoff_ms, key)?;
        if let Some(sweep) = &sweep {
            let receipt = sweep.receipt(RETENTION_ACTOR, SYSTEM_ROLE);
            Database::append_audit_tx(tx, at_ms, &[receipt])?;
        }
        Ok(sweep)
    }

    /// Removes the oldest entries, up to (not including) the first one at or
    /// after `cutoff_ms`: always a prefix in seq order, so the kept chain
    /// stays whole even if the clock once went back. Moves the anchor to the
    /// last one removed and drops the checkpoints before it. None when
    /// nothing was old enough. The caller appends `AuditSweep::receipt` in
    /// the same transaction.
    pub fn sweep_audit_before_tx(
        tx: &Transaction<'_>,
        cutoff_ms: UnixMs,
        key: &ReceiptKey,
    ) -> rusqlite::Result<Option<AuditSweep>> {
        let end: i64 = tx.query_row(
            "SELECT coalesce(min(seq), 9223372036854775807) FROM audit_log WHERE at_ms >= ?1",
            [cutoff_ms],
            |r| r.get(0),
        )?;
        let removed: Vec<(i64, Vec<u8>)> = {
            let mut stmt =
                tx.prepare_cached("SELECT seq, hash FROM audit_log WHERE seq < ?1 ORDER BY seq")?;
            let rows = stmt.query_map([end], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let (Some((first, _)), Some((last, last_hash))) = (removed.first(), removed.last()) else {
            return Ok(None);
        };
        let mut mac = key.start();
        for (_, hash) in &removed {
            mac.update(hash);
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(mac.sign().as_ref());
        let sweep = AuditSweep {
            rows: removed.len() as u64,
            first_seq: (*first).max(0) as u64,
            last_seq: (*last).max(0) as u64,
            last_hash: last_hash.clone(),
            digest,
            cutoff_ms,
        };
        tx.execute("DELETE FROM audit_log WHERE seq <= ?1", [last])?;
        // The checkpoint of the last entry removed still vouches for the anchor.
        tx.execute("DELETE FROM audit_checkpoint WHERE seq < ?1", [last])?;
        tx.execute(
            "INSERT OR REPLACE INTO audit_anchor (id, seq, hash, cutoff_ms) VALUES (1, ?1, ?2, ?3)",
            params![last, last_hash, cutoff_ms],
        )?;
        Ok(Some(sweep))
    }

    /// Entries with `from_ms <= at_ms < to_ms` and a seq after `after_seq`,
    /// oldest first, at most `limit`: the next page starts after the last
    /// seq of this one.
    pub fn audit_entries(
        &self,
        from_ms: UnixMs,
        to_ms: UnixMs,
        limit: usize,
        after_seq: u64,
    ) -> Result<Vec<AuditRecord>, StorageError> {
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query(
            "SELECT seq, at_ms, actor, role, action, target, rows, detail, hash FROM audit_log
             WHERE at_ms >= ?1 AND at_ms < ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
            params![from_ms, to_ms, after, limit],
            record,
        )
    }

    /// How big the log is: its entries, and the bytes of their stored
    /// columns (integers counted as 8).
    pub fn audit_log_size(&self) -> Result<(u64, u64), StorageError> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(sum(8 + 8 + length(actor) + length(role) + length(action)
                     + length(target) + 8 + length(detail) + length(prev_hash) + length(hash)), 0)
                 FROM audit_log",
                [],
                |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, i64>(1)?.max(0) as u64)),
            )
            .map_err(|e| self.wrap(e))
    }

    /// Whether the log holds a deletion receipt keyed with a receipt key:
    /// then that key may not be silently replaced.
    pub fn has_keyed_receipts(&self) -> Result<bool, StorageError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM audit_log WHERE action = ?1 AND instr(detail, ?2) > 0)",
                params![
                    AuditAction::Deletion.as_str(),
                    format!("\"{RECEIPT_DIGEST}\"")
                ],
                |r| r.get(0),
            )
            .map_err(|e| self.wrap(e))
    }

    /// The newest deletion receipts, newest first.
    pub fn deletion_receipts(&self, limit: usize) -> Result<Vec<AuditRecord>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query(
            "SELECT seq, at_ms, actor, role, action, target, rows, detail, hash FROM audit_log
             WHERE action = ?1 ORDER BY seq DESC LIMIT ?2",
            params![AuditAction::Deletion.as_str(), limit],
            record,
        )
    }
}

/// A stored entry, read leniently: an altered row is shown as it is, for
/// verify to judge.
fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    let detail = text(r.get_ref(7)?);
    Ok(AuditRecord {
        seq: r.get::<_, i64>(0)?.max(0) as u64,
        at_ms: integer(r.get_ref(1)?),
        actor: text(r.get_ref(2)?),
        role: text(r.get_ref(3)?),
        action: text(r.get_ref(4)?),
        target: text(r.get_ref(5)?),
        rows: integer(r.get_ref(6)?).max(0) as u64,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        hash: to_hex(blob(r.get_ref(8)?)),
    })
}

fn text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(x) => x.to_string(),
        ValueRef::Null => String::new(),
    }
}

fn integer(v: ValueRef<'_>) -> i64 {
    match v {
        ValueRef::Integer(i) => i,
        _ => 0,
    }
}

fn blob(v: ValueRef<'_>) -> &[u8] {
    match v {
        ValueRef::Blob(b) => b,
        _ => &[],
    }
}

/// One stored entry as the verifier needs it.
struct Checked {
    seq: i64,
    prev: Vec<u8>,
    hash: Vec<u8>,
    /// Whether the stored hash matches the contents (false for a row whose
    /// columns hold types `append_audit` never writes).
    matches: bool,
    /// For an audit-log deletion receipt: the last seq and hash (hex) it records.
    receipt: Option<(u64, String)>,
}

fn check_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Checked> {
    let seq: i64 = r.get(0)?;
    let prev = blob(r.get_ref(8)?).to_vec();
    let hash = blob(r.get_ref(9)?).to_vec();
    let value = |i: usize| r.get_ref(i);
    let fields = match (
        value(1)?,
        value(2)?,
        value(3)?,
        value(4)?,
        value(5)?,
        value(6)?,
        value(7)?,
        value(8)?,
    ) {
        (
            ValueRef::Integer(at_ms),
            ValueRef::Text(actor),
            ValueRef::Text(role),
            ValueRef::Text(action),
            ValueRef::Text(target),
            ValueRef::Integer(rows),
            ValueRef::Text(detail),
            ValueRef::Blob(_),
        ) => Some(Fields {
            seq,
            at_ms,
            actor,
            role,
            action,
            target,
            rows,
            detail,
        }),
        _ => None,
    };
    let matches = fields
        .as_ref()
        .is_some_and(|f| f.hash(&prev)[..] == hash[..]);
    let receipt = fields
        .filter(|f| {
            f.action == AuditAction::Deletion.as_str().as_bytes()
                && f.target == AUDIT_LOG_TARGET.as_bytes()
        })
        .and_then(|f| serde_json::from_slice::<serde_json::Value>(f.detail).ok())
        .and_then(|d| {
            Some((
                d["last_seq"].as_u64()?,
                d["last_hash"].as_str()?.to_string(),
            ))
        });
    Ok(Checked {
        seq,
        prev,
        hash,
        matches,
        receipt,
    })
}

/// Walks the whole log from the anchor (or the first entry): recomputes
/// every hash, checks every link and that seqs run without gaps, checks
/// every checkpoint's signature with `public_key` (Ed25519, 32 bytes) and
/// that it names an entry with that hash, and that an anchor is backed by a
/// deletion receipt. Problems come in log order; after one, the walk goes on
/// from the stored hash, so each independent problem is reported once.
pub fn verify_audit(db: &Database, public_key: &[u8]) -> Result<AuditReport, StorageError> {
    use ring::signature::{UnparsedPublicKey, ED25519};
    let wrap = |e| db.wrap(e);
    let mut report = AuditReport::default();
    let mut problems = Vec::new();

    let anchor: Option<(i64, Vec<u8>)> = db
        .conn
        .query_row("SELECT seq, hash FROM audit_anchor", [], |r| {
            Ok((r.get(0)?, blob(r.get_ref(1)?).to_vec()))
        })
        .optional()
        .map_err(wrap)?;
    report.anchor_seq = anchor.as_ref().map(|(seq, _)| (*seq).max(0) as u64);
    let checkpoints: Vec<(i64, i64, Vec<u8>, Vec<u8>)> = db.query(
        "SELECT seq, at_ms, hash, signature FROM audit_checkpoint ORDER BY seq",
        [],
        |r| {
            Ok((
                r.get(0)?,
                integer(r.get_ref(1)?),
                blob(r.get_ref(2)?).to_vec(),
                blob(r.get_ref(3)?).to_vec(),
            ))
        },
    )?;
    // The stored hash of each entry a checkpoint names, filled in on the walk.
    let mut sealed: HashMap<i64, Option<Vec<u8>>> =
        checkpoints.iter().map(|(seq, ..)| (*seq, None)).collect();

    let (mut last, mut prev) = match &anchor {
        Some((seq, hash)) => ((*seq).max(0), hash.clone()),
        None => (0, GENESIS.to_vec()),
    };
    let start = last;
    let mut receipt_found = false;
    {
        let mut stmt = db
            .conn
            .prepare(
                "SELECT seq, at_ms, actor, role, action, target, rows, detail, prev_hash, hash
                 FROM audit_log ORDER BY seq",
            )
            .map_err(wrap)?;
        let rows = stmt.query_map([], check_row).map_err(wrap)?;
        for row in rows {
            let entry = row.map_err(wrap)?;
            report.entries += 1;
            if entry.seq <= last {
                // Only before the anchor, or at seq 0 or below: nothing
                // legitimate lies there.
                problems.push(AuditProblem::Stray { seq: entry.seq });
                continue;
            }
            let seq = entry.seq as u64;
            report.first_seq.get_or_insert(seq);
            report.last_seq = Some(seq);
            // After a gap the hash this entry links to is gone with the gap.
            let linked = if entry.seq > last + 1 {
                problems.push(AuditProblem::Removed {
                    after: last.max(0) as u64,
                    before: seq,
                });
                true
            } else {
                entry.prev == prev
            };
            if !entry.matches {
                problems.push(AuditProblem::Altered { seq });
            } else if !linked {
                problems.push(AuditProblem::BrokenLink { seq });
            }
            if let Some(slot) = sealed.get_mut(&entry.seq) {
                *slot = Some(entry.hash.clone());
            }
            if let (Some((anchor_seq, anchor_hash)), Some((last_seq, last_hash))) =
                (&anchor, &entry.receipt)
            {
                receipt_found |= i128::from(*last_seq) == i128::from(*anchor_seq)
                    && *last_hash == to_hex(anchor_hash);
            }
            last = entry.seq;
            prev = entry.hash;
        }
    }
    if let Some((anchor_seq, _)) = &anchor {
        if !receipt_found {
            problems.push(AuditProblem::UnrecordedSweep {
                seq: (*anchor_seq).max(0) as u64,
            });
        }
    }

    let key = UnparsedPublicKey::new(&ED25519, public_key);
    let mut truncated_at = None;
    for (seq, at_ms, hash, signature) in &checkpoints {
        report.checkpoints += 1;
        let position = (*seq).max(0) as u64;
        if key
            .verify(&checkpoint_message(*seq, *at_ms, hash), signature)
            .is_err()
        {
            problems.push(AuditProblem::BadSignature { seq: position });
            continue;
        }
        let expected = match &anchor {
            Some((anchor_seq, anchor_hash)) if seq == anchor_seq => Some(anchor_hash),
            // Before the kept log: vouches for entries retention removed.
            _ if *seq < start => continue,
            _ => sealed.get(seq).and_then(Option::as_ref),
        };
        match expected {
            Some(stored) if stored != hash => {
                problems.push(AuditProblem::CheckpointMismatch { seq: position })
            }
            Some(_) => {}
            None if *seq > last => truncated_at = Some(position),
            // Its entry lies in a gap, reported as removed.
            None => {}
        }
    }
    if let Some(checkpoint_seq) = truncated_at {
        problems.push(AuditProblem::Truncated {
            last_seq: last.max(0) as u64,
            checkpoint_seq,
        });
    }
    // Stable: at one position, the entry's own problem comes first.
    problems.sort_by_key(AuditProblem::position);
    report.problems = problems;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    const N: u64 = 50;

    fn entry(i: u64) -> AuditEntry {
        let action = AuditAction::ALL[i as usize % AuditAction::ALL.len()];
        AuditEntry {
            actor: format!("desk-{}", i % 3),
            role: ["dpo", "admin", "facilities"][i as usize % 3].into(),
            action,
            target: format!("/api/v1/thing/{i}"),
            rows: i * 7,
            detail: serde_json::json!({ "status": 200, "i": i }),
        }
    }

    /// A log of N entries written five at a time (entry i at i seconds),
    /// with a checkpoint after every tenth.
    fn chain(key: &AuditKey) -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open(&dir.path().join("h.db")).unwrap();
        for batch in 0..N / 5 {
            let seqs = batch * 5 + 1..=batch * 5 + 5;
            let entries: Vec<_> = seqs.clone().map(entry).collect();
            let last = db
                .append_audit(*seqs.end() as i64 * 1000, &entries)
                .unwrap();
            assert_eq!(last, *seqs.end());
            if last % 10 == 0 {
                assert_eq!(
                    db.checkpoint_audit(last as i64 * 1000 + 1, key).unwrap(),
                    Some(last)
                );
            }
        }
        (dir, db)
    }

    fn verify(db: &Database, key: &AuditKey) -> AuditReport {
        verify_audit(db, &key.public_key()).unwrap()
    }

    fn sql(db: &Database, statement: &str) {
        db.conn.execute_batch(statement).unwrap();
    }

    /// Recomputes an entry's stored hash from its stored contents, as
    /// someone covering their tracks would.
    fn rehash(conn: &Connection, seq: i64) {
        let (row, prev): (Vec<String>, Vec<u8>) = conn
            .query_row(
                "SELECT at_ms, actor, role, action, target, rows, detail, prev_hash FROM audit_log WHERE seq = ?1",
                [seq],
                |r| {
                    let mut row = Vec::new();
                    for i in 0..7 {
                        row.push(text(r.get_ref(i)?));
                    }
                    Ok((row, r.get(7)?))
                },
            )
            .unwrap();
        let hash = Fields {
            seq,
            at_ms: row[0].parse().unwrap(),
            actor: row[1].as_bytes(),
            role: row[2].as_bytes(),
            action: row[3].as_bytes(),
            target: row[4].as_bytes(),
            rows: row[5].parse().unwrap(),
            detail: row[6].as_bytes(),
        }
        .hash(&prev);
        conn.execute(
            "UPDATE audit_log SET hash = ?2 WHERE seq = ?1",
            params![seq, &hash[..]],
        )
        .unwrap();
    }

    fn relink(conn: &Connection, seq: i64) {
        conn.execute(
            "UPDATE audit_log SET prev_hash = (SELECT hash FROM audit_log WHERE seq = ?1 - 1) WHERE seq = ?1",
            [seq],
        )
        .unwrap();
    }

    #[test]
    fn an_intact_chain_with_checkpoints_verifies() {
        let key = AuditKey::generate().unwrap();
        let (_dir, mut db) = chain(&key);
        let report = verify(&db, &key);
        assert_eq!(report.problems, []);
        assert!(report.is_intact());
        assert_eq!((report.entries, report.checkpoints), (N, 5));
        assert_eq!((report.first_seq, report.last_seq), (Some(1), Some(N)));
        // The newest entry is signed already.
        assert_eq!(db.checkpoint_audit(99_000, &key).unwrap(), None);
        // The first entry links to the genesis hash.
        let prev: Vec<u8> = db
            .conn
            .query_row("SELECT prev_hash FROM audit_log WHERE seq = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(prev, GENESIS);
    }

    #[test]
    fn entries_are_paged_by_seq_within_a_time_range() {
        let key = AuditKey::generate().unwrap();
        let (_dir, db) = chain(&key);
        let page = db.audit_entries(0, i64::MAX, 20, 0).unwrap();
        let seqs: Vec<u64> = page.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
        let next = db.audit_entries(0, i64::MAX, 20, 20).unwrap();
        assert_eq!(next.first().map(|r| r.seq), Some(21));
        // Entries 6-10 were written at 10 s, 11-15 at 15 s.
        let ranged = db.audit_entries(10_000, 15_000, 100, 0).unwrap();
        assert_eq!(
            ranged.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [6, 7, 8, 9, 10]
        );
        let first = &page[0];
        assert_eq!(first.actor, "desk-1");
        assert_eq!(first.action, "token_change");
        assert_eq!(first.rows, 7);
        assert_eq!(first.detail, serde_json::json!({ "status": 200, "i": 1 }));
        assert_eq!(first.hash.len(), 64);
        assert_eq!(
            serde_json::to_value(AuditAction::ApiAccess).unwrap(),
            "api_access"
        );
        assert_eq!("config_change".parse(), Ok(AuditAction::ConfigChange));
    }

    #[test]
    fn an_altered_field_is_reported_at_exactly_that_entry() {
        let key = AuditKey::generate().unwrap();
        let (_dir, db) = chain(&key);
        sql(&db, "UPDATE audit_log SET rows = 0 WHERE seq = 17");
        assert_eq!(
            verify(&db, &key).problems,
            [AuditProblem::Altered { seq: 17 }]
        );

        let (_dir, db) = chain(&key);
        sql(
            &db,
            "UPDATE audit_log SET actor = 'someone else' WHERE seq = 33",
        );
        let report = verify(&db, &key);
        assert_eq!(report.problems, [AuditProblem::Altered { seq: 33 }]);
        assert_eq!(
            report.problems[0].to_string(),
            "entry 33 was altered: its contents no longer match its hash"
        );

        // A value of another type is an alteration too, not an error.
        let (_dir, db) = chain(&key);
        sql(&db, "UPDATE audit_log SET rows = 'many' WHERE seq = 5");
        assert_eq!(
            verify(&db, &key).problems,
            [AuditProblem::Altered { seq: 5 }]
        );
    }

    #[test]
    fn a_removed_entry_is_reported_as_exactly_that_gap() {
        let key = AuditKey::generate().unwrap();
        let (_dir, db) = chain(&key);
        sql(&db, "DELETE FROM audit_log WHERE seq = 23");
        let report = verify(&db, &key);
        assert_eq!(
            report.problems,
            [AuditProblem::Removed {
                after: 22,
                before: 24
            }]
        );
        assert_eq!(
            report.problems[0].to_string(),
            "entry 23 was removed (between 22 and 24)"
        );
        sql(&db, "DELETE FROM audit_log WHERE seq IN (1, 2, 36, 37, 38)");
        let texts: Vec<String> = verify(&db, &key)
            .problems
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            texts,
            [
                "entries 1\u{2013}2 were removed (the start of the log, before 3)",
                "entry 23 was removed (between 22 and 24)",
                "entries 36\u{2013}38 were removed (between 35 and 39)",
            ]
        );
    }

    #[test]
    fn an_alteration_and_a_removal_are_both_reported_in_log_order() {
        let key = AuditKey::generate().unwrap();
        let (_dir, db) = chain(&key);
        sql(
            &db,
            "DELETE FROM audit_log WHERE seq = 23; UPDATE audit_log SET rows = rows + 1 WHERE seq = 17;",
        );
        assert_eq!(
            verify(&db, &key).problems,
            [
                AuditProblem::Altered { seq: 17 },
                AuditProblem::Removed {
                    after: 22,
                    before: 24
                }
            ]
        );
    }

    #[test]
    fn a_forged_or_foreign_checkpoint_signature_is_caught() {
        let key = AuditKey::generate().unwrap();
        let (_dir, db) = chain(&key);
        sql(
            &db,
            "UPDATE audit_checkpoint SET signature = zeroblob(64) WHERE seq = 20",
        );
        assert_eq!(
            verify(&db, &key).problems,
            [AuditProblem::BadSignature { seq: 20 }]
        );
        // Against another key, no checkpoint verifies.
        let other = AuditKey::generate().unwrap();
        assert_eq!(verify(&db, &other).problems.len(), 5);
        // A checkpoint re-signed by someone else's key for a rewritten entry.
        let (_dir, db) = chain(&key);
        let hash = vec![7u8; 32];
        let signature = other.sign(&checkpoint_message(30, 1, &hash));
        db.conn
            .execute(
                "UPDATE audit_checkpoint SET at_ms = 1, hash = ?1, signature = ?2 WHERE seq = 30",
                params![hash, signature],
            )
            .unwrap();
        assert_eq!(
            verify(&db, &key).problems,
            [AuditProblem::BadSignature { seq: 30 }]
        );
    }

    #[test]
    fn entries_removed_from_the_end_after_a_checkpoint_are_truncation() {
        let key = AuditKey::generate().unwrap();
        let (_dir, mut db) = chain(&key);
        sql(&db, "DELETE FROM audit_log WHERE seq > 45");
        let report = verify(&db, &key);
        assert_eq!(
            report.problems,
            [AuditProblem::Truncated {
                last_seq: 45,
                checkpoint_seq: 50
            }]
        );
        assert!(report.problems[0]
            .to_string()
            .contains("entries 46\u{2013}50"));
        // New entries do not take the removed seqs: the gap stays visible.
        assert_eq!(db.append_audit(60_000, &[entry(51)]).unwrap(), 51);
        assert_eq!(
            verify(&db, &key).problems,
            [AuditProblem::Removed {
                after: 45,
                before: 51
            }]
        );
    }

    #[test]
    fn a_rehashed_entry_breaks_its_link_and_a_rewritten_tail_its_checkpoint() {
        let key = AuditKey::generate().unwrap();
        let (_dir, db) = chain(&key);
        sql(&db, "UPDATE audit_log SET rows = 0 WHERE seq = 17");
        rehash(&db.conn, 17);
        let report = verify(&db, &key);
        assert_eq!(report.problems, [AuditProblem::BrokenLink { seq: 18 }]);
        assert!(report.problems[0]
            .to_string()
            .contains("between entries 17 and 18"));

        // Rewritten consistently from 47 to the end: only the checkpoint knows.
        let (_dir, db) = chain(&key);
        sql(&db, "UPDATE audit_log SET actor = 'nobody' WHERE seq = 47");
        for seq in 47..=50 {
            relink(&db.conn, seq);
            rehash(&db.conn, seq);
        }
        assert_eq!(
            verify(&db, &key).problems,
            [AuditProblem::CheckpointMismatch { seq: 50 }]
        );
    }

    #[test]
    fn sweeping_a_prefix_keeps_the_log_verifiable_with_a_deterministic_digest() {
        let key = AuditKey::generate().unwrap();
        let receipts = ReceiptKey::from_bytes(&[7; 32]);
        let (_dir, mut db) = chain(&key);
        let (_dir2, mut twin) = chain(&key);
        let hashes: Vec<Vec<u8>> = db
            .conn
            .prepare("SELECT hash FROM audit_log WHERE seq <= 20 ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(db.sweep_audit_before(0, 70_000, &receipts).unwrap(), None);

        // Entries 16-20 were written at 20 s, 21-25 at 25 s.
        let sweep = db
            .sweep_audit_before(21_000, 70_000, &receipts)
            .unwrap()
            .unwrap();
        // Keyed: not the bare SHA-256 of the removed hashes, which anyone
        // could recompute from a guess.
        let mut bare = Context::new(&SHA256);
        let mut mac = receipts.start();
        for hash in &hashes {
            bare.update(hash);
            mac.update(hash);
        }
        assert_eq!(&sweep.digest[..], mac.sign().as_ref());
        assert_ne!(sweep.digest, digest32(bare));
        assert_eq!((sweep.rows, sweep.first_seq, sweep.last_seq), (20, 1, 20));
        assert_eq!(sweep.last_hash, hashes[19]);
        assert_eq!(
            twin.sweep_audit_before(21_000, 80_000, &receipts).unwrap(),
            Some(sweep.clone())
        );
        // Under another key, the same entries give another digest.
        let (_dir3, mut other) = chain(&key);
        let foreign = other
            .sweep_audit_before(21_000, 80_000, &ReceiptKey::from_bytes(&[8; 32]))
            .unwrap()
            .unwrap();
        assert_ne!(foreign.digest, sweep.digest);

        let report = verify(&db, &key);
        assert_eq!(report.problems, []);
        assert_eq!(report.anchor_seq, Some(20));
        assert_eq!((report.first_seq, report.last_seq), (Some(21), Some(51)));
        // The checkpoint of the last entry removed stays, for the anchor.
        assert_eq!(report.checkpoints, 4);
        let receipt = db.audit_entries(0, i64::MAX, 1, 50).unwrap();
        assert_eq!(receipt[0].action, "deletion");
        assert_eq!(receipt[0].target, AUDIT_LOG_TARGET);
        assert_eq!(receipt[0].rows, 20);
        assert_eq!(receipt[0].detail["last_seq"], 20);
        assert_eq!(receipt[0].detail[RECEIPT_DIGEST], to_hex(&sweep.digest));
        assert!(db.has_keyed_receipts().unwrap());

        // A second sweep, inside a caller's transaction, with its receipt.
        {
            let tx = db.conn.transaction().unwrap();
            let sweep = Database::sweep_audit_before_tx(&tx, 41_000, &receipts)
                .unwrap()
                .unwrap();
            assert_eq!((sweep.first_seq, sweep.last_seq), (21, 40));
            Database::append_audit_tx(&tx, 90_000, &[sweep.receipt("retention", "system")])
                .unwrap();
            tx.commit().unwrap();
        }
        assert_eq!(db.checkpoint_audit(90_001, &key).unwrap(), Some(52));
        let report = verify(&db, &key);
        assert_eq!(report.problems, []);
        assert_eq!((report.first_seq, report.anchor_seq), (Some(41), Some(40)));

        // Everything swept: the log goes on from the anchor.
        let last = db
            .sweep_audit_before(i64::MAX, 95_000, &receipts)
            .unwrap()
            .unwrap();
        assert_eq!(last.last_seq, 52);
        assert_eq!(verify(&db, &key).problems, []);
    }

    #[test]
    fn a_prefix_removed_by_hand_behind_a_forged_anchor_is_caught() {
        let key = AuditKey::generate().unwrap();
        let (_dir, db) = chain(&key);
        sql(
            &db,
            "INSERT INTO audit_anchor (id, seq, hash, cutoff_ms)
               SELECT 1, seq, hash, 0 FROM audit_log WHERE seq = 5;
             DELETE FROM audit_log WHERE seq <= 5;",
        );
        assert_eq!(
            verify(&db, &key).problems,
            [AuditProblem::UnrecordedSweep { seq: 5 }]
        );
    }

    #[test]
    fn a_rolled_back_transaction_leaves_no_entry() {
        let key = AuditKey::generate().unwrap();
        let (_dir, mut db) = chain(&key);
        {
            let tx = db.conn.transaction().unwrap();
            assert_eq!(
                Database::append_audit_tx(&tx, 99_000, &[entry(1), entry(2)]).unwrap(),
                N + 2
            );
        }
        assert_eq!(verify(&db, &key).last_seq, Some(N));
        assert_eq!(db.append_audit(99_000, &[]).unwrap(), N);
    }
}
