//! Person detection with NanoDet-g 416 (Apache-2.0), converted from the
//! TF.js package as recorded in models/manifest.toml.
//!
//! Outputs: for strides 8/16/32, sigmoid class scores [rows x 80] (person is
//! column 0) and box logits [rows x 44]: 4 sides (left, top, right, bottom)
//! x 11 bins; a side's distance is the softmax-weighted mean bin, times the
//! stride, from the cell centre ((col + 0.5) * stride, (row + 0.5) * stride).

use crate::runtime::{inference_error, output, OnnxRuntime};
use crate::{DetectorSettings, StageTimes, VisionError};
use headcount_domain::detection::{non_max_suppression, suppress_contained, Detection, SearchArea};
use headcount_domain::geometry::BBox;
use headcount_domain::models::ModelEntry;
use headcount_domain::pixels::frame::Frame;
use headcount_domain::pixels::letterbox::{normalise, InputSize, Letterbox, Normalisation, Roi};
use ort::session::Session;
use ort::value::TensorRef;
use std::path::Path;
use std::time::{Duration, Instant};

/// The long side of the input; the short side is the frame's, scaled, and
/// rounded up to a multiple of the largest stride (the model's input size is
/// dynamic), so wide frames are not padded square.
const LONG_SIDE: usize = 416;
const MAX_STRIDE: usize = 32;
const STRIDES: [usize; 3] = [8, 16, 32];
const CLASSES: usize = 80;
const BINS: usize = 11;
const SCORE_OUTPUTS: [&str; 3] = ["Identity:0", "Identity_1:0", "Identity_2:0"];
const BOX_OUTPUTS: [&str; 3] = ["Identity_3:0", "Identity_4:0", "Identity_5:0"];
const NORMALISATION: Normalisation = Normalisation {
    mean_bgr: [103.53, 116.28, 123.675],
    std_bgr: [57.375, 57.12, 58.395],
};
const NMS_IOU: f32 = 0.5;
/// A box this much inside a better, larger one is a part of that person.
const CONTAINED_SHARE: f32 = 0.85;
/// Tiles overlap so that a person cut by one tile's edge is whole in another.
const TILE_SHARE: f32 = 0.6;

pub struct PersonDetector {
    session: Session,
    input: Vec<f32>,
    threshold: f32,
    tiling: bool,
}

/// A box in model-input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub score: f32,
}

impl PersonDetector {
    pub fn load(
        runtime: &OnnxRuntime,
        models_dir: &Path,
        entry: &ModelEntry,
        settings: DetectorSettings,
    ) -> Result<Self, VisionError> {
        Ok(PersonDetector {
            session: runtime.session(models_dir, entry, settings.threads)?,
            input: Vec::new(),
            threshold: settings.person_threshold,
            tiling: settings.person_tiling,
        })
    }

    /// The persons within `area`: its region cropped and scaled to the
    /// model's input, then (when set) its detail part in tiles at a finer
    /// scale, and (with `person_tiling`) the region in 2x2 tiles.
    pub fn detect(
        &mut self,
        frame: &Frame,
        area: SearchArea,
        times: &mut StageTimes,
    ) -> Result<Vec<Detection>, VisionError> {
        let full = Roi::full(frame);
        let region = to_roi(area.region, frame);
        let mut regions = vec![region];
        if self.tiling {
            regions.extend(tiles(region));
        }
        if let Some(detail) = area.detail {
            regions.extend(detail_tiles(to_roi(detail, frame), region));
        }
        let mut found = Vec::new();
        for roi in regions {
            let start = Instant::now();
            let size = input_size(roi);
            self.input.resize(3 * size.width * size.height, 0.0);
            let lb = frame.letterbox(roi, size, NORMALISATION, &mut self.input);
            times.preprocess += start.elapsed();
            let start = Instant::now();
            let raw = self.infer(size)?;
            times.person += start.elapsed();
            times.person_passes += 1;
            found.extend(
                raw.iter()
                    .filter_map(|b| to_frame(b, &lb, frame, roi != full)),
            );
        }
        Ok(suppress_contained(
            non_max_suppression(found, NMS_IOU),
            CONTAINED_SHARE,
        ))
    }

