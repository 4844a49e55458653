//! Who may do what, and the keys that prove it: API tokens and roles,
//! lockout of guessing clients, a rate limit per token, caps on connections
//! and the host names the API answers to, security events for a SOC, camera secrets
//! sealed at rest, the key of deletion receipts, and the device's private
//! files. All crypto is `ring`'s.

pub mod admission;
pub mod audit_key;
pub mod events;
pub mod hosts;
pub mod lockout;
pub mod rate;
pub mod receipt_key;
pub mod sealed_stream;
pub mod secrets;
pub mod tokens;

use ring::rand::{SecureRandom, SystemRandom};
use std::path::Path;

pub use crate::encoding::{from_hex, to_hex};
pub use audit_key::AuditKey;
pub use events::{SecurityEvent, SecurityLog};
pub use lockout::Lockout;
pub use rate::{RateLimit, RatePolicy};
pub use receipt_key::ReceiptKey;
pub use secrets::SecretsFile;
pub use tokens::{Caller, Grant, IssuedToken, Role, TokenInfo};

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The database under a key or token store failed.
    #[error(transparent)]
    Store(Box<dyn std::error::Error + Send + Sync>),
    #[error("the system random number generator failed")]
    Random,
    #[error("{0}")]
    Invalid(String),
}

/// `n` bytes from the operating system's secure random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], SecurityError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SecurityError::Random)?;
    Ok(bytes)
}

/// Writes a file only its owner can read (0600), atomically and durably: a
/// crash leaves the old file or the new one, never half of either, and once
/// this returns the new one survives a power cut.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), SecurityError> {
    crate::files::write_atomically(path, contents, 0o600).map_err(|source| SecurityError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A device key kept in the state directory: read it, or make and keep a
/// new random one the first time.
pub fn device_key(path: &Path) -> Result<[u8; 32], SecurityError> {
    match std::fs::read(path) {
        Ok(bytes) => bytes.try_into().map_err(|_| {
            SecurityError::Invalid(format!(
                "{} is not a 32-byte key; restore it from a backup or remove it (what it protects is then lost)",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = random_bytes::<32>()?;
            write_private_file(path, &key)?;
            Ok(key)
        }
        Err(source) => Err(SecurityError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(to_hex(&bytes), "0001abff");
        assert_eq!(from_hex("0001abff").unwrap(), bytes);
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("é1"), None);
    }

    #[test]
    fn private_files_replace_whole_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.key");
        write_private_file(&path, b"one").unwrap();
        write_private_file(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.key"]);
    }

    #[test]
    fn a_device_key_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/k.key");
        let first = device_key(&path).unwrap();
        assert_eq!(device_key(&path).unwrap(), first);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, b"short").unwrap();
        assert!(device_key(&path)
            .unwrap_err()
            .to_string()
            .contains("32-byte"));
    }
}
