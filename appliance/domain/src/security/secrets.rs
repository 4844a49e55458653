//! Camera passwords sealed at rest: `secrets.json` in the state directory
//! holds each secret encrypted with ChaCha20-Poly1305 (`ring::aead`) under
//! `secrets.key` (32 random bytes, 0600, beside it). A secret's name is its
//! associated data, so a ciphertext moved to another name fails to open.
//! The config refers to one as `password_ref = "secret:NAME"`.

use super::{device_key, from_hex, random_bytes, to_hex, write_private_file, SecurityError};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SECRETS_FILE: &str = "secrets.json";
pub const SECRETS_KEY_FILE: &str = "secrets.key";

pub struct SecretsFile {
    path: PathBuf,
    key_path: PathBuf,
}

impl SecretsFile {
    pub fn in_state_dir(state_dir: &Path) -> SecretsFile {
        SecretsFile {
            path: state_dir.join(SECRETS_FILE),
            key_path: state_dir.join(SECRETS_KEY_FILE),
        }
    }

    fn key(&self) -> Result<LessSafeKey, SecurityError> {
        let bytes = device_key(&self.key_path)?;
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .map_err(|_| SecurityError::Invalid("bad secrets key".into()))?;
        Ok(LessSafeKey::new(key))
    }

    fn entries(&self) -> Result<BTreeMap<String, String>, SecurityError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                SecurityError::Invalid(format!("{} is damaged: {e}", self.path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(source) => Err(SecurityError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn save(&self, entries: &BTreeMap<String, String>) -> Result<(), SecurityError> {
        let json = serde_json::to_vec_pretty(entries)
            .map_err(|e| SecurityError::Invalid(e.to_string()))?;
        write_private_file(&self.path, &json)
    }

    pub fn names(&self) -> Result<Vec<String>, SecurityError> {
        Ok(self.entries()?.into_keys().collect())
    }

    /// Seals `value` under `name`, replacing any earlier one.
    pub fn set(&self, name: &str, value: &str) -> Result<(), SecurityError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(SecurityError::Invalid(format!(
                "`{name}` is not a secret name: letters, digits, '-', '_' or '.'"
            )));
        }
        let key = self.key()?;
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let mut sealed = value.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(name.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| SecurityError::Invalid("cannot seal the secret".into()))?;
        let mut entries = self.entries()?;
        entries.insert(
            name.to_string(),
            to_hex(&[nonce_bytes.as_slice(), &sealed].concat()),
        );
        self.save(&entries)
    }

    /// Opens the secret `name`; an error says what is wrong, never the value.
    pub fn get(&self, name: &str) -> Result<String, SecurityError> {
        let entries = self.entries()?;
        let sealed = entries.get(name).ok_or_else(|| {
            SecurityError::Invalid(format!(
                "no secret `{name}` in {} (add it with `headcount secrets set {name}`)",
                self.path.display()
            ))
        })?;
        if !self.key_path.exists() {
            return Err(SecurityError::Invalid(format!(
                "{} is missing: the sealed secrets cannot be opened",
                self.key_path.display()
            )));
        }
        let damaged = || {
            SecurityError::Invalid(format!(
                "secret `{name}` is damaged or was sealed with another key"
            ))
        };
        let bytes = from_hex(sealed).ok_or_else(damaged)?;
        if bytes.len() < NONCE_LEN {
            return Err(damaged());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| damaged())?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .key()?
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut buffer)
            .map_err(|_| damaged())?;
        String::from_utf8(plain.to_vec()).map_err(|_| damaged())
    }

    /// Removes `name`; false if there was none.
    pub fn remove(&self, name: &str) -> Result<bool, SecurityError> {
        let mut entries = self.entries()?;
        let removed = entries.remove(name).is_some();
        if removed {
            self.save(&entries)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_round_trip_sealed_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = SecretsFile::in_state_dir(dir.path());
        file.set("cam-1", "s3cret pässword").unwrap();
        file.set("cam-2", "other").unwrap();
        assert_eq!(file.get("cam-1").unwrap(), "s3cret pässword");
        assert_eq!(file.names().unwrap(), ["cam-1", "cam-2"]);
        let on_disk = std::fs::read_to_string(dir.path().join(SECRETS_FILE)).unwrap();
        assert!(!on_disk.contains("s3cret") && !on_disk.contains(&to_hex(b"s3cret")));
        for f in [SECRETS_FILE, SECRETS_KEY_FILE] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        assert!(file.remove("cam-2").unwrap());
        assert!(!file.remove("cam-2").unwrap());
        assert!(file
            .get("cam-2")
            .unwrap_err()
            .to_string()
            .contains("secrets set cam-2"));
    }

    #[test]
    fn tampered_moved_or_rekeyed_secrets_do_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = SecretsFile::in_state_dir(dir.path());
        file.set("a", "alpha").unwrap();
        file.set("b", "bravo").unwrap();
        let path = dir.path().join(SECRETS_FILE);
        let mut entries: BTreeMap<String, String> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();

        // One flipped bit in the ciphertext.
        let mut flipped = from_hex(&entries["a"]).unwrap();
        flipped[NONCE_LEN] ^= 1;
        let mut tampered = entries.clone();
        tampered.insert("a".into(), to_hex(&flipped));
        std::fs::write(&path, serde_json::to_vec(&tampered).unwrap()).unwrap();
        let err = file.get("a").unwrap_err().to_string();
        assert!(err.contains("damaged") && !err.contains("alpha"), "{err}");

        // b's ciphertext under a's name.
        entries.insert("a".into(), entries["b"].clone());
        std::fs::write(&path, serde_json::to_vec(&entries).unwrap()).unwrap();
        assert!(file.get("a").is_err());

        // Another key.
        std::fs::remove_file(dir.path().join(SECRETS_KEY_FILE)).unwrap();
        assert!(file.get("b").unwrap_err().to_string().contains("missing"));
    }
}
