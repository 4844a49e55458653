//! The models manifest (`models/manifest.toml`): what each model is, where it
//! came from, its licence and its checksum. A model whose bytes differ from
//! the manifest is never loaded.

use serde::Deserialize;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const MANIFEST_FILE: &str = "manifest.toml";

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

impl Manifest {
    pub fn load(models_dir: &Path) -> Result<Manifest, ModelError> {
        let path = models_dir.join(MANIFEST_FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|source| ModelError::ManifestUnreadable {
                path: path.clone(),
                source,
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
