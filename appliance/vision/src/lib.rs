//! headcount's inference: the only crate that loads ONNX Runtime.
//!
//! It turns a raw `Frame` into `Detections` (persons with NanoDet, faces with
//! YuNet, the latter as the frame's `FaceScan`). Every model is checked
//! against the manifest before it is loaded. It sees frames only as model
//! tensors (`Frame::letterbox`), knows nothing of cameras, zones or storage,
//! and hands on boxes only.

mod face;
mod person;
mod runtime;

pub use face::FaceDetector;
pub use person::PersonDetector;
pub use runtime::{find_library, OnnxRuntime};

use headcount_domain::detection::{Detection, SearchArea};
use headcount_domain::models::{Manifest, ModelError, ModelRole};
use headcount_domain::pixels::frame::Detections;
use headcount_domain::pixels::frame::{FaceModel, Frame};
use headcount_domain::pixels::letterbox::InputSize;
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
    #[error("{FAULT_INJECTION_VAR}: {0}")]
    FaultInjection(String),
}

/// The environment variable that makes detectors fail on purpose, so that
/// tests can prove that redaction fails closed. It can only ever make output
/// more redacted, never less.
pub const FAULT_INJECTION_VAR: &str = "HEADCOUNT_FAULT_INJECTION";

/// Faults to inject, parsed from `HEADCOUNT_FAULT_INJECTION`: a comma list of
/// `face-fails-every=N` (every Nth face detection errors) and
/// `face-delay-ms=N` (every face detection takes N ms longer).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultInjection {
    pub face_fails_every: Option<u64>,
    pub face_delay: Option<Duration>,
}

impl FaultInjection {
    pub fn from_env() -> Result<FaultInjection, VisionError> {
        match std::env::var(FAULT_INJECTION_VAR) {
            Ok(spec) => FaultInjection::parse(&spec),
            Err(_) => Ok(FaultInjection::default()),
        }
    }

    pub fn parse(spec: &str) -> Result<FaultInjection, VisionError> {
        let mut faults = FaultInjection::default();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let bad = || {
                VisionError::FaultInjection(format!(
                    "`{item}` is not face-fails-every=N or face-delay-ms=N (N a positive integer)"
                ))
            };
            let (key, value) = item.split_once('=').ok_or_else(bad)?;
            let n: u64 = value.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?;
            match key {
                "face-fails-every" => faults.face_fails_every = Some(n),
                "face-delay-ms" => faults.face_delay = Some(Duration::from_millis(n)),
                _ => return Err(bad()),
            }
        }
        Ok(faults)
    }

    pub fn is_active(&self) -> bool {
        *self != FaultInjection::default()
    }
}

/// Detector settings, from the config.
#[derive(Debug, Clone, Copy)]
pub struct DetectorSettings {
    pub person_threshold: f32,
    pub face_threshold: f32,
    pub person_tiling: bool,
    pub threads: usize,
}

impl DetectorSettings {
    /// The detectors report persons down to the low threshold: the tracker
    /// uses weak detections to keep tracks, and the redactor redacts their
    /// heads too.
    pub fn from_config(detection: &headcount_domain::config::DetectionConfig) -> DetectorSettings {
        DetectorSettings {
            person_threshold: detection.person_low_threshold,
            face_threshold: detection.face_threshold,
            person_tiling: detection.person_tiling,
            threads: detection.threads_per_worker,
        }
    }
}

/// The appliance's detectors in the one frame step
/// (`headcount_domain::frame_step`).
impl headcount_domain::frame_step::FrameDetector for Detectors {
    fn find(
        &mut self,
        frame: &Frame,
        persons: Option<SearchArea>,
        faces: bool,
    ) -> Result<Detections, String> {
        self.detect_with(frame, persons, faces)
            .map(|(found, _)| found)
            .map_err(|e| e.to_string())
    }
}

/// Where one frame's analysis time went, for the bench.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub preprocess: Duration,
    pub person: Duration,
    pub face: Duration,
    /// Person model runs (the region, then any tiles).
    pub person_passes: u32,
}

/// Both detectors, for one inference worker (sessions are not shared).
pub struct Detectors {
    person: PersonDetector,
    face: FaceDetector,
    faults: FaultInjection,
    face_calls: u64,
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
        let faults = FaultInjection::from_env()?;
        if faults.is_active() {
            tracing::warn!(
                ?faults,
                "fault injection is on: face detection will fail or stall on purpose"
            );
        }
        Ok(Detectors {
            person,
            face,
            faults,
            face_calls: 0,
        })
    }

    /// One timed pass of the person model over blank input (see
    /// `PersonDetector::time_pass`).
    pub fn time_person_pass(
        &mut self,
        batch: usize,
        size: InputSize,
    ) -> Result<Duration, VisionError> {
        self.person.time_pass(batch, size)
    }

    /// Persons (over the whole frame) and faces in one frame. A failed
    /// person model is an error (the frame cannot be counted); a failed face
    /// model is recorded in the frame's `FaceScan`, so that the redactor
    /// obscures the whole frame.
    pub fn detect(&mut self, frame: &Frame) -> Result<(Detections, StageTimes), VisionError> {
        self.detect_with(frame, Some(SearchArea::FULL), true)
    }

    /// The person model runs over `persons` only (not at all when None:
    /// `Detections::persons` is then empty), and the face model only when
    /// `faces` (`Detections::faces` is then None): a frame that will not be
    /// published needs no face search.
    pub fn detect_with(
        &mut self,
        frame: &Frame,
        persons: Option<SearchArea>,
        faces: bool,
    ) -> Result<(Detections, StageTimes), VisionError> {
        let mut times = StageTimes::default();
        let persons = match persons {
            Some(area) => self.person.detect(frame, area, &mut times)?,
            None => Vec::new(),
        };
        let faces = faces.then(|| {
            self.face_calls += 1;
            frame.scan_faces(&mut FaceSearch {
                face: &mut self.face,
                faults: self.faults,
                call: self.face_calls,
                times: &mut times,
            })
        });
        Ok((Detections { persons, faces }, times))
    }
}

/// YuNet as the redactor's `FaceModel`: the one implementation, so the one
/// place a face scan comes from. Injected faults can only fail or delay it.
struct FaceSearch<'a> {
    face: &'a mut FaceDetector,
    faults: FaultInjection,
    /// This search's number among the worker's face searches, from 1.
    call: u64,
    times: &'a mut StageTimes,
}

impl FaceModel for FaceSearch<'_> {
    fn find_faces(&mut self, frame: &Frame) -> Result<Vec<Detection>, String> {
        if let Some(delay) = self.faults.face_delay {
            std::thread::sleep(delay);
            self.times.face += delay;
        }
        match self.faults.face_fails_every {
            Some(n) if self.call % n == 0 => Err("injected fault".to_string()),
            _ => self
                .face
                .detect(frame, self.times)
                .map_err(|e| e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_injection_specs() {
        assert_eq!(
            FaultInjection::parse("face-fails-every=3, face-delay-ms=250").unwrap(),
            FaultInjection {
                face_fails_every: Some(3),
                face_delay: Some(Duration::from_millis(250)),
            }
        );
        assert!(!FaultInjection::parse("").unwrap().is_active());
        for bad in [
            "face-fails-every=0",
            "face-fails-every",
            "persons-fail=1",
            "face-delay-ms=x",
        ] {
            let e = FaultInjection::parse(bad).unwrap_err().to_string();
            assert!(e.contains(FAULT_INJECTION_VAR) && e.contains(bad), "{e}");
        }
    }
}
