//! The privacy gate. `RedactedFrame` can only be made here, by `Redactor`,
//! and it is the only frame type with an encoder: the video writer, the
//! snapshot endpoint and every other exporter take a `RedactedFrame`. So any
//! code path that wants pixels out of the process passes through redaction,
//! by construction (`tests/ui` holds the compile-fail proofs). Redaction
//! takes the frame's `FaceScan`, the proof that the face detector ran on it.
//!
//! Three layers keep a face from slipping through:
//! - recall: faces (grown by the mask scale) and the head of every detected
//!   person are redacted, so a profile or a face too small for the face
//!   model is still covered;
//! - temporal hold (`RegionHold`): a region redacted in one frame stays
//!   redacted for `hold_ms` after, at its predicted position, so a detector
//!   that flickers off for a frame or two leaks nothing;
//! - fail closed: when a detector failed, timed out or fell behind, or the
//!   face scan is another frame's, the whole frame is obscured.

use super::frame::{CameraId, FaceScan, Frame};
use crate::clock::UnixMs;
use crate::detection::Detection;
use crate::geometry::BBox;
use serde::Deserialize;
use std::fmt;

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
/// A held region grows by this share of its size per millisecond since its
/// last detection (10 % per 100 ms), to cover the uncertainty of its
/// predicted position...
const HOLD_GROWTH_PER_MS: f32 = 0.001;
/// ...up to twice its size.
const HOLD_MAX_SCALE: f32 = 2.0;
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
    /// Milliseconds (of the frames' timestamps) a region stays redacted
    /// after its last detection.
    pub hold_ms: u32,
}

