//! The `api_token` table. Only `security::tokens` calls these: it owns what a
//! token means; this module only keeps the rows.
//!
//! The audit log and the security events name a token by its pseudonym
//! (`token:<id>`, the token's public id), never by its holder's name, which
//! is kept here only: the DPO maps one to the other while the token exists,
//! and the retention sweep deletes an ended token's row once the audit
//! entries it could explain are gone.

use super::{Database, StorageError};
use headcount_domain::clock::UnixMs;
pub use headcount_domain::security::tokens::pseudonym;
use rusqlite::{params, OptionalExtension};

/// One token as stored: its public id and the digest of its secret half.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub digest: Vec<u8>,
    pub created_ms: UnixMs,
    pub expires_ms: Option<UnixMs>,
    pub revoked_ms: Option<UnixMs>,
}

const COLUMNS: &str = "id, name, role, digest, created_ms, expires_ms, revoked_ms";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        digest: r.get(3)?,
        created_ms: r.get(4)?,
        expires_ms: r.get(5)?,
        revoked_ms: r.get(6)?,
    })
}

impl Database {
    pub fn token_by_id(&self, id: &str) -> Result<Option<TokenRow>, StorageError> {
        self.conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM api_token WHERE id = ?1"))
            .and_then(|mut stmt| stmt.query_row([id], token_row).optional())
            .map_err(|e| self.wrap(e))
    }

    /// Every token ever issued, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenRow>, StorageError> {
        self.query(
            &format!("SELECT {COLUMNS} FROM api_token ORDER BY created_ms, name"),
            [],
            token_row,
        )
    }

    /// Revokes the token in force under `name` (if any) and stores `new`,
    /// in one transaction with its audit entry (`change` says what was done):
    /// a rotation never leaves two tokens, or none, or no record of it.
    /// Returns the id of the token revoked. The entry names tokens by
    /// pseudonym only.
    pub fn replace_token(
        &mut self,
        name: &str,
        new: Option<&TokenRow>,
        now: UnixMs,
        change: &str,
    ) -> Result<Option<String>, StorageError> {
        self.write(|tx| {
            // At most one: a unique index holds one token in force per name.
            let revoked: Option<String> = tx
                .query_row(
                    "UPDATE api_token SET revoked_ms = ?2 WHERE name = ?1 AND revoked_ms IS NULL
                     RETURNING id",
                    params![name, now],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(t) = new {
                tx.execute(
                    &format!(
                        "INSERT INTO api_token ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                    ),
                    params![
                        t.id,
                        t.name,
                        t.role,
                        t.digest,
                        t.created_ms,
                        t.expires_ms,
                        t.revoked_ms
                    ],
                )?;
            }
            let target = new.map(|t| t.id.as_str()).or(revoked.as_deref());
            if let Some(target) = target {
                let (actor, role) = if change == "bootstrap" {
                    ("headcount".to_string(), super::audit::SYSTEM_ROLE)
                } else {
                    (console_user(), "operator")
                };
                let entry = super::AuditEntry {
                    actor,
                    role: role.into(),
                    action: super::AuditAction::TokenChange,
                    target: pseudonym(target),
                    rows: (usize::from(revoked.is_some()) + usize::from(new.is_some())) as u64,
                    detail: serde_json::json!({
                        "change": change,
                        "role": new.map(|t| t.role.as_str()),
                        "expires_ms": new.and_then(|t| t.expires_ms),
                        "revoked": revoked.as_deref().map(pseudonym),
                    }),
                };
                Database::append_audit_tx(tx, now, &[entry])?;
            }
            Ok(revoked)
        })
    }
}

/// Who runs a console command: the user behind sudo, else the login name.
pub fn console_user() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_default();
    if user.is_empty() {
        "console".into()
    } else {
        format!("console:{user}")
    }
}