    /// One run of the model on a blank input of `batch` images of `size`,
    /// timed (the bench's measure of what batching would save: a
    /// convolution's cost does not depend on the pixels). An error when
    /// the model refuses that shape.
    pub fn time_pass(&mut self, batch: usize, size: InputSize) -> Result<Duration, VisionError> {
        let shape = [batch, 3, size.height, size.width];
        let input = vec![0.0f32; shape.iter().product()];
        let tensor = TensorRef::from_array_view((shape, &input[..])).map_err(inference_error)?;
        let start = Instant::now();
        self.session
            .run(ort::inputs![tensor])
            .map_err(inference_error)?;
        Ok(start.elapsed())
    }

    fn infer(&mut self, size: InputSize) -> Result<Vec<RawBox>, VisionError> {
        let shape = [1usize, 3, size.height, size.width];
        let tensor =
            TensorRef::from_array_view((shape, &self.input[..])).map_err(inference_error)?;
        let outputs = self
            .session
            .run(ort::inputs![tensor])
            .map_err(inference_error)?;
        let mut scores: [&[f32]; 3] = [&[]; 3];
        let mut boxes: [&[f32]; 3] = [&[]; 3];
        for i in 0..3 {
            scores[i] = output(&outputs, "person", SCORE_OUTPUTS[i])?;
            boxes[i] = output(&outputs, "person", BOX_OUTPUTS[i])?;
        }
        decode(size, scores, boxes, self.threshold)
    }
}

/// The input size for a region: 416 on its long side, the other side scaled
/// and rounded up to a multiple of 32.
fn input_size(roi: Roi) -> InputSize {
    let scale = LONG_SIDE as f32 / roi.width.max(roi.height) as f32;
    let fit = |side: u32| {
        ((side as f32 * scale).round() as usize)
            .div_ceil(MAX_STRIDE)
            .max(1)
            * MAX_STRIDE
    };
    InputSize {
        width: fit(roi.width).min(LONG_SIDE),
        height: fit(roi.height).min(LONG_SIDE),
    }
}

/// A normalised box in whole frame pixels, at least one pixel each way.
fn to_roi(b: BBox, frame: &Frame) -> Roi {
    let (w, h) = (frame.width(), frame.height());
    let x0 = ((b.x1 * w as f32).floor() as u32).min(w - 1);
    let y0 = ((b.y1 * h as f32).floor() as u32).min(h - 1);
    let x1 = ((b.x2 * w as f32).ceil() as u32).clamp(x0 + 1, w);
    let y1 = ((b.y2 * h as f32).ceil() as u32).clamp(y0 + 1, h);
    Roi {
        x0,
        y0,
        width: x1 - x0,
        height: y1 - y0,
    }
}

/// The 2x2 overlapping tiles of a region.
fn tiles(region: Roi) -> Vec<Roi> {
    let (tw, th) = (
        (region.width as f32 * TILE_SHARE) as u32,
        (region.height as f32 * TILE_SHARE) as u32,
    );
    let xs = [region.x0, region.x0 + region.width - tw];
    let ys = [region.y0, region.y0 + region.height - th];
    ys.iter()
        .flat_map(|&y0| {
            xs.iter().map(move |&x0| Roi {
                x0,
                y0,
                width: tw,
                height: th,
            })
        })
        .collect()
}

/// Detail tiles are at most this many frame pixels on their long side, so
/// the model sees them at least 1.3 times larger than the frame (416 px
/// input): a person 30 px tall reaches the 40-45 px the model needs.
const DETAIL_TILE: u32 = 320;
/// Neighbouring detail tiles overlap by this share, so that a person cut by
/// one tile's edge is whole in the next.
const DETAIL_OVERLAP: f32 = 0.25;

