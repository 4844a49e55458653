//! The privacy gate. `RedactedFrame` can only be made here, by `Redactor`,
//! and it is the only frame type with an encoder: the video writer, the
//! snapshot endpoint and every other exporter take a `RedactedFrame`. So any
//! code path that wants pixels out of the process passes through redaction,
//! by construction (`tests/ui` holds the compile-fail proofs).
//!
//! Three layers keep a face from slipping through:
//! - recall: faces (grown by the mask scale) and the head of every detected
//!   person are redacted, so a profile or a face too small for the face
//!   model is still covered;
//! - temporal hold (`RegionHold`): a region redacted in one frame stays
//!   redacted for the next frames at its predicted position, so a detector
//!   that flickers off for a frame or two leaks nothing;
//! - fail closed: when a detector failed, timed out or fell behind, the
//!   whole frame is obscured.

use crate::clock::UnixMs;
use crate::detection::{Detection, Detections};
use crate::frame::{CameraId, Frame};
use crate::geometry::BBox;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RedactionMode {
    /// The default: a blur strong enough that no face detector (nor a
    /// person) finds a face in it.
    #[default]
    Blur,
    /// A mosaic of about 5x5 blocks per region.
    Pixelate,
    Fill,
}

/// Share of a person box's height, from its top, treated as the head. Faces
/// far from the camera (a few pixels) escape face detectors, so every
/// detected person's head is redacted as well.
const HEAD_SHARE: f32 = 0.22;
/// Person boxes are grown by this factor in full-body redaction (limbs the
/// box cut off).
const BODY_SCALE: f32 = 1.1;
/// A held region grows by this share per frame it is carried without a
/// detection, to cover the uncertainty of its predicted position.
const HOLD_GROWTH: f32 = 0.1;
/// Face regions reach at least this many pixels beyond the detected box:
/// the boxes of small faces are the least precise, and the mask scale alone
/// adds little to them.
const MIN_MARGIN_PX: f32 = 4.0;
/// Grey used for filled regions and for frames obscured whole.
pub const FILL: [u8; 3] = [128, 128, 128];

/// What to redact and how.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedactionPolicy {
    pub mode: RedactionMode,
    /// Face and head boxes are grown by this factor (hair, ears, chin).
    pub mask_scale: f32,
    /// Redact whole persons, not only faces and heads.
    pub full_body: bool,
    /// Frames a region stays redacted after its last detection.
    pub hold_frames: u32,
}

