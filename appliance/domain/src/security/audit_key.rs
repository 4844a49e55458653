//! The device's audit key: an Ed25519 key that signs checkpoints of the audit
//! log (`storage::audit`). Its private half is `state_dir/audit-signing.pk8`
//! (PKCS#8, 0600); its public half `audit-signing.pub` (hex) sits beside it so
//! a data-protection officer can verify the log without the private key, and
//! keep a copy of it elsewhere to verify against (`--public-key`).

use super::{from_hex, to_hex, write_private_file, SecurityError};
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::fmt;
use std::path::{Path, PathBuf};

pub const AUDIT_KEY_FILE: &str = "audit-signing.pk8";
pub const AUDIT_PUBLIC_KEY_FILE: &str = "audit-signing.pub";

pub struct AuditKey {
    pair: Ed25519KeyPair,
}

impl AuditKey {
    /// The key in `state_dir`, made the first time. A private key that is
    /// gone while its public key is still there is an error, never silently
    /// replaced: checkpoints signed by the lost key would stop verifying.
    pub fn load_or_create(state_dir: &Path) -> Result<AuditKey, SecurityError> {
        let path = state_dir.join(AUDIT_KEY_FILE);
        let public_path = state_dir.join(AUDIT_PUBLIC_KEY_FILE);
        let key = match std::fs::read(&path) {
            Ok(pkcs8) => AuditKey::from_pkcs8(&pkcs8).map_err(|_| {
                SecurityError::Invalid(format!(
                    "{} is not an Ed25519 PKCS#8 key; restore it from a backup",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if public_path.exists() {
                    return Err(SecurityError::Invalid(format!(
                        "{} is missing, but {} is there: restore the key from a backup, or move the \
                         public key away to start a new key (older checkpoints then verify only with \
                         `headcount audit verify --public-key OLD`)",
                        path.display(),
                        public_path.display()
                    )));
                }
                // Same key generation as the release signing keys.
                let (pkcs8, _) =
                    crate::models::generate_signing_key().map_err(|_| SecurityError::Random)?;
                write_private_file(&path, &pkcs8)?;
                AuditKey::from_pkcs8(&pkcs8)?
            }
            Err(source) => return Err(SecurityError::Io { path, source }),
        };
        key.publish(&public_path)?;
        Ok(key)
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<AuditKey, SecurityError> {
        Ed25519KeyPair::from_pkcs8(pkcs8)
            .map(|pair| AuditKey { pair })
            .map_err(|e| SecurityError::Invalid(format!("not an Ed25519 PKCS#8 key: {e}")))
    }

    /// A new key held in memory only.
    pub fn generate() -> Result<AuditKey, SecurityError> {
        let (pkcs8, _) =
            crate::models::generate_signing_key().map_err(|_| SecurityError::Random)?;
        AuditKey::from_pkcs8(&pkcs8)
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// (Re)writes the public key file when it is missing or names another key.
    fn publish(&self, path: &Path) -> Result<(), SecurityError> {
        use std::os::unix::fs::PermissionsExt;
        let text = format!("{}\n", to_hex(&self.public_key()));
        if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
            return Ok(());
        }
        write_private_file(path, text.as_bytes())?;
        // Not a secret: verifiers running as other users may read it.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).map_err(|source| {
            SecurityError::Io {
                path: path.to_path_buf(),
                source,
            }
        })
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditKey(public {}, ***)", to_hex(&self.public_key()))
    }
}

/// The public audit key of the appliance whose state directory this is.
pub fn read_audit_public_key(state_dir: &Path) -> Result<Vec<u8>, SecurityError> {
    let path: PathBuf = state_dir.join(AUDIT_PUBLIC_KEY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| SecurityError::Io {
        path: path.clone(),
        source,
    })?;
    parse_audit_public_key(&text)
        .map_err(|e| SecurityError::Invalid(format!("{}: {e}", path.display())))
}

/// An Ed25519 public key written as 64 hex digits.
pub fn parse_audit_public_key(text: &str) -> Result<Vec<u8>, SecurityError> {
    from_hex(text.trim())
        .filter(|key| key.len() == 32)
        .ok_or_else(|| {
            SecurityError::Invalid("not an Ed25519 public key (64 hex digits expected)".to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_audit_key_is_private_stable_and_publishes_its_public_half() {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::load_or_create(dir.path()).unwrap();
        let again = AuditKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let mode = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(AUDIT_KEY_FILE), 0o600);
        assert_eq!(mode(AUDIT_PUBLIC_KEY_FILE), 0o644);
        assert_eq!(read_audit_public_key(dir.path()).unwrap(), key.public_key());
        assert!(!format!("{key:?}").contains(&to_hex(
            &std::fs::read(dir.path().join(AUDIT_KEY_FILE)).unwrap()
        )));

        // A lost public key file is written again from the private key.
        std::fs::remove_file(dir.path().join(AUDIT_PUBLIC_KEY_FILE)).unwrap();
        AuditKey::load_or_create(dir.path()).unwrap();
        assert_eq!(read_audit_public_key(dir.path()).unwrap(), key.public_key());
    }

    #[test]
    fn a_lost_or_damaged_audit_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        AuditKey::load_or_create(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(AUDIT_KEY_FILE)).unwrap();
        let lost = AuditKey::load_or_create(dir.path()).unwrap_err();
        assert!(lost.to_string().contains("restore the key"), "{lost}");
        std::fs::write(dir.path().join(AUDIT_KEY_FILE), b"junk").unwrap();
        let damaged = AuditKey::load_or_create(dir.path()).unwrap_err();
        assert!(damaged.to_string().contains("PKCS#8"), "{damaged}");
        assert!(parse_audit_public_key("abcd").is_err());
    }
}
