//! The models manifest (`models/manifest.toml`): what each model is, where it
//! came from, its licence and its checksum. A model whose bytes differ from
//! the manifest is never loaded, and the manifest itself is only read when it
//! carries an Ed25519 signature (`manifest.toml.sig`) by a release key built
//! into this binary (`models/release-key.pub`). The chain: release key ->
//! manifest -> sha256 of every model file.

use serde::Deserialize;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const MANIFEST_FILE: &str = "manifest.toml";
pub const SIGNATURE_FILE: &str = "manifest.toml.sig";
/// The public half of the key that signs released manifests (hex). Its
/// private half is kept offline by the release managers.
pub const RELEASE_KEY: &str = include_str!("../../../models/release-key.pub");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelRole {
    Person,
    Face,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    /// `pypi` or `npm`.
    pub registry: String,
    pub package: String,
    pub version: String,
    /// Path of the file inside the package.
    pub path: String,
    /// Script that converts the packaged file, where one was needed.
    pub converted_by: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInput {
    pub name: String,
    pub shape: Vec<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub role: ModelRole,
    pub name: String,
    pub file: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub licence: String,
    pub upstream: String,
    pub source: ModelSource,
    pub input: ModelInput,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read the models manifest {path}: {source}")]
    ManifestUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the models manifest {path} is invalid: {message}")]
    ManifestInvalid { path: PathBuf, message: String },
    #[error("the models manifest {path} is not signed ({hint}): refusing to load any model")]
    Unsigned { path: PathBuf, hint: &'static str },
    #[error("the models manifest {path} was signed by key {key}, which this build does not trust: refusing to load any model")]
    UntrustedKey { path: PathBuf, key: String },
    #[error("the models manifest {path} does not match its signature: it was altered after signing, refusing to load any model")]
    BadSignature { path: PathBuf },
    #[error("cannot sign {path}: {message}")]
    Signing { path: PathBuf, message: String },
    #[error("the manifest has no {0:?} model")]
    RoleMissing(ModelRole),
    #[error("model file {path} is missing ({hint})")]
    FileMissing { path: PathBuf, hint: &'static str },
    #[error("cannot read model file {path}: {source}")]
    FileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "model file {path} has {actual} bytes, the manifest says {expected}: refusing to load it"
    )]
    SizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("model file {path} has sha256 {actual}, the manifest says {expected}: it was altered or corrupted, refusing to load it")]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

/// The release keys this build trusts.
pub fn release_keys() -> Vec<String> {
    vec![RELEASE_KEY.trim().to_string()]
}

impl Manifest {
    /// The manifest, once its signature checks out against a release key.
    pub fn load(models_dir: &Path) -> Result<Manifest, ModelError> {
        Manifest::load_trusting(models_dir, &release_keys())
    }

    /// The manifest, once its signature checks out against one of `keys`
    /// (hex Ed25519 public keys).
    pub fn load_trusting(models_dir: &Path, keys: &[String]) -> Result<Manifest, ModelError> {
        let path = models_dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&path).map_err(|source| ModelError::ManifestUnreadable {
            path: path.clone(),
            source,
        })?;
        verify_signature(&path, &bytes, keys)?;
        let text = String::from_utf8(bytes).map_err(|e| ModelError::ManifestInvalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ModelError::ManifestInvalid {
            path,
            message: e.to_string(),
        })
    }

    pub fn model(&self, role: ModelRole) -> Result<&ModelEntry, ModelError> {
        self.models
            .iter()
            .find(|m| m.role == role)
            .ok_or(ModelError::RoleMissing(role))
    }
}

