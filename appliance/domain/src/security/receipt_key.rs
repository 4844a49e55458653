//! The device's receipt key: deletion receipts are HMAC-SHA256 under it,
//! not bare SHA-256. Deleted rows are mostly small counts, so a bare digest
//! would let anyone who reads the audit log confirm a guess of what was
//! deleted; with the key, only who holds it (the appliance, and a DPO given
//! a copy with a backup of the rows) can recompute a receipt. The key is
//! `state_dir/receipt.key` (32 random bytes, 0600, written atomically),
//! made at first start like the token key.

use super::{device_key, random_bytes, SecurityError};
use ring::hmac;
use std::fmt;
use std::path::Path;

pub const RECEIPT_KEY_FILE: &str = "receipt.key";

pub struct ReceiptKey {
    key: hmac::Key,
}

impl ReceiptKey {
    /// The key at `path`, made the first time. Whether a missing key may be
    /// made again is the store's to say (`headcount_store::open_receipt_key`):
    /// never once receipts were made with one.
    pub fn load_or_create(path: &Path) -> Result<ReceiptKey, SecurityError> {
        Ok(ReceiptKey::from_bytes(&device_key(path)?))
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