/// Overlapping tiles covering `detail` (clipped to `region`), none longer
/// than `DETAIL_TILE`.
fn detail_tiles(detail: Roi, region: Roi) -> Vec<Roi> {
    let x0 = detail.x0.max(region.x0);
    let y0 = detail.y0.max(region.y0);
    let x1 = (detail.x0 + detail.width).min(region.x0 + region.width);
    let y1 = (detail.y0 + detail.height).min(region.y0 + region.height);
    if x1 <= x0 || y1 <= y0 {
        return Vec::new();
    }
    // Tile starts along one side: as few tiles as fit with the overlap.
    let starts = |from: u32, to: u32| -> (Vec<u32>, u32) {
        let span = to - from;
        let tile = span.min(DETAIL_TILE);
        let stride = ((tile as f32 * (1.0 - DETAIL_OVERLAP)) as u32).max(1);
        let count = if span <= tile {
            1
        } else {
            (span - tile).div_ceil(stride) + 1
        };
        let step = if count > 1 {
            (span - tile) as f32 / (count - 1) as f32
        } else {
            0.0
        };
        (
            (0..count)
                .map(|i| from + (i as f32 * step).round() as u32)
                .collect(),
            tile,
        )
    };
    let (xs, tw) = starts(x0, x1);
    let (ys, th) = starts(y0, y1);
    ys.iter()
        .flat_map(|&y| {
            xs.iter().map(move |&x| Roi {
                x0: x,
                y0: y,
                width: tw,
                height: th,
            })
        })
        .collect()
}

/// Maps a model box to normalised frame coordinates. A tile's box that
/// touches an inner tile edge is cut off, and dropped: the overlapping
/// neighbour tile or the full frame sees that person whole.
fn to_frame(b: &RawBox, lb: &Letterbox, frame: &Frame, is_tile: bool) -> Option<Detection> {
    let (fw, fh) = (frame.width() as f32, frame.height() as f32);
    let model_box = BBox {
        x1: b.x1,
        y1: b.y1,
        x2: b.x2,
        y2: b.y2,
    };
    let px = lb.to_frame_box(model_box);
    let BBox { x1, y1, x2, y2 } = px;
    if is_tile {
        let (rx0, ry0) = (lb.roi.x0 as f32, lb.roi.y0 as f32);
        let (rx1, ry1) = (rx0 + lb.roi.width as f32, ry0 + lb.roi.height as f32);
        let margin = 2.0;
        let cut = (rx0 > 0.0 && x1 <= rx0 + margin)
            || (ry0 > 0.0 && y1 <= ry0 + margin)
            || (rx1 < fw && x2 >= rx1 - margin)
            || (ry1 < fh && y2 >= ry1 - margin);
        if cut {
            return None;
        }
    }
    let bbox = normalise(px, frame);
    (bbox.area() > 0.0).then_some(Detection {
        bbox,
        score: b.score,
    })
}

/// Decodes the three stride levels into person boxes in model pixels.
pub fn decode(
    size: InputSize,
    scores: [&[f32]; 3],
    boxes: [&[f32]; 3],
    threshold: f32,
) -> Result<Vec<RawBox>, VisionError> {
    let mut out = Vec::new();
    for (level, &stride) in STRIDES.iter().enumerate() {
        let cells = size.width / stride;
        let rows = cells * (size.height / stride);
        if scores[level].len() != rows * CLASSES || boxes[level].len() != rows * 4 * BINS {
            return Err(VisionError::Inference(format!(
                "person model output for stride {stride} has {} scores and {} box values, expected {} and {}",
                scores[level].len(),
                boxes[level].len(),
                rows * CLASSES,
                rows * 4 * BINS
            )));
        }
        for i in 0..rows {
            let score = scores[level][i * CLASSES];
            if score < threshold {
                continue;
            }
            let (row, col) = (i / cells, i % cells);
            let (cx, cy) = (
                (col as f32 + 0.5) * stride as f32,
                (row as f32 + 0.5) * stride as f32,
            );
            let logits = &boxes[level][i * 4 * BINS..(i + 1) * 4 * BINS];
            let d: Vec<f32> = logits
                .chunks_exact(BINS)
                .map(|side| expected_bin(side) * stride as f32)
                .collect();
            out.push(RawBox {
                x1: cx - d[0],
                y1: cy - d[1],
                x2: cx + d[2],
                y2: cy + d[3],
                score,
            });
        }
    }
    Ok(out)
}