impl ModelEntry {
    /// Checks size and sha256 of the model file and returns its path.
    pub fn verify(&self, models_dir: &Path) -> Result<PathBuf, ModelError> {
        let path = models_dir.join(&self.file);
        let metadata = std::fs::metadata(&path).map_err(|_| ModelError::FileMissing {
            path: path.clone(),
            hint: "run scripts/setup.sh to fetch and verify the models",
        })?;
        if metadata.len() != self.size_bytes {
            return Err(ModelError::SizeMismatch {
                path,
                expected: self.size_bytes,
                actual: metadata.len(),
            });
        }
        let actual = sha256_file(&path).map_err(|source| ModelError::FileUnreadable {
            path: path.clone(),
            source,
        })?;
        if !actual.eq_ignore_ascii_case(&self.sha256) {
            return Err(ModelError::ChecksumMismatch {
                path,
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(path)
    }
}

/// Checks `manifest.toml.sig` (`ed25519 <public key> <signature>`, hex)
/// beside the manifest at `path`.
fn verify_signature(path: &Path, manifest: &[u8], keys: &[String]) -> Result<(), ModelError> {
    use crate::encoding::from_hex;
    use ring::signature::{UnparsedPublicKey, ED25519};
    let sig_path = path.with_file_name(SIGNATURE_FILE);
    let text = std::fs::read_to_string(&sig_path).map_err(|_| ModelError::Unsigned {
        path: path.to_path_buf(),
        hint: "manifest.toml.sig is missing or unreadable",
    })?;
    let mut fields = text.split_whitespace();
    let (Some("ed25519"), Some(key), Some(signature), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(ModelError::Unsigned {
            path: path.to_path_buf(),
            hint: "manifest.toml.sig is not `ed25519 <key> <signature>`",
        });
    };
    if !keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
        return Err(ModelError::UntrustedKey {
            path: path.to_path_buf(),
            key: key.chars().take(64).collect(),
        });
    }
    let bad = || ModelError::BadSignature {
        path: path.to_path_buf(),
    };
    let (key, signature) = from_hex(key).zip(from_hex(signature)).ok_or_else(bad)?;
    UnparsedPublicKey::new(&ED25519, key)
        .verify(manifest, &signature)
        .map_err(|_| bad())
}

/// A new Ed25519 signing key: its PKCS#8 document (keep it secret) and its
/// public key in hex.
pub fn generate_signing_key() -> Result<(Vec<u8>, String), ModelError> {
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let failed = |message: &str| ModelError::Signing {
        path: PathBuf::new(),
        message: message.into(),
    };
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| failed("random source failed"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| failed("bad key"))?;
    let public = crate::encoding::to_hex(pair.public_key().as_ref());
    Ok((pkcs8.as_ref().to_vec(), public))
}

/// Signs `models_dir/manifest.toml` with a PKCS#8 Ed25519 key, writing
/// `manifest.toml.sig`; returns the signer's public key (hex).
pub fn sign_manifest(models_dir: &Path, pkcs8: &[u8]) -> Result<String, ModelError> {
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let path = models_dir.join(MANIFEST_FILE);
    let failed = |message: String| ModelError::Signing {
        path: path.clone(),
        message,
    };
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
        .map_err(|e| failed(format!("not a PKCS#8 Ed25519 key: {e}")))?;
    let manifest = std::fs::read(&path).map_err(|e| failed(e.to_string()))?;
    toml::from_str::<Manifest>(&String::from_utf8_lossy(&manifest))
        .map_err(|e| failed(format!("the manifest is invalid: {e}")))?;
    let public = crate::encoding::to_hex(pair.public_key().as_ref());
    let signature = crate::encoding::to_hex(pair.sign(&manifest).as_ref());
    std::fs::write(
        models_dir.join(SIGNATURE_FILE),
        format!("ed25519 {public} {signature}\n"),
    )
    .map_err(|e| failed(e.to_string()))?;
    Ok(public)
}

/// Lower-case hex sha256 of a file, read in chunks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str, sha256: &str, size_bytes: u64) -> ModelEntry {
        ModelEntry {
            role: ModelRole::Face,
            name: "test".into(),
            file: file.into(),
            sha256: sha256.into(),
            size_bytes,
            licence: "MIT".into(),
            upstream: "none".into(),
            source: ModelSource {
                registry: "pypi".into(),
                package: "p".into(),
                version: "1".into(),
                path: "p/m.onnx".into(),
                converted_by: None,
            },
            input: ModelInput {
                name: "input".into(),
                shape: vec![1, 3, 8, 8],
            },
        }
    }

    #[test]
    fn verify_accepts_the_right_bytes_and_names_every_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.onnx"), b"abc").unwrap();
        // sha256("abc")
        let good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(
            entry("m.onnx", good, 3).verify(dir.path()).unwrap(),
            dir.path().join("m.onnx")
        );
        let bad_sum = &"0".repeat(64);
        assert!(matches!(
            entry("m.onnx", bad_sum, 3).verify(dir.path()),
            Err(ModelError::ChecksumMismatch { actual, .. }) if actual == good
        ));
        assert!(matches!(
            entry("m.onnx", good, 4).verify(dir.path()),
            Err(ModelError::SizeMismatch { .. })
        ));
        assert!(matches!(
            entry("gone.onnx", good, 3).verify(dir.path()),
            Err(ModelError::FileMissing { .. })
        ));
    }

    const MANIFEST: &str = r#"
[[model]]
role = "face"
name = "m"
file = "m.onnx"
sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
size_bytes = 3
licence = "MIT"
upstream = "none"
source = { registry = "pypi", package = "p", version = "1", path = "m.onnx" }
input = { name = "input", shape = [1, 3, 8, 8] }
"#;

    #[test]
    fn only_a_manifest_signed_by_a_trusted_key_loads() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join(MANIFEST_FILE);
        std::fs::write(&manifest, MANIFEST).unwrap();
        assert!(matches!(
            Manifest::load_trusting(dir.path(), &[]),
            Err(ModelError::Unsigned { .. })
        ));

        let (key, public) = generate_signing_key().unwrap();
        assert_eq!(sign_manifest(dir.path(), &key).unwrap(), public);
        let trusted = [public.clone()];
        assert_eq!(
            Manifest::load_trusting(dir.path(), &trusted)
                .unwrap()
                .models
                .len(),
            1
        );
        // The release key did not sign this one.
        assert!(matches!(
            Manifest::load(dir.path()),
            Err(ModelError::UntrustedKey { .. })
        ));

        // One byte changed after signing.
        let mut bytes = MANIFEST.as_bytes().to_vec();
        let at = MANIFEST.find("ba78").unwrap();
        bytes[at] = b'c';
        std::fs::write(&manifest, &bytes).unwrap();
        assert!(matches!(
            Manifest::load_trusting(dir.path(), &trusted),
            Err(ModelError::BadSignature { .. })
        ));

        // A signature that is not one.
        std::fs::write(&manifest, MANIFEST).unwrap();
        std::fs::write(
            dir.path().join(SIGNATURE_FILE),
            format!("ed25519 {public} zz"),
        )
        .unwrap();
        assert!(matches!(
            Manifest::load_trusting(dir.path(), &trusted),
            Err(ModelError::BadSignature { .. })
        ));
        assert!(sign_manifest(dir.path(), b"not a key").is_err());
    }

    #[test]
    fn the_shipped_manifest_parses_and_names_both_roles() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let manifest = Manifest::load(&dir).unwrap();
        for role in [ModelRole::Person, ModelRole::Face] {
            let m = manifest.model(role).unwrap();
            assert_eq!(m.sha256.len(), 64, "{}", m.name);
            assert!(
                ["MIT", "Apache-2.0"].contains(&m.licence.as_str()),
                "{}: {}",
                m.name,
                m.licence
            );
        }
    }
}
