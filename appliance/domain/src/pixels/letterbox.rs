//! Letterboxing: the frame (or a region of it) scaled to fit a model input,
//! keeping its aspect, placed at the top-left, written straight into an NCHW
//! f32 tensor in BGR order with per-channel normalisation. Padding is 0 after
//! normalisation (the mean colour). This is how the detectors see a frame:
//! as a model tensor, never as its RGB bytes.

use super::frame::Frame;
use crate::geometry::BBox;

/// A pixel region of the frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roi {
    pub x0: u32,
    pub y0: u32,
    pub width: u32,
    pub height: u32,
}

impl Roi {
    pub fn full(frame: &Frame) -> Roi {
        Roi {
            x0: 0,
            y0: 0,
            width: frame.width(),
            height: frame.height(),
        }
    }
}

/// How model-input pixels map back to frame pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub roi: Roi,
    pub scale: f32,
}

impl Letterbox {
    /// A model-input point in frame pixels.
    pub fn to_frame(self, x: f32, y: f32) -> (f32, f32) {
        (
            x / self.scale + self.roi.x0 as f32,
            y / self.scale + self.roi.y0 as f32,
        )
    }

    /// A model-input box in frame pixels.
    pub fn to_frame_box(self, b: BBox) -> BBox {
        let (x1, y1) = self.to_frame(b.x1, b.y1);
        let (x2, y2) = self.to_frame(b.x2, b.y2);
        BBox { x1, y1, x2, y2 }
    }
}

/// A box in frame pixels as fractions of the frame, clipped to it.
pub fn normalise(b: BBox, frame: &Frame) -> BBox {
    let (w, h) = (frame.width() as f32, frame.height() as f32);
    BBox {
        x1: (b.x1 / w).clamp(0.0, 1.0),
        y1: (b.y1 / h).clamp(0.0, 1.0),
        x2: (b.x2 / w).clamp(0.0, 1.0),
        y2: (b.y2 / h).clamp(0.0, 1.0),
    }
}

/// Channel statistics in BGR order: value = (pixel - mean) / std.
#[derive(Debug, Clone, Copy)]
pub struct Normalisation {
    pub mean_bgr: [f32; 3],
    pub std_bgr: [f32; 3],
}

/// A model input's width and height in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputSize {
    pub width: usize,
    pub height: usize,
}