impl Default for RedactionPolicy {
    fn default() -> Self {
        Self {
            mode: RedactionMode::default(),
            mask_scale: 1.3,
            full_body: false,
            hold_frames: 5,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Redactor {
    policy: RedactionPolicy,
}

/// A frame in which every face (and every person's head) is obscured, or the
/// whole frame is, when detection failed.
#[derive(Debug)]
pub struct RedactedFrame {
    camera: CameraId,
    width: u32,
    height: u32,
    rgb: Vec<u8>,
    timestamp_ms: UnixMs,
    stats: RedactionStats,
}

/// What was obscured in one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedactionStats {
    /// Faces found by the face detector in this frame.
    pub faces: usize,
    /// Persons whose head (or whole body) was redacted.
    pub persons: usize,
    /// Regions carried over from earlier frames by the temporal hold.
    pub held: usize,
    /// True when detection failed and the whole frame was obscured.
    pub obscured_whole: bool,
}

/// One stream's memory of recently redacted regions. Keep one per camera or
/// file, and pass the frames of that stream to `Redactor::redact` in order.
#[derive(Debug, Default)]
pub struct RegionHold {
    held: Vec<Held>,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    bbox: BBox,
    /// Centre motion per frame, from the last two sightings.
    velocity: (f32, f32),
    /// Frames since the region was last detected.
    missed: u32,
}

impl RegionHold {
    /// The regions to redact in this frame: the detected ones plus those
    /// detected within the last `hold_frames` frames and not seen now, moved
    /// along their last motion and grown. Updates the memory.
    fn regions(&mut self, detected: Vec<BBox>, hold_frames: u32) -> (Vec<BBox>, usize) {
        let mut next: Vec<Held> = Vec::with_capacity(detected.len() + self.held.len());
        let mut unmatched: Vec<Option<Held>> = self.held.drain(..).map(Some).collect();
        for bbox in &detected {
            let best = unmatched
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.map(|h| (i, predicted(&h).iou(bbox))))
                .filter(|&(_, iou)| iou > 0.1)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let velocity = match best {
                Some((i, _)) => {
                    let before = unmatched[i].take().map(|h| h.bbox).unwrap_or(*bbox);
                    let (bx, by) = centre(&before);
                    let (nx, ny) = centre(bbox);
                    (nx - bx, ny - by)
                }
                None => (0.0, 0.0),
            };
            next.push(Held {
                bbox: *bbox,
                velocity,
                missed: 0,
            });
        }
        let mut regions = detected;
        let mut carried = 0;
        for held in unmatched.into_iter().flatten() {
            if held.missed >= hold_frames {
                continue;
            }
            let moved = Held {
                bbox: predicted(&held).scaled(1.0 + HOLD_GROWTH),
                missed: held.missed + 1,
                ..held
            };
            regions.push(moved.bbox);
            carried += 1;
            next.push(moved);
        }
        self.held = next;
        (regions, carried)
    }
}

fn centre(b: &BBox) -> (f32, f32) {
    ((b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0)
}

/// Where a held region is expected in the next frame.
fn predicted(h: &Held) -> BBox {
    let (dx, dy) = h.velocity;
    BBox {
        x1: (h.bbox.x1 + dx).clamp(0.0, 1.0),
        y1: (h.bbox.y1 + dy).clamp(0.0, 1.0),
        x2: (h.bbox.x2 + dx).clamp(0.0, 1.0),
        y2: (h.bbox.y2 + dy).clamp(0.0, 1.0),
    }
}

impl Redactor {
    pub fn new(policy: RedactionPolicy) -> Self {
        Self {
            policy: RedactionPolicy {
                mask_scale: policy.mask_scale.max(1.0),
                ..policy
            },
        }
    }

    pub fn policy(&self) -> RedactionPolicy {
        self.policy
    }

    /// Consumes the raw frame: after this call no unredacted copy of it exists
    /// in the caller's hands. A failed face detection obscures the frame whole.
    pub fn redact(
        &self,
        frame: Frame,
        detections: &Detections,
        hold: &mut RegionHold,
    ) -> RedactedFrame {
        let faces = match &detections.faces {
            Ok(faces) => faces,
            Err(_) => return self.obscure_whole(frame),
        };
        let size = (frame.width(), frame.height());
        let (regions, held) = hold.regions(
            self.regions(faces, &detections.persons, size),
            self.policy.hold_frames,
        );
        let (camera, width, height, mut rgb, timestamp_ms) = frame.into_parts();
        let mut image = Pixels {
            rgb: &mut rgb,
            width,
            height,
        };
        for region in &regions {
            let rect = image.to_pixels(region);
            match self.policy.mode {
                RedactionMode::Fill => image.fill(rect),
                RedactionMode::Pixelate => image.pixelate(rect),
                RedactionMode::Blur => image.blur(rect),
            }
        }
        let stats = RedactionStats {
            faces: faces.len(),
            persons: detections.persons.len(),
            held,
            obscured_whole: false,
        };
        RedactedFrame::from_parts((camera, width, height, rgb, timestamp_ms), stats)
    }

    /// Fail closed: the frame with every pixel replaced, for when detection
    /// failed, timed out or fell behind.
    pub fn obscure_whole(&self, frame: Frame) -> RedactedFrame {
        let (camera, width, height, mut rgb, timestamp_ms) = frame.into_parts();
        for pixel in rgb.chunks_exact_mut(3) {
            pixel.copy_from_slice(&FILL);
        }
        let stats = RedactionStats {
            obscured_whole: true,
            ..RedactionStats::default()
        };
        RedactedFrame::from_parts((camera, width, height, rgb, timestamp_ms), stats)
    }

    /// `size` is the frame's (width, height) in pixels.
    fn regions(&self, faces: &[Detection], persons: &[Detection], size: (u32, u32)) -> Vec<BBox> {
        let scale = self.policy.mask_scale;
        let (mx, my) = (MIN_MARGIN_PX / size.0 as f32, MIN_MARGIN_PX / size.1 as f32);
        let faces = faces.iter().map(|f| {
            let b = f.bbox;
            let grown = b.scaled(scale);
            BBox {
                x1: grown.x1.min(b.x1 - mx).max(0.0),
                y1: grown.y1.min(b.y1 - my).max(0.0),
                x2: grown.x2.max(b.x2 + mx).min(1.0),
                y2: grown.y2.max(b.y2 + my).min(1.0),
            }
        });
        let persons = persons.iter().map(|p| {
            let b = p.bbox;
            if self.policy.full_body {
                b.scaled(BODY_SCALE)
            } else {
                BBox {
                    y2: b.y1 + b.height() * HEAD_SHARE,
                    ..b
                }
                .scaled(scale)
            }
        });
        faces.chain(persons).collect()
    }
}

impl RedactedFrame {
    /// Private: only the redactor, having redacted the pixels, calls it.
    fn from_parts(
        (camera, width, height, rgb, timestamp_ms): (CameraId, u32, u32, Vec<u8>, UnixMs),
        stats: RedactionStats,
    ) -> Self {
        RedactedFrame {
            camera,
            width,
            height,
            rgb,
            timestamp_ms,
            stats,
        }
    }

    pub fn camera(&self) -> &CameraId {
        &self.camera
    }
    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    pub fn timestamp_ms(&self) -> UnixMs {
        self.timestamp_ms
    }
    pub fn pixels(&self) -> &[u8] {
        &self.rgb
    }
    pub fn stats(&self) -> RedactionStats {
        self.stats
    }
    /// The pixels, for an encoder that takes ownership of its input buffers.
    pub fn into_pixels(self) -> Vec<u8> {
        self.rgb
    }
    /// The frame as an image file: PNG, or JPEG at quality 90.
    pub fn encode(&self, format: StillFormat) -> Result<Vec<u8>, image::ImageError> {
        let mut out = std::io::Cursor::new(Vec::new());
        match format {
            StillFormat::Png => image::write_buffer_with_format(
                &mut out,
                &self.rgb,
                self.width,
                self.height,
                image::ExtendedColorType::Rgb8,
                image::ImageFormat::Png,
            )?,
            StillFormat::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                .encode(
                &self.rgb,
                self.width,
                self.height,
                image::ExtendedColorType::Rgb8,
            )?,
        }
        Ok(out.into_inner())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StillFormat {
    Png,
    Jpeg,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct PixelRect {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

struct Pixels<'a> {
    rgb: &'a mut [u8],
    width: u32,
    height: u32,
}

impl Pixels<'_> {
    /// Rounds outwards, so a region never shrinks below what was detected.
    fn to_pixels(&self, b: &BBox) -> PixelRect {
        let (w, h) = (self.width as f32, self.height as f32);
        PixelRect {
            x0: (b.x1 * w).floor().clamp(0.0, w) as u32,
            y0: (b.y1 * h).floor().clamp(0.0, h) as u32,
            x1: (b.x2 * w).ceil().clamp(0.0, w) as u32,
            y1: (b.y2 * h).ceil().clamp(0.0, h) as u32,
        }
    }

    fn index(&self, x: u32, y: u32) -> usize {
        (y as usize * self.width as usize + x as usize) * 3
    }

    fn fill(&mut self, r: PixelRect) {
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                let i = self.index(x, y);
                self.rgb[i..i + 3].copy_from_slice(&FILL);
            }
        }
    }

    /// Replaces the region by at most about 5x5 blocks of its mean colour.
    fn pixelate(&mut self, r: PixelRect) {
        let side = (r.x1 - r.x0).max(r.y1 - r.y0);
        let block = side.div_ceil(5).max(2);
        let mut by = r.y0;
        while by < r.y1 {
            let ey = (by + block).min(r.y1);
            let mut bx = r.x0;
            while bx < r.x1 {
                let ex = (bx + block).min(r.x1);
                let cell = PixelRect {
                    x0: bx,
                    y0: by,
                    x1: ex,
                    y1: ey,
                };
                let mean = self.mean(cell);
                for y in by..ey {
                    for x in bx..ex {
                        let i = self.index(x, y);
                        self.rgb[i..i + 3].copy_from_slice(&mean);
                    }
                }
                bx = ex;
            }
            by = ey;
        }
    }

    /// A strong blur: three passes of a box filter as wide as a third of
    /// the region (close to a Gaussian), over the region's own pixels only.
    /// Nothing finer than about half the face survives: no eyes, no mouth,
    /// nothing a face detector or a person would recognise.
    fn blur(&mut self, r: PixelRect) {
        let (w, h) = ((r.x1 - r.x0) as usize, (r.y1 - r.y0) as usize);
        if w == 0 || h == 0 {
            return;
        }
        let radius = (w.max(h) / 6).max(1);
        let mut plane = vec![0f32; w * h];
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    plane[y * w + x] =
                        self.rgb[self.index(r.x0 + x as u32, r.y0 + y as u32) + c] as f32;
                }
            }
            for _ in 0..3 {
                box_blur_lines(&mut plane, w, h, 1, w, radius);
                box_blur_lines(&mut plane, h, w, w, 1, radius);
            }
            for y in 0..h {
                for x in 0..w {
                    let i = self.index(r.x0 + x as u32, r.y0 + y as u32) + c;
                    self.rgb[i] = plane[y * w + x].round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }

    fn mean(&self, r: PixelRect) -> [u8; 3] {
        let mut sum = [0u64; 3];
        let mut n = 0u64;
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                let i = self.index(x, y);
                for (total, &value) in sum.iter_mut().zip(&self.rgb[i..i + 3]) {
                    *total += value as u64;
                }
                n += 1;
            }
        }
        let n = n.max(1);
        [(sum[0] / n) as u8, (sum[1] / n) as u8, (sum[2] / n) as u8]
    }
}

