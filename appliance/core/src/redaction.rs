//! The privacy gate. `RedactedFrame` can only be made here, by `Redactor::redact`,
//! and it is the only frame type with an encoder. So any code path that wants
//! pixels out of the process must pass through redaction, by construction.
//!
//! Fail closed: if the face detector failed, the whole frame is obscured.

use crate::clock::UnixMs;
use crate::detection::{Detection, Detections};
use crate::frame::{CameraId, Frame};
use crate::geometry::BBox;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RedactionMode {
    Blur,
    #[default]
    Pixelate,
    Fill,
}

/// Share of a person box's height, from its top, treated as the head. Faces
/// far from the camera (a few pixels) escape face detectors, so every
/// detected person's head is redacted as well.
const HEAD_SHARE: f32 = 0.22;
/// Grey used for filled regions and for frames obscured whole.
const FILL: [u8; 3] = [128, 128, 128];

#[derive(Debug, Clone, Copy)]
pub struct Redactor {
    mode: RedactionMode,
    /// Face boxes are grown by this factor before redaction (hair, ears, chin).
    mask_scale: f32,
}

/// A frame in which every face (and every person's head) is obscured, or the
/// whole frame is, when face detection failed.
#[derive(Debug)]
pub struct RedactedFrame {
    camera: CameraId,
    width: u32,
    height: u32,
    rgb: Vec<u8>,
    timestamp_ms: UnixMs,
    regions: usize,
    obscured_whole: bool,
}

impl Redactor {
    pub fn new(mode: RedactionMode, mask_scale: f32) -> Self {
        Self {
            mode,
            mask_scale: mask_scale.max(1.0),
        }
    }

    /// Consumes the raw frame: after this call no unredacted copy of it exists
    /// in the caller's hands.
    pub fn redact(&self, frame: Frame, detections: &Detections) -> RedactedFrame {
        let (camera, width, height, mut rgb, timestamp_ms) = frame.into_parts();
        let mut image = Pixels {
            rgb: &mut rgb,
            width,
            height,
        };
        let (regions, obscured_whole) = match &detections.faces {
            Err(_) => {
                image.fill(PixelRect {
                    x0: 0,
                    y0: 0,
                    x1: width,
                    y1: height,
                });
                (0, true)
            }
            Ok(faces) => {
                let rects = self.regions(faces, &detections.persons);
                for rect in &rects {
                    let rect = image.to_pixels(rect);
                    match self.mode {
                        RedactionMode::Fill => image.fill(rect),
                        RedactionMode::Pixelate => image.pixelate(rect),
                        RedactionMode::Blur => image.blur(rect),
                    }
                }
                (rects.len(), false)
            }
        };
        RedactedFrame {
            camera,
            width,
            height,
            rgb,
            timestamp_ms,
            regions,
            obscured_whole,
        }
    }

    fn regions(&self, faces: &[Detection], persons: &[Detection]) -> Vec<BBox> {
        let faces = faces.iter().map(|f| f.bbox.scaled(self.mask_scale));
        let heads = persons.iter().map(|p| {
            let b = p.bbox;
            BBox {
                x1: b.x1,
                y1: b.y1,
                x2: b.x2,
                y2: b.y1 + b.height() * HEAD_SHARE,
            }
            .scaled(self.mask_scale)
        });
        faces.chain(heads).collect()
    }
}

impl RedactedFrame {
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
    /// How many regions were obscured (faces plus heads).
    pub fn regions(&self) -> usize {
        self.regions
    }
    /// True when face detection failed and the frame was obscured whole.
    pub fn obscured_whole(&self) -> bool {
        self.obscured_whole
    }
    /// PNG bytes: the only encoder of frame pixels in headcount.
    pub fn encode_png(&self) -> Result<Vec<u8>, image::ImageError> {
        let mut out = std::io::Cursor::new(Vec::new());
        image::write_buffer_with_format(
            &mut out,
            &self.rgb,
            self.width,
            self.height,
            image::ExtendedColorType::Rgb8,
            image::ImageFormat::Png,
        )?;
        Ok(out.into_inner())
    }
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

    /// A strong blur: every pixel becomes the mean of its block's
    /// neighbourhood (two pixelations offset by half a block, averaged), so no
    /// detail finer than a fifth of the face survives.
    fn blur(&mut self, r: PixelRect) {
        self.pixelate(r);
        let side = (r.x1 - r.x0).max(r.y1 - r.y0);
        let shift = side.div_ceil(10);
        let inner = PixelRect {
            x0: (r.x0 + shift).min(r.x1),
            y0: (r.y0 + shift).min(r.y1),
            x1: r.x1,
            y1: r.y1,
        };
        self.pixelate(inner);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of distinct pixel values, so any surviving original pixel shows.
    fn gradient_frame(w: u32, h: u32) -> Frame {
        let rgb = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        Frame::new("cam".into(), w, h, rgb, 0).unwrap()
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
            let out = Redactor::new(mode, 1.0).redact(frame, &detections);
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
            assert_eq!(out.regions(), 1);
            assert!(!out.obscured_whole());
        }
    }

    #[test]
    fn failed_face_detection_obscures_the_whole_frame() {
        let frame = gradient_frame(64, 48);
        let detections = Detections {
            persons: vec![],
            faces: Err("model timed out".into()),
        };
        let out = Redactor::new(RedactionMode::Pixelate, 1.3).redact(frame, &detections);
        assert!(out.obscured_whole());
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
        let out = Redactor::new(RedactionMode::Fill, 1.0).redact(frame, &detections);
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
        let out = Redactor::new(RedactionMode::Fill, 1.0).redact(frame, &detections);
        let png = out.encode_png().unwrap();
        let decoded = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(decoded.as_raw(), out.pixels());
    }
}