impl Frame {
    /// Fills `out` (len 3 * width * height) with the region (inside the
    /// frame) scaled to fit the input, and returns the mapping back.
    pub fn letterbox(
        &self,
        roi: Roi,
        input: InputSize,
        norm: Normalisation,
        out: &mut [f32],
    ) -> Letterbox {
        let InputSize { width, height } = input;
        debug_assert_eq!(out.len(), 3 * width * height);
        let scale = (width as f32 / roi.width as f32).min(height as f32 / roi.height as f32);
        let dst_w = ((roi.width as f32 * scale).round() as usize).clamp(1, width);
        let dst_h = ((roi.height as f32 * scale).round() as usize).clamp(1, height);
        let (src, stride) = (self.pixels(), self.width() as usize * 3);
        // Bilinear sampling at pixel centres: (index 0, index 1, weight of 1).
        let sample = |dst: usize, extent: u32, origin: u32| -> (usize, usize, f32) {
            let s = ((dst as f32 + 0.5) / scale - 0.5).clamp(0.0, (extent - 1) as f32);
            let i0 = s.floor() as usize;
            let i1 = (i0 + 1).min(extent as usize - 1);
            (i0 + origin as usize, i1 + origin as usize, s - i0 as f32)
        };
        // Per output column: byte offsets of the two source pixels, and the weight.
        let columns: Vec<(usize, usize, f32)> = (0..dst_w)
            .map(|x| {
                let (x0, x1, fx) = sample(x, roi.width, roi.x0);
                (x0 * 3, x1 * 3, fx)
            })
            .collect();
        let plane = width * height;
        let (b_plane, rest) = out.split_at_mut(plane);
        let (g_plane, r_plane) = rest.split_at_mut(plane);
        let inv = norm.std_bgr.map(|s| 1.0 / s);
        let mean = norm.mean_bgr;
        for y in 0..height {
            let row = y * width..(y + 1) * width;
            let (b_row, g_row, r_row) = (
                &mut b_plane[row.clone()],
                &mut g_plane[row.clone()],
                &mut r_plane[row],
            );
            if y >= dst_h {
                // Padding is 0 after normalisation.
                b_row.fill(0.0);
                g_row.fill(0.0);
                r_row.fill(0.0);
                continue;
            }
            let (y0, y1, fy) = sample(y, roi.height, roi.y0);
            let (row0, row1) = (
                &src[y0 * stride..(y0 + 1) * stride],
                &src[y1 * stride..(y1 + 1) * stride],
            );
            for (x, &(i0, i1, fx)) in columns.iter().enumerate() {
                let (a, b) = (&row0[i0..i0 + 3], &row0[i1..i1 + 3]);
                let (c, d) = (&row1[i0..i0 + 3], &row1[i1..i1 + 3]);
                let at = |k: usize| {
                    let top = a[k] as f32 + (b[k] as f32 - a[k] as f32) * fx;
                    let bottom = c[k] as f32 + (d[k] as f32 - c[k] as f32) * fx;
                    top + (bottom - top) * fy
                };
                // Source is RGB; the planes are B, G, R.
                r_row[x] = (at(0) - mean[2]) * inv[2];
                g_row[x] = (at(1) - mean[1]) * inv[1];
                b_row[x] = (at(2) - mean[0]) * inv[0];
            }
            b_row[dst_w..].fill(0.0);
            g_row[dst_w..].fill(0.0);
            r_row[dst_w..].fill(0.0);
        }
        Letterbox { roi, scale }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: Normalisation = Normalisation {
        mean_bgr: [0.0; 3],
        std_bgr: [1.0; 3],
    };

    fn square(side: usize) -> InputSize {
        InputSize {
            width: side,
            height: side,
        }
    }

    #[test]
    fn a_wide_input_holds_a_wide_frame_without_padding_rows() {
        let f = frame(8, 4, |_, _| [90, 0, 0]);
        let mut out = vec![-1.0; 3 * 8 * 4];
        let input = InputSize {
            width: 8,
            height: 4,
        };
        let lb = f.letterbox(Roi::full(&f), input, RAW, &mut out);
        assert_eq!(lb.scale, 1.0);
        assert!(out[..32].iter().all(|&v| v == 0.0), "blue plane");
        assert!(out[64..].iter().all(|&v| v == 90.0), "red plane");
    }

    fn frame(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Frame {
        let mut rgb = Vec::new();
        for y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(&f(x, y));
            }
        }
        Frame::new("t".into(), w, h, rgb, 0).unwrap()
    }

    #[test]
    fn wide_frames_pad_below_and_channels_become_bgr() {
        let f = frame(8, 4, |_, _| [10, 20, 30]);
        let mut out = vec![0.0; 3 * 4 * 4];
        let lb = f.letterbox(Roi::full(&f), square(4), RAW, &mut out);
        assert_eq!(lb.scale, 0.5);
        // Rows 0-1 hold the image, rows 2-3 the padding, in each plane.
        let plane = |c: usize| &out[c * 16..(c + 1) * 16];
        assert_eq!(
            plane(0),
            [
                30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                0.0
            ]
        );
        assert_eq!(plane(2)[..8], [10.0; 8]);
        assert_eq!(lb.to_frame(2.0, 1.0), (4.0, 2.0));
    }

    #[test]
    fn normalisation_and_bilinear_values() {
        // A horizontal ramp sampled at the same size is reproduced exactly.
        let f = frame(4, 4, |x, _| [0, 0, (x * 60) as u8]);
        let mut out = vec![0.0; 3 * 16];
        let norm = Normalisation {
            mean_bgr: [30.0, 0.0, 0.0],
            std_bgr: [2.0, 1.0, 1.0],
        };
        f.letterbox(Roi::full(&f), square(4), norm, &mut out);
        assert_eq!(&out[..4], [-15.0, 15.0, 45.0, 75.0]);
        // Halving averages neighbours: (0+60)/2 and (120+180)/2.
        let mut half = vec![0.0; 3 * 4];
        f.letterbox(Roi::full(&f), square(2), RAW, &mut half);
        assert_eq!(&half[..2], [30.0, 150.0]);
    }

    #[test]
    fn a_region_maps_back_to_its_place_in_the_frame() {
        let f = frame(10, 10, |x, y| [x as u8, y as u8, 0]);
        let roi = Roi {
            x0: 5,
            y0: 2,
            width: 5,
            height: 5,
        };
        let mut out = vec![0.0; 3 * 25];
        let lb = f.letterbox(roi, square(5), RAW, &mut out);
        // Red (x) is the last BGR plane, green (y) the middle one.
        assert_eq!(out[2 * 25], 5.0);
        assert_eq!(out[25 + 5], 3.0);
        assert_eq!(lb.to_frame(0.0, 0.0), (5.0, 2.0));
    }
}