impl Default for RedactionPolicy {
    fn default() -> Self {
        Self {
            mode: RedactionMode::default(),
            mask_scale: 1.3,
            full_body: false,
            hold_ms: 2500,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Redactor {
    policy: RedactionPolicy,
}

/// A frame in which every face (and every person's head) is obscured, or the
/// whole frame is, when detection failed. Its `Debug` prints no pixels.
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
    /// True when the whole frame was obscured: detection failed, or the
    /// frame came older than one the hold had already seen.
    pub obscured_whole: bool,
}

/// One stream's memory of recently redacted regions. Keep one per camera or
/// file, and pass the frames of that stream to `Redactor::redact` in time
/// order: a frame older than the latest one seen is obscured whole, as the
/// hold cannot run backwards. Two such frames in a row, the second no older
/// than the first, and both further back than the hold itself (a late frame
/// is a frame or two behind), mean the clock stepped back (live frames
/// carry wall-clock time): the hold carries on from there, its regions as
/// old as they were, rather than obscure every frame until the clock
/// catches up.
#[derive(Debug, Default)]
pub struct RegionHold {
    held: Vec<Held>,
    /// The timestamp of the latest frame redacted with this hold.
    latest: Option<UnixMs>,
    /// The frame just refused for being older than `latest`.
    refused: Option<UnixMs>,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    /// Where the region was last detected, and when.
    bbox: BBox,
    seen_at: UnixMs,
    /// Centre motion per millisecond, from the last two sightings.
    velocity: (f32, f32),
}

impl RegionHold {
    /// The regions to redact in the frame at `at`: the detected ones plus
    /// those detected within the last `hold_ms` and not seen now, moved
    /// along their last motion and grown with the time since. Updates the
    /// memory. None for a frame older than the latest seen.
    fn regions(
        &mut self,
        detected: Vec<BBox>,
        at: UnixMs,
        hold_ms: u32,
    ) -> Option<(Vec<BBox>, usize)> {
        if let Some(latest) = self.latest.filter(|&latest| at < latest) {
            match self.refused {
                // The clock stepped back at the refused frame: move every
                // region back with it, keeping its age.
                Some(step) if at >= step && latest - step > i64::from(hold_ms) => {
                    for held in &mut self.held {
                        held.seen_at += step - latest;
                    }
                }
                _ => {
                    self.refused = Some(at);
                    return None;
                }
            }
        }
        self.refused = None;
        self.latest = Some(at);
        let mut next: Vec<Held> = Vec::with_capacity(detected.len() + self.held.len());
        let mut unmatched: Vec<Option<Held>> = self.held.drain(..).map(Some).collect();
        for bbox in &detected {
            let best = unmatched
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.map(|h| (i, h.predicted(at).iou(bbox))))
                .filter(|&(_, iou)| iou > 0.1)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let velocity = match best.and_then(|(i, _)| unmatched[i].take()) {
                // A sighting at the same time says nothing about motion.
                Some(before) if at > before.seen_at => {
                    let elapsed = (at - before.seen_at) as f32;
                    let (bx, by) = centre(&before.bbox);
                    let (nx, ny) = centre(bbox);
                    ((nx - bx) / elapsed, (ny - by) / elapsed)
                }
                Some(before) => before.velocity,
                None => (0.0, 0.0),
            };
            next.push(Held {
                bbox: *bbox,
                seen_at: at,
                velocity,
            });
        }
        let mut regions = detected;
        let mut carried = 0;
        for held in unmatched.into_iter().flatten() {
            let elapsed = at - held.seen_at;
            if elapsed > i64::from(hold_ms) {
                continue;
            }
            let growth = 1.0 + elapsed as f32 * HOLD_GROWTH_PER_MS;
            regions.push(held.predicted(at).scaled(growth.min(HOLD_MAX_SCALE)));
            carried += 1;
            next.push(held);
        }
        self.held = next;
        Some((regions, carried))
    }
}

fn centre(b: &BBox) -> (f32, f32) {
    ((b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0)
}

impl Held {
    /// Where the region is expected at `at`: moved along its last motion.
    fn predicted(&self, at: UnixMs) -> BBox {
        let elapsed = (at - self.seen_at) as f32;
        let (dx, dy) = (self.velocity.0 * elapsed, self.velocity.1 * elapsed);
        BBox {
            x1: (self.bbox.x1 + dx).clamp(0.0, 1.0),
            y1: (self.bbox.y1 + dy).clamp(0.0, 1.0),
            x2: (self.bbox.x2 + dx).clamp(0.0, 1.0),
            y2: (self.bbox.y2 + dy).clamp(0.0, 1.0),
        }
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
    /// in the caller's hands. `faces` must be this frame's scan; a failed
    /// scan, or another frame's, obscures the frame whole, and so does a
    /// frame older than one `hold` has seen.
    pub fn redact(
        &self,
        frame: Frame,
        faces: &FaceScan,
        persons: &[Detection],
        hold: &mut RegionHold,
    ) -> RedactedFrame {
        let Some(faces) = faces.faces_in(&frame) else {
            return self.obscure_whole(frame);
        };
        let size = (frame.width(), frame.height());
        let detected = self.regions(faces, persons, size);
        let Some((regions, held)) =
            hold.regions(detected, frame.timestamp_ms(), self.policy.hold_ms)
        else {
            return self.obscure_whole(frame);
        };
        let mask = frame.mask().cloned();
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
        // A blur or mosaic across a mask's edge spreads outside colours
        // into it: the mask is blank in what is published, whatever is
        // redacted next to it.
        if let Some(mask) = mask {
            mask.blank(&mut rgb, width, height);
        }
        let stats = RedactionStats {
            faces: faces.len(),
            persons: persons.len(),
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

impl fmt::Debug for RedactedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedactedFrame")
            .field("camera", &self.camera)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("timestamp_ms", &self.timestamp_ms)
            .finish_non_exhaustive()
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
    use crate::pixels::testing::GivenFaces;

    /// A frame of distinct pixel values, so any surviving original pixel shows.
    fn gradient_frame(w: u32, h: u32) -> Frame {
        gradient_frame_at(w, h, 0)
    }

    fn gradient_frame_at(w: u32, h: u32, at: UnixMs) -> Frame {
        let rgb = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        Frame::new("cam".into(), w, h, rgb, at).unwrap()
    }

    fn redactor(mode: RedactionMode, mask_scale: f32) -> Redactor {
        Redactor::new(RedactionPolicy {
            mode,
            mask_scale,
            ..RedactionPolicy::default()
        })
    }

    /// Redacts `frame` as if the face model had found `faces` in it.
    fn redact(
        redactor: &Redactor,
        frame: Frame,
        faces: Vec<Detection>,
        persons: &[Detection],
        hold: &mut RegionHold,
    ) -> RedactedFrame {
        let scan = frame.scan_faces(&mut GivenFaces::found(faces));
        redactor.redact(frame, &scan, persons, hold)
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
            let faces = vec![face(0.2, 0.25, 0.5, 0.75)];
            let out = redact(
                &redactor(mode, 1.0),
                frame,
                faces,
                &[],
                &mut RegionHold::default(),
            );
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
        let scan = frame.scan_faces(&mut GivenFaces::failing("model timed out"));
        let out = redactor(RedactionMode::Pixelate, 1.3).redact(
            frame,
            &scan,
            &[],
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
        let out = redact(
            &redactor(RedactionMode::Fill, 1.0),
            frame,
            vec![],
            &[person],
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
        let out = redact(
            &redactor(RedactionMode::Fill, 1.0),
            frame,
            vec![],
            &[],
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
        let person = face(0.4, 0.1, 0.6, 0.9);
        let policy = RedactionPolicy {
            mode: RedactionMode::Fill,
            full_body: true,
            ..RedactionPolicy::default()
        };
        let out = redact(
            &Redactor::new(policy),
            frame,
            vec![],
            &[person],
            &mut RegionHold::default(),
        );
        let body = PixelRect {
            x0: 40,
            y0: 10,
            x1: 60,
            y1: 90,
        };
        assert_eq!(unchanged_pixels(&before, out.pixels(), 100, body), 0);
        assert_eq!(out.stats().persons, 1);
    }

    /// Frames of one stream at 2 fps in which a face moving right by 0.05
    /// per frame is detected in frames 0-2, missed in 3-4 (flicker), and
    /// gone after.
    #[test]
    fn a_face_missed_for_a_few_frames_stays_redacted_at_its_predicted_place() {
        let redactor = redactor(RedactionMode::Fill, 1.0);
        let mut hold = RegionHold::default();
        let face_at = |t: u32| {
            let x = 0.1 + 0.05 * t as f32;
            face(x, 0.4, x + 0.1, 0.5)
        };
        for t in 0..12u32 {
            let frame = gradient_frame_at(200, 100, t as i64 * 500);
            let detected = if t < 3 { vec![face_at(t)] } else { vec![] };
            let before = frame.pixels().to_vec();
            let out = redact(&redactor, frame, detected, &[], &mut hold);
            let b = face_at(t).bbox;
            let rect = PixelRect {
                x0: (b.x1 * 200.0) as u32,
                y0: (b.y1 * 100.0) as u32,
                x1: (b.x2 * 200.0) as u32,
                y1: (b.y2 * 100.0) as u32,
            };
            let left = unchanged_pixels(&before, out.pixels(), 200, rect);
            // Detected (0-2) or held (3-7: the default hold of 2500 ms).
            if t < 8 {
                assert_eq!(left, 0, "frame {t}: the face leaked");
                assert_eq!(out.stats().held, usize::from(t >= 3), "frame {t}");
            } else {
                assert_eq!(out.stats().held, 0, "frame {t}: held too long");
                assert_eq!(unchanged_pixels(&before, out.pixels(), 200, rect), 20 * 10);
            }
        }
    }

    fn hold_of(hold_ms: u32) -> Redactor {
        Redactor::new(RedactionPolicy {
            mode: RedactionMode::Fill,
            mask_scale: 1.0,
            hold_ms,
            ..RedactionPolicy::default()
        })
    }

    /// Frames at 25 fps: the hold is the same 200 ms whether frames between
    /// were dropped or not.
    #[test]
    fn the_hold_counts_time_not_frames() {
        let redactor = hold_of(200);
        let seen = || vec![face(0.1, 0.1, 0.3, 0.3)];
        // Every frame: held until 200 ms after the last sighting (at 40).
        let mut hold = RegionHold::default();
        for (at, faces, held) in [(0, seen(), 0), (40, seen(), 0), (80, vec![], 1)]
            .into_iter()
            .chain([120, 160, 200, 240].map(|at| (at, vec![], 1)))
            .chain([(280, vec![], 0)])
        {
            let out = redact(
                &redactor,
                gradient_frame_at(50, 50, at),
                faces,
                &[],
                &mut hold,
            );
            assert_eq!(out.stats().held, held, "frame at {at} ms");
        }
        // Frames dropped after the sighting: the next one, 300 ms on, is
        // past the hold.
        let mut hold = RegionHold::default();
        redact(
            &redactor,
            gradient_frame_at(50, 50, 0),
            seen(),
            &[],
            &mut hold,
        );
        let out = redact(
            &redactor,
            gradient_frame_at(50, 50, 300),
            vec![],
            &[],
            &mut hold,
        );
        assert_eq!(out.stats().held, 0);
        assert!(!out.pixels().chunks(3).any(|p| p == FILL));
    }

    #[test]
    fn a_clock_stepping_back_costs_one_frame_and_keeps_the_regions() {
        let redactor = hold_of(2500);
        let mut hold = RegionHold::default();
        let seen = vec![face(0.1, 0.1, 0.3, 0.3)];
        let at = |t| gradient_frame_at(50, 50, t);
        assert!(
            !redact(&redactor, at(10_000), seen, &[], &mut hold)
                .stats()
                .obscured_whole
        );
        let out = redact(&redactor, at(10_500), vec![], &[], &mut hold);
        assert_eq!(out.stats().held, 1);
        // The clock steps back an hour: that frame is obscured whole ...
        let back = 10_500 - 3_600_000;
        assert!(
            redact(&redactor, at(back), vec![], &[], &mut hold)
                .stats()
                .obscured_whole
        );
        // ... and the stream goes on from there, the region 1 s old now and
        // still held, until its 2.5 s are up in the new timeline.
        let out = redact(&redactor, at(back + 500), vec![], &[], &mut hold);
        assert!(!out.stats().obscured_whole);
        assert_eq!(out.stats().held, 1);
        let out = redact(&redactor, at(back + 1_900), vec![], &[], &mut hold);
        assert_eq!(out.stats().held, 1, "2.4 s after its last sighting");
        let out = redact(&redactor, at(back + 2_100), vec![], &[], &mut hold);
        assert_eq!(out.stats().held, 0, "2.6 s after its last sighting");
    }

    #[test]
    fn a_frame_older_than_the_latest_is_obscured_whole() {
        let redactor = hold_of(2500);
        let mut hold = RegionHold::default();
        let seen = vec![face(0.1, 0.1, 0.3, 0.3)];
        let out = redact(
            &redactor,
            gradient_frame_at(50, 50, 1000),
            seen,
            &[],
            &mut hold,
        );
        assert!(!out.stats().obscured_whole);
        // Out of order: the hold does not run backwards.
        let out = redact(
            &redactor,
            gradient_frame_at(50, 50, 500),
            vec![],
            &[],
            &mut hold,
        );
        assert!(out.stats().obscured_whole);
        assert!(out.pixels().chunks(3).all(|p| p == FILL));
        // The stream goes on from its latest frame, the region still held.
        let out = redact(
            &redactor,
            gradient_frame_at(50, 50, 1500),
            vec![],
            &[],
            &mut hold,
        );
        assert!(!out.stats().obscured_whole);
        assert_eq!(out.stats().held, 1);
    }

    #[test]
    fn held_regions_grow_with_time_up_to_twice_their_size() {
        let redactor = hold_of(5000);
        let mut hold = RegionHold::default();
        // 20 px square, plus the 4 px minimum margin on each side: 28 px.
        let seen = vec![face(0.4, 0.4, 0.6, 0.6)];
        let mut widths = Vec::new();
        for (at, faces) in [
            (0, seen),
            (100, vec![]),
            (500, vec![]),
            (1000, vec![]),
            (3000, vec![]),
        ] {
            let out = redact(
                &redactor,
                gradient_frame_at(100, 100, at),
                faces,
                &[],
                &mut hold,
            );
            let middle_row = &out.pixels()[50 * 100 * 3..51 * 100 * 3];
            widths.push(middle_row.chunks(3).filter(|p| *p == FILL).count());
        }
        // 1x, 1.1x, 1.5x, then twice the size, and no more.
        for (width, expected) in widths.iter().zip([28.0, 30.8, 42.0, 56.0, 56.0]) {
            assert!((*width as f32 - expected).abs() <= 2.0, "{widths:?}");
        }
    }

    #[test]
    fn a_hold_of_zero_ms_redacts_only_what_is_detected() {
        let redactor = hold_of(0);
        let mut hold = RegionHold::default();
        for (at, faces) in [(0, vec![face(0.1, 0.1, 0.3, 0.3)]), (40, vec![])] {
            let frame = gradient_frame_at(50, 50, at);
            let out = redact(&redactor, frame, faces, &[], &mut hold);
            assert_eq!(out.stats().held, 0, "frame at {at} ms");
            assert_eq!(
                out.pixels().chunks(3).any(|p| p == FILL),
                at == 0,
                "frame at {at} ms"
            );
        }
    }

    #[test]
    fn another_frames_scan_obscures_the_whole_frame() {
        let frame = gradient_frame(64, 48);
        let scanned = gradient_frame(64, 48);
        let scan = scanned.scan_faces(&mut GivenFaces::none());
        let out = redactor(RedactionMode::Fill, 1.0).redact(
            frame,
            &scan,
            &[],
            &mut RegionHold::default(),
        );
        assert!(out.stats().obscured_whole);
        assert!(out.pixels().chunks(3).all(|p| p == FILL));
    }

    #[test]
    fn debug_names_camera_size_and_time_but_prints_no_pixels() {
        let frame = Frame::new("lobby".into(), 64, 48, vec![173; 64 * 48 * 3], 1234).unwrap();
        let out = redact(
            &redactor(RedactionMode::Fill, 1.0),
            frame,
            vec![],
            &[],
            &mut RegionHold::default(),
        );
        let text = format!("{out:?}");
        assert_eq!(
            text,
            r#"RedactedFrame { camera: "lobby", width: 64, height: 48, timestamp_ms: 1234, .. }"#
        );
        assert!(!text.contains("173"));
    }
}
