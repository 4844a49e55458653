//! headcount's inference: the only crate that loads ONNX Runtime.
//!
//! It turns a raw `Frame` into `Detections` (persons with NanoDet, faces with
//! YuNet). Every model is checked against the manifest before it is loaded.
//! It knows nothing of cameras, zones or storage, and hands on boxes only.

mod face;
mod person;
mod preprocess;
mod runtime;

pub use face::FaceDetector;
pub use person::PersonDetector;
pub use runtime::{find_library, OnnxRuntime};

use headcount_core::detection::Detections;
use headcount_core::frame::Frame;
use headcount_core::models::{Manifest, ModelError, ModelRole};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("ONNX Runtime library not found (looked in: {searched}); run scripts/setup.sh, or set ORT_DYLIB_PATH or appliance.onnxruntime_library")]
    LibraryMissing { searched: String },
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    LibraryUnusable { path: PathBuf, message: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("model {path}: {message}")]
    Session { path: PathBuf, message: String },
    #[error("model {path} takes input {actual}, but the manifest says {expected}")]
    InputMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("inference failed: {0}")]
    Inference(String),
}

/// Detector settings, from the config.
#[derive(Debug, Clone, Copy)]
pub struct DetectorSettings {
    pub person_threshold: f32,
    pub face_threshold: f32,
    pub person_tiling: bool,
    pub threads: usize,
}

/// Where one frame's analysis time went, for the bench.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub preprocess: Duration,
    pub person: Duration,
    pub face: Duration,
}

/// Both detectors, for one inference worker (sessions are not shared).
pub struct Detectors {
    person: PersonDetector,
    face: FaceDetector,
}

impl Detectors {
    pub fn load(
        runtime: &OnnxRuntime,
        models_dir: &Path,
        settings: DetectorSettings,
    ) -> Result<Detectors, VisionError> {
        let manifest = Manifest::load(models_dir)?;
        let person = PersonDetector::load(
            runtime,
            models_dir,
            manifest.model(ModelRole::Person)?,
            settings,
        )?;
        let face = FaceDetector::load(
            runtime,
            models_dir,
            manifest.model(ModelRole::Face)?,
            settings,
        )?;
        Ok(Detectors { person, face })
    }

    /// Persons and faces in one frame. A failed person model is an error (the
    /// frame cannot be counted); a failed face model is recorded in
    /// `Detections::faces`, so that the redactor obscures the whole frame.
    pub fn detect(&mut self, frame: &Frame) -> Result<(Detections, StageTimes), VisionError> {
        let mut times = StageTimes::default();
        let persons = self.person.detect(frame, &mut times)?;
        let faces = self
            .face
            .detect(frame, &mut times)
            .map_err(|e| e.to_string());
        Ok((Detections { persons, faces }, times))
    }
}
