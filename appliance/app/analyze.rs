//! `headcount analyze`: the models' view of a recording or a still, one JSON
//! line per analysed frame. For installers checking a camera's recording,
//! and for tests and accuracy checks. Nothing but counts and (on request)
//! boxes is printed; no pixel is written anywhere.

use crate::pipeline::detector_settings;
use anyhow::Context;
use headcount_core::config::{Config, SystemSecrets};
use headcount_core::detection::Detection;
use headcount_core::frame::Frame;
use headcount_media::FileFrames;
use headcount_vision::{DetectorSettings, Detectors, OnnxRuntime};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct AnalyzeArgs {
    /// A video file (any format GStreamer decodes) or a JPEG/PNG still.
    #[arg(long)]
    input: PathBuf,
    /// Analysed frames per second (videos); every frame when left out.
    #[arg(long)]
    fps: Option<f64>,
    /// Also print the normalised boxes [x1, y1, x2, y2, score].
    #[arg(long)]
    boxes: bool,
    /// Take detection settings and the models folder from this config.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value = "models")]
    models_dir: PathBuf,
    /// Frames are scaled to this width before analysis (videos).
    #[arg(long, default_value_t = 640)]
    width: u32,
    /// Run the person model on 2x2 tiles as well (slower, finds smaller people).
    #[arg(long)]
    tiling: bool,
}

#[derive(Serialize)]
struct FrameReport {
    frame: u64,
    timestamp_ms: i64,
    persons: usize,
    /// None when the face model failed on this frame.
    faces: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    face_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    boxes: Option<Boxes>,
}

#[derive(Serialize)]
struct Boxes {
    persons: Vec<[f32; 5]>,
    faces: Vec<[f32; 5]>,
}

fn as_rows(detections: &[Detection]) -> Vec<[f32; 5]> {
    let r = |v: f32| (v * 10_000.0).round() / 10_000.0;
    detections
        .iter()
        .map(|d| {
            [
                r(d.bbox.x1),
                r(d.bbox.y1),
                r(d.bbox.x2),
                r(d.bbox.y2),
                r(d.score),
            ]
        })
        .collect()
}

fn is_still(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(ext.as_str(), "jpg" | "jpeg" | "png")
}

pub fn analyze(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let (settings, models_dir, library) = match &args.config {
        Some(path) => {
            let config = Config::load(path, &SystemSecrets)
                .map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
            let mut settings = detector_settings(&config);
            settings.person_tiling |= args.tiling;
            (settings, config.models_dir, config.onnxruntime_library)
        }
        None => (
            DetectorSettings {
                person_threshold: 0.5,
                face_threshold: 0.6,
                person_tiling: args.tiling,
                threads: 2,
            },
            args.models_dir.clone(),
            None,
        ),
    };
    let runtime = OnnxRuntime::load(library.as_deref())?;
    let mut detectors = Detectors::load(&runtime, &models_dir, settings)?;
    let mut out = std::io::stdout().lock();
    let mut report = |index: u64, frame: Frame| -> anyhow::Result<()> {
        let (detections, _) = detectors.detect(&frame)?;
        let (faces, face_error) = match &detections.faces {
            Ok(f) => (Some(f.len()), None),
            Err(e) => (None, Some(e.clone())),
        };
        let line = FrameReport {
            frame: index,
            timestamp_ms: frame.timestamp_ms(),
            persons: detections.persons.len(),
            faces,
            face_error,
            boxes: args.boxes.then(|| Boxes {
                persons: as_rows(&detections.persons),
                faces: detections.faces.as_deref().map(as_rows).unwrap_or_default(),
            }),
        };
        writeln!(out, "{}", serde_json::to_string(&line)?)?;
        Ok(())
    };
    if is_still(&args.input) {
        let image = image::open(&args.input)
            .with_context(|| format!("cannot read image {}", args.input.display()))?
            .to_rgb8();
        let (w, h) = image.dimensions();
        report(0, Frame::new("file".into(), w, h, image.into_raw(), 0)?)?;
    } else {
        for (index, frame) in FileFrames::open(&args.input, args.fps, Some(args.width))?.enumerate()
        {
            report(index as u64, frame?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
