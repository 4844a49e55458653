//! The device keys whose loss the database can tell: a receipt key missing
//! while the audit log holds receipts made with it is an error, never
//! silently replaced.

use crate::Database;
use headcount_domain::security::receipt_key::{ReceiptKey, RECEIPT_KEY_FILE};
use headcount_domain::security::SecurityError;
use std::path::Path;

/// The receipt key in `state_dir`, made the first time. A key that is gone
/// while `db` holds receipts made with one is an error: those receipts could
/// no longer be checked.
pub fn open_receipt_key(state_dir: &Path, db: &Database) -> Result<ReceiptKey, SecurityError> {
    let path = state_dir.join(RECEIPT_KEY_FILE);
    if !path.exists() && db.has_keyed_receipts()? {
        return Err(SecurityError::Invalid(format!(
            "{} is missing, but the audit log holds deletion receipts made with it: restore \
             the key from a backup, or, accepting that those receipts can no longer be \
             checked, write 32 new random bytes there yourself (0600)",
            path.display()
        )));
    }
    ReceiptKey::load_or_create(&path)
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
        let key = open_receipt_key(dir.path(), &db).unwrap();
        let path = dir.path().join(RECEIPT_KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = open_receipt_key(dir.path(), &db).unwrap();
        assert_eq!(tag(&key, b"rows"), tag(&again, b"rows"));
        assert_eq!(format!("{key:?}"), "ReceiptKey(***)");

        // No receipt made yet: a lost key is simply made again.
        std::fs::remove_file(&path).unwrap();
        let key = open_receipt_key(dir.path(), &db).unwrap();
        // Once a keyed receipt exists, a lost key is an error.
        db.append_audit(1, &[crate::AuditEntry {
            actor: "retention".into(),
            role: "system".into(),
            action: crate::AuditAction::Deletion,
            target: "events".into(),
            rows: 1,
            detail: serde_json::json!({ "hmac_sha256": headcount_domain::security::to_hex(&tag(&key, b"x")) }),
        }])
        .unwrap();
        std::fs::remove_file(&path).unwrap();
        let lost = open_receipt_key(dir.path(), &db).unwrap_err();
        assert!(lost.to_string().contains("is missing, but"), "{lost}");
        assert!(!path.exists(), "no new key may replace the lost one");
    }
}