/// Box-filters `lines` lines of `len` samples in place (sample `i` of line
/// `l` at `l * line_step + i * step`), with a window of `2 * radius + 1`
/// clamped at the ends.
fn box_blur_lines(
    plane: &mut [f32],
    len: usize,
    lines: usize,
    step: usize,
    line_step: usize,
    radius: usize,
) {
    let mut line = vec![0f32; len];
    let mut prefix = vec![0f32; len + 1];
    for l in 0..lines {
        for (i, v) in line.iter_mut().enumerate() {
            *v = plane[l * line_step + i * step];
        }
        for i in 0..len {
            prefix[i + 1] = prefix[i] + line[i];
        }
        for i in 0..len {
            let (lo, hi) = (i.saturating_sub(radius), (i + radius + 1).min(len));
            plane[l * line_step + i * step] = (prefix[hi] - prefix[lo]) / (hi - lo) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of distinct pixel values, so any surviving original pixel shows.
    fn gradient_frame(w: u32, h: u32) -> Frame {
        let rgb = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        Frame::new("cam".into(), w, h, rgb, 0).unwrap()
    }

    fn redactor(mode: RedactionMode, mask_scale: f32) -> Redactor {
        Redactor::new(RedactionPolicy {
            mode,
            mask_scale,
            ..RedactionPolicy::default()
        })
    }

    fn face(x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
        Detection {
            bbox: BBox { x1, y1, x2, y2 },
            score: 0.9,
        }
    }

    fn unchanged_pixels(before: &[u8], after: &[u8], w: u32, r: PixelRect) -> usize {
        let mut same = 0;
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                let i = ((y * w + x) * 3) as usize;
                if before[i..i + 3] == after[i..i + 3] {
                    same += 1;
                }
            }
        }
        same
    }

    #[test]
    fn every_mode_destroys_the_face_region_and_keeps_the_rest() {
        for mode in [
            RedactionMode::Fill,
            RedactionMode::Pixelate,
            RedactionMode::Blur,
        ] {
            let frame = gradient_frame(100, 80);
            let before = frame.pixels().to_vec();
            let detections = Detections {
                persons: vec![],
                faces: Ok(vec![face(0.2, 0.25, 0.5, 0.75)]),
            };
            let out = redactor(mode, 1.0).redact(frame, &detections, &mut RegionHold::default());
            let face_px = PixelRect {
                x0: 20,
                y0: 20,
                x1: 50,
                y1: 60,
            };
            // Allow a handful of pixels to coincide with their block's mean by chance.
            let same = unchanged_pixels(&before, out.pixels(), 100, face_px);
            assert!(same < 30, "{mode:?}: {same} of 1200 face pixels unchanged");
            let outside = PixelRect {
                x0: 60,
                y0: 0,
                x1: 100,
                y1: 80,
            };
            assert_eq!(
                unchanged_pixels(&before, out.pixels(), 100, outside),
                40 * 80,
                "{mode:?}"
            );
            assert_eq!(out.stats().faces, 1);
            assert!(!out.stats().obscured_whole);
        }
    }

    #[test]
    fn failed_face_detection_obscures_the_whole_frame() {
        let frame = gradient_frame(64, 48);
        let detections = Detections {
            persons: vec![],
            faces: Err("model timed out".into()),
        };
        let out = redactor(RedactionMode::Pixelate, 1.3).redact(
            frame,
            &detections,
            &mut RegionHold::default(),
        );
        assert!(out.stats().obscured_whole);
        assert!(out.pixels().chunks(3).all(|p| p == FILL));
    }

    #[test]
    fn person_heads_are_redacted_even_without_faces() {
        let frame = gradient_frame(100, 100);
        let before = frame.pixels().to_vec();
        let person = face(0.4, 0.1, 0.6, 0.9);
        let detections = Detections {
            persons: vec![person],
            faces: Ok(vec![]),
        };
        let out = redactor(RedactionMode::Fill, 1.0).redact(
            frame,
            &detections,
            &mut RegionHold::default(),
        );
        let head = PixelRect {
            x0: 40,
            y0: 10,
            x1: 60,
            y1: 27,
        };
        assert_eq!(unchanged_pixels(&before, out.pixels(), 100, head), 0);
        let legs = PixelRect {
            x0: 40,
            y0: 50,
            x1: 60,
            y1: 90,
        };
        assert_eq!(unchanged_pixels(&before, out.pixels(), 100, legs), 20 * 40);
    }

    #[test]
    fn png_encoding_round_trips_the_redacted_pixels() {
        let frame = gradient_frame(16, 8);
        let detections = Detections {
            persons: vec![],
            faces: Ok(vec![]),
        };
        let out = redactor(RedactionMode::Fill, 1.0).redact(
            frame,
            &detections,
            &mut RegionHold::default(),
        );
        let png = out.encode(StillFormat::Png).unwrap();
        let decoded = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(decoded.as_raw(), out.pixels());
    }

    #[test]
    fn full_body_mode_covers_the_whole_person() {
        let frame = gradient_frame(100, 100);
        let before = frame.pixels().to_vec();
        let detections = Detections {
            persons: vec![face(0.4, 0.1, 0.6, 0.9)],
            faces: Ok(vec![]),
        };
        let policy = RedactionPolicy {
            mode: RedactionMode::Fill,
            full_body: true,
            ..RedactionPolicy::default()
        };
        let out = Redactor::new(policy).redact(frame, &detections, &mut RegionHold::default());
        let body = PixelRect {
            x0: 40,
            y0: 10,
            x1: 60,
            y1: 90,
        };
        assert_eq!(unchanged_pixels(&before, out.pixels(), 100, body), 0);
        assert_eq!(out.stats().persons, 1);
    }

    /// Frames of one stream in which a face moving right by 0.05 per frame
    /// is detected in frames 0-2, missed in 3-4 (flicker), and gone after.
    #[test]
    fn a_face_missed_for_a_few_frames_stays_redacted_at_its_predicted_place() {
        let redactor = redactor(RedactionMode::Fill, 1.0);
        let mut hold = RegionHold::default();
        let face_at = |t: u32| {
            let x = 0.1 + 0.05 * t as f32;
            face(x, 0.4, x + 0.1, 0.5)
        };
        for t in 0..12u32 {
            let frame = gradient_frame(200, 100);
            let detected = if t < 3 { vec![face_at(t)] } else { vec![] };
            let detections = Detections {
                persons: vec![],
                faces: Ok(detected),
            };
            let before = frame.pixels().to_vec();
            let out = redactor.redact(frame, &detections, &mut hold);
            let b = face_at(t).bbox;
            let rect = PixelRect {
                x0: (b.x1 * 200.0) as u32,
                y0: (b.y1 * 100.0) as u32,
                x1: (b.x2 * 200.0) as u32,
                y1: (b.y2 * 100.0) as u32,
            };
            let left = unchanged_pixels(&before, out.pixels(), 200, rect);
            // Detected (0-2) or held (3-7, the default hold of 5 frames).
            if t < 8 {
                assert_eq!(left, 0, "frame {t}: the face leaked");
                assert_eq!(out.stats().held, usize::from(t >= 3), "frame {t}");
            } else {
                assert_eq!(out.stats().held, 0, "frame {t}: held too long");
                assert_eq!(unchanged_pixels(&before, out.pixels(), 200, rect), 20 * 10);
            }
        }
    }

    #[test]
    fn a_hold_of_zero_frames_redacts_only_what_is_detected() {
        let redactor = Redactor::new(RedactionPolicy {
            mode: RedactionMode::Fill,
            hold_frames: 0,
            ..RedactionPolicy::default()
        });
        let mut hold = RegionHold::default();
        for (t, faces) in [vec![face(0.1, 0.1, 0.3, 0.3)], vec![]]
            .into_iter()
            .enumerate()
        {
            let frame = gradient_frame(50, 50);
            let detections = Detections {
                persons: vec![],
                faces: Ok(faces),
            };
            let out = redactor.redact(frame, &detections, &mut hold);
            assert_eq!(out.stats().held, 0, "frame {t}");
            assert_eq!(
                out.pixels().chunks(3).any(|p| p == FILL),
                t == 0,
                "frame {t}"
            );
        }
    }
}
