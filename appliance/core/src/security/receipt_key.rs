//! The device's receipt key: deletion receipts are HMAC-SHA256 under it,
//! not bare SHA-256. Deleted rows are mostly small counts, so a bare digest
//! would let anyone who reads the audit log confirm a guess of what was
//! deleted; with the key, only who holds it (the appliance, and a DPO given
//! a copy with a backup of the rows) can recompute a receipt. The key is
//! `state_dir/receipt.key` (32 random bytes, 0600, written atomically),
//! made at first start like the token key.

use super::{device_key, random_bytes, SecurityError};
use crate::storage::Database;
use ring::hmac;
use std::fmt;
use std::path::Path;

pub const RECEIPT_KEY_FILE: &str = "receipt.key";

pub struct ReceiptKey {
    key: hmac::Key,
}

impl ReceiptKey {
    /// The key in `state_dir`, made the first time. A key that is gone while
    /// `db` holds receipts made with one is an error, never silently
    /// replaced: those receipts could no longer be checked.
    pub fn open(state_dir: &Path, db: &Database) -> Result<ReceiptKey, SecurityError> {
        let path = state_dir.join(RECEIPT_KEY_FILE);
        if !path.exists() && db.has_keyed_receipts()? {
            return Err(SecurityError::Invalid(format!(
                "{} is missing, but the audit log holds deletion receipts made with it: restore \
                 the key from a backup, or, accepting that those receipts can no longer be \
                 checked, write 32 new random bytes there yourself (0600)",
                path.display()
            )));
        }
        Ok(ReceiptKey::from_bytes(&device_key(&path)?))
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> ReceiptKey {
        ReceiptKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// A new key held in memory only.
    pub fn generate() -> Result<ReceiptKey, SecurityError> {
        Ok(ReceiptKey::from_bytes(&random_bytes::<32>()?))
    }

    /// A receipt digest in the making: feed it the deleted rows, then `finish`.
    pub fn start(&self) -> hmac::Context {
        hmac::Context::with_key(&self.key)
    }
}

impl fmt::Debug for ReceiptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReceiptKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tag(key: &ReceiptKey, data: &[u8]) -> Vec<u8> {
        let mut ctx = key.start();
        ctx.update(data);
        ctx.sign().as_ref().to_vec()
    }

    #[test]
    fn the_receipt_key_is_private_stable_and_never_replaced_once_used() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open(&dir.path().join("h.db")).unwrap();
        let key = ReceiptKey::open(dir.path(), &db).unwrap();
        let path = dir.path().join(RECEIPT_KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ReceiptKey::open(dir.path(), &db).unwrap();
        assert_eq!(tag(&key, b"rows"), tag(&again, b"rows"));
        assert_eq!(format!("{key:?}"), "ReceiptKey(***)");

        // No receipt made yet: a lost key is simply made again.
        std::fs::remove_file(&path).unwrap();
        let key = ReceiptKey::open(dir.path(), &db).unwrap();
        // Once a keyed receipt exists, a lost key is an error.
        db.append_audit(1, &[crate::storage::AuditEntry {
            actor: "retention".into(),
            role: "system".into(),
            action: crate::storage::AuditAction::Deletion,
            target: "events".into(),
            rows: 1,
            detail: serde_json::json!({ "hmac_sha256": crate::security::to_hex(&tag(&key, b"x")) }),
        }])
        .unwrap();
        std::fs::remove_file(&path).unwrap();
        let lost = ReceiptKey::open(dir.path(), &db).unwrap_err();
        assert!(lost.to_string().contains("is missing, but"), "{lost}");
        assert!(!path.exists(), "no new key may replace the lost one");
    }
}