/// The softmax-weighted mean bin index of one side's logits.
fn expected_bin(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut sum, mut weighted) = (0.0, 0.0);
    for (i, &l) in logits.iter().enumerate() {
        let e = (l - max).exp();
        sum += e;
        weighted += e * i as f32;
    }
    weighted / sum
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Outputs {
        size: InputSize,
        scores: Vec<Vec<f32>>,
        boxes: Vec<Vec<f32>>,
    }

    /// A wide input, as for a 16:9 frame: 52 x 32 cells at stride 8.
    const WIDE: InputSize = InputSize {
        width: 416,
        height: 256,
    };

    fn empty(size: InputSize) -> Outputs {
        let rows = |s: usize| (size.width / s) * (size.height / s);
        Outputs {
            size,
            scores: STRIDES
                .iter()
                .map(|&s| vec![0.0; rows(s) * CLASSES])
                .collect(),
            boxes: STRIDES
                .iter()
                .map(|&s| vec![0.0; rows(s) * 4 * BINS])
                .collect(),
        }
    }

    /// Puts a cell at (row, col) of `level` with person score `score` and
    /// each side's logits peaked at the given bin.
    fn put(o: &mut Outputs, level: usize, row: usize, col: usize, score: f32, bins: [usize; 4]) {
        let i = row * (o.size.width / STRIDES[level]) + col;
        o.scores[level][i * CLASSES] = score;
        for (side, bin) in bins.iter().enumerate() {
            o.boxes[level][i * 44 + side * BINS + bin] = 50.0;
        }
    }

    fn run(o: &Outputs, threshold: f32) -> Vec<RawBox> {
        let s = [&o.scores[0][..], &o.scores[1][..], &o.scores[2][..]];
        let b = [&o.boxes[0][..], &o.boxes[1][..], &o.boxes[2][..]];
        decode(o.size, s, b, threshold).unwrap()
    }

    #[test]
    fn decode_table() {
        let mut o = empty(WIDE);
        // Stride 8, cell (10, 20): centre (164, 84); sides 1, 2, 3, 4 bins.
        put(&mut o, 0, 10, 20, 0.9, [1, 2, 3, 4]);
        // Stride 32, cell (0, 0): centre (16, 16); 0 bins left/top.
        put(&mut o, 2, 0, 0, 0.6, [0, 0, 2, 5]);
        // Below threshold: ignored.
        put(&mut o, 1, 3, 3, 0.4, [1, 1, 1, 1]);
        // A class other than person scoring high is ignored too.
        o.scores[1][5 * CLASSES + 3] = 0.99;
        let got = run(&o, 0.5);
        let expect = [
            RawBox {
                x1: 156.0,
                y1: 68.0,
                x2: 188.0,
                y2: 116.0,
                score: 0.9,
            },
            RawBox {
                x1: 16.0,
                y1: 16.0,
                x2: 80.0,
                y2: 176.0,
                score: 0.6,
            },
        ];
        assert_eq!(got.len(), expect.len(), "{got:?}");
        for (g, e) in got.iter().zip(&expect) {
            for (a, b) in [
                (g.x1, e.x1),
                (g.y1, e.y1),
                (g.x2, e.x2),
                (g.y2, e.y2),
                (g.score, e.score),
            ] {
                assert!((a - b).abs() < 1e-3, "{g:?} vs {e:?}");
            }
        }
    }

    #[test]
    fn wrong_output_sizes_are_an_error_not_a_panic() {
        let mut o = empty(WIDE);
        o.boxes[1].pop();
        let s = [&o.scores[0][..], &o.scores[1][..], &o.scores[2][..]];
        let b = [&o.boxes[0][..], &o.boxes[1][..], &o.boxes[2][..]];
        assert!(decode(WIDE, s, b, 0.5).is_err());
        // Outputs of a square input do not fit a wide one either.
        let square = empty(InputSize {
            width: 416,
            height: 416,
        });
        let s = [
            &square.scores[0][..],
            &square.scores[1][..],
            &square.scores[2][..],
        ];
        let b = [
            &square.boxes[0][..],
            &square.boxes[1][..],
            &square.boxes[2][..],
        ];
        assert!(decode(WIDE, s, b, 0.5).is_err());
    }

    #[test]
    fn input_sizes_keep_the_aspect_in_multiples_of_32() {
        let roi = |width, height| Roi {
            x0: 0,
            y0: 0,
            width,
            height,
        };
        let check = |r: Roi, w: usize, h: usize| {
            assert_eq!(
                input_size(r),
                InputSize {
                    width: w,
                    height: h
                },
                "{r:?}"
            )
        };
        check(roi(640, 360), 416, 256); // 16:9: 234 rows of image, padded to 256
        check(roi(640, 480), 416, 320); // 4:3: 312 -> 320
        check(roi(480, 640), 320, 416); // portrait
        check(roi(416, 416), 416, 416);
        check(roi(2000, 10), 416, 32);
    }

    #[test]
    fn expected_bin_is_the_softmax_mean() {
        assert!((expected_bin(&[0.0; 11]) - 5.0).abs() < 1e-5);
        let mut two = [-100.0; 11];
        two[2] = 0.0;
        two[4] = 0.0;
        assert!((expected_bin(&two) - 3.0).abs() < 1e-5);
    }

    #[test]
    fn tiles_overlap_and_cover_the_frame() {
        let t = tiles(Roi {
            x0: 0,
            y0: 0,
            width: 640,
            height: 480,
        });
        assert_eq!(t.len(), 4);
        assert_eq!(
            t[0],
            Roi {
                x0: 0,
                y0: 0,
                width: 384,
                height: 288
            }
        );
        assert_eq!(
            t[3],
            Roi {
                x0: 256,
                y0: 192,
                width: 384,
                height: 288
            }
        );
    }

    #[test]
    fn detail_tiles_cover_the_detail_inside_the_region_at_a_finer_scale() {
        let region = Roi {
            x0: 0,
            y0: 0,
            width: 640,
            height: 480,
        };
        // The top half of a 640x480 view: three tiles of 320x240.
        let top = Roi {
            height: 240,
            ..region
        };
        let t = detail_tiles(top, region);
        assert_eq!(t.len(), 3, "{t:?}");
        assert_eq!((t[0].x0, t[1].x0, t[2].x0), (0, 160, 320));
        assert!(t
            .iter()
            .all(|r| r.width == 320 && r.height == 240 && r.y0 == 0));
        // Each is seen 1.3 times larger than the frame.
        assert_eq!(input_size(t[0]).width, 416);
        // Clipped to the region; nothing outside it.
        let right = Roi {
            x0: 500,
            width: 140,
            ..region
        };
        let inside = Roi {
            width: 300,
            ..region
        };
        assert!(detail_tiles(right, inside).is_empty());
        let small = detail_tiles(
            Roi {
                x0: 100,
                y0: 100,
                width: 100,
                height: 50,
            },
            region,
        );
        assert_eq!(
            small,
            [Roi {
                x0: 100,
                y0: 100,
                width: 100,
                height: 50
            }]
        );
    }

    #[test]
    fn a_normalised_region_maps_to_whole_pixels_inside_the_frame() {
        let frame = Frame::new("t".into(), 640, 480, vec![0; 640 * 480 * 3], 0).unwrap();
        let roi = to_roi(
            BBox {
                x1: 0.25,
                y1: 0.5,
                x2: 0.75,
                y2: 1.0,
            },
            &frame,
        );
        assert_eq!(
            roi,
            Roi {
                x0: 160,
                y0: 240,
                width: 320,
                height: 240
            }
        );
        assert_eq!(to_roi(SearchArea::FULL.region, &frame), Roi::full(&frame));
    }

    #[test]
    fn boxes_cut_by_an_inner_tile_edge_are_dropped() {
        let frame = Frame::new("t".into(), 100, 100, vec![0; 100 * 100 * 3], 0).unwrap();
        let lb = Letterbox {
            roi: Roi {
                x0: 40,
                y0: 0,
                width: 60,
                height: 60,
            },
            scale: 1.0,
        };
        let inside = RawBox {
            x1: 10.0,
            y1: 10.0,
            x2: 20.0,
            y2: 40.0,
            score: 0.9,
        };
        let at_inner_left_edge = RawBox { x1: 0.5, ..inside };
        let at_outer_right_edge = RawBox { x2: 60.0, ..inside };
        let d = to_frame(&inside, &lb, &frame, true).unwrap();
        assert!((d.bbox.x1 - 0.5).abs() < 1e-6 && (d.bbox.y2 - 0.4).abs() < 1e-6);
        assert!(to_frame(&at_inner_left_edge, &lb, &frame, true).is_none());
        assert!(to_frame(&at_outer_right_edge, &lb, &frame, true).is_some());
        assert!(to_frame(&at_inner_left_edge, &lb, &frame, false).is_some());
    }
}
