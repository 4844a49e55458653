//! Static privacy masks: parts of a camera's view (a neighbour's window, a
//! desk, a screen) blanked in the raw frame before anything looks at it.
//!
//! `PrivacyMask::apply` is the only way to make a `MaskedFrame`, and the
//! frame step takes nothing else (`frame_step::examine`, `CameraPlan`), so
//! the motion gate, the tamper statistics, both detectors and a snapshot
//! see the masked pixels only. A camera without masks still goes through
//! `apply` (which then changes nothing).
//!
//! Coverage fails closed: a pixel the outline touches at all is blanked,
//! not only one whose centre lies inside.

use super::frame::Frame;
use crate::geometry::{Point, Polygon};

/// What masked pixels are set to: a flat mid grey, so that a large mask
/// reads neither as a covered lens (near black) nor as glare.
pub const MASK_FILL: u8 = 128;

/// The masks of one camera, in normalised coordinates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrivacyMask {
    polygons: Vec<Polygon>,
}

/// A raw frame whose masked pixels are blanked: what the frame step takes.
pub struct MaskedFrame(Frame);

impl MaskedFrame {
    pub fn frame(&self) -> &Frame {
        &self.0
    }
    pub fn into_frame(self) -> Frame {
        self.0
    }
}

impl PrivacyMask {
    pub fn new(polygons: Vec<Polygon>) -> PrivacyMask {
        PrivacyMask { polygons }
    }

    /// Every pixel: for frames whose camera's masks are unknown.
    pub fn whole_frame() -> PrivacyMask {
        let corners = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)];
        PrivacyMask::new(vec![Polygon::new(
            corners.map(|(x, y)| Point { x, y }).to_vec(),
        )])
    }

    /// Blanks every pixel any mask polygon touches.
    pub fn apply(&self, mut frame: Frame) -> MaskedFrame {
        if self.polygons.is_empty() {
            return MaskedFrame(frame);
        }
        let (width, height) = (frame.width(), frame.height());
        self.blank(frame.masked_with(self), width, height);
        MaskedFrame(frame)
    }

    /// Blanks the mask in packed RGB of `width` x `height` (the redactor
    /// does so again after redacting a masked frame).
    pub(in crate::pixels) fn blank(&self, rgb: &mut [u8], width: u32, height: u32) {
        let (width, height) = (width as usize, height as usize);
        for row in 0..height {
            for (from, to) in self.row_spans(row, width, height) {
                rgb[(row * width + from) * 3..(row * width + to) * 3].fill(MASK_FILL);
            }
        }
    }

    /// The pixel columns [from, to) of `row` that any polygon touches: the
    /// polygons' extent along the row's top, middle and bottom, and any
    /// corner within the row, widened to whole pixels.
    fn row_spans(&self, row: usize, width: usize, height: usize) -> Vec<(usize, usize)> {
        let (top, bottom) = (row as f32 / height as f32, (row + 1) as f32 / height as f32);
        let mut spans: Vec<(f32, f32)> = Vec::new();
        for polygon in &self.polygons {
            for y in [top, (top + bottom) / 2.0, bottom] {
                let mut crossings = crossings(polygon.points(), y);
                crossings.sort_by(f32::total_cmp);
                spans.extend(crossings.chunks_exact(2).map(|pair| (pair[0], pair[1])));
            }
            spans.extend(
                polygon
                    .points()
                    .iter()
                    .filter(|p| p.y >= top && p.y <= bottom)
                    .map(|p| (p.x, p.x)),
            );
            // Edges that run within the row (between its samples).
            spans.extend(edges(polygon.points()).filter_map(|(a, b)| {
                let (lo, hi) = (a.y.min(b.y), a.y.max(b.y));
                (lo >= top && hi <= bottom).then(|| (a.x.min(b.x), a.x.max(b.x)))
            }));
        }
        let mut columns: Vec<(usize, usize)> = spans
            .into_iter()
            .map(|(a, b)| {
                let from = (a * width as f32).floor().clamp(0.0, width as f32) as usize;
                let to = (b * width as f32).ceil().clamp(0.0, width as f32) as usize;
                // A span narrower than a pixel still covers the one it is in.
                (from.min(width - 1), to.max(from + 1).min(width))
            })
            .collect();
        columns.sort_unstable();
        columns
    }
}

fn edges(points: &[Point]) -> impl Iterator<Item = (Point, Point)> + '_ {
    (0..points.len()).map(move |i| (points[i], points[(i + 1) % points.len()]))
}

/// Where the polygon's outline crosses the horizontal line at `y` (an even
/// number of points: a vertex on the line counts once, from the edge that
/// leaves it upward or downward, as in `Polygon::contains`).
fn crossings(points: &[Point], y: f32) -> Vec<f32> {
    edges(points)
        .filter(|(a, b)| (a.y > y) != (b.y > y))
        .map(|(a, b)| a.x + (b.x - a.x) * (y - a.y) / (b.y - a.y))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(width: u32, height: u32) -> Frame {
        Frame::new(
            "cam".into(),
            width,
            height,
            vec![7; (width * height * 3) as usize],
            0,
        )
        .unwrap()
    }

    fn polygon(points: &[(f32, f32)]) -> Polygon {
        Polygon::new(points.iter().map(|&(x, y)| Point { x, y }).collect())
    }

    /// Whether pixel (x, y) of a frame was blanked.
    fn blanked(frame: &MaskedFrame, x: usize, y: usize) -> bool {
        let f = frame.frame();
        let i = (y * f.width() as usize + x) * 3;
        f.pixels()[i..i + 3] == [MASK_FILL; 3]
    }

    #[test]
    fn no_mask_changes_nothing() {
        let masked = PrivacyMask::default().apply(frame(8, 6));
        assert!(masked.frame().pixels().iter().all(|&v| v == 7));
    }

    #[test]
    fn every_pixel_a_polygon_touches_is_blanked_and_no_other() {
        // A triangle over 100x80 pixels; check each pixel against the
        // exact polygon sampled finely within the pixel.
        let triangle = polygon(&[(0.103, 0.117), (0.871, 0.252), (0.409, 0.933)]);
        let (w, h) = (100usize, 80usize);
        let masked = PrivacyMask::new(vec![triangle.clone()]).apply(frame(w as u32, h as u32));
        let (mut touched, mut blanked_far) = (0, 0);
        for y in 0..h {
            for x in 0..w {
                let inside_somewhere = (0..=8).any(|i| {
                    (0..=8).any(|j| {
                        triangle.contains(Point {
                            x: (x as f32 + i as f32 / 8.0) / w as f32,
                            y: (y as f32 + j as f32 / 8.0) / h as f32,
                        })
                    })
                });
                if inside_somewhere {
                    touched += 1;
                    assert!(
                        blanked(&masked, x, y),
                        "pixel ({x}, {y}) is touched but not blanked"
                    );
                } else if blanked(&masked, x, y) {
                    // Blanked without being touched: only next to the outline.
                    let near = (x.saturating_sub(1)..=(x + 1).min(w - 1)).any(|nx| {
                        (y.saturating_sub(1)..=(y + 1).min(h - 1)).any(|ny| {
                            triangle.contains(Point {
                                x: (nx as f32 + 0.5) / w as f32,
                                y: (ny as f32 + 0.5) / h as f32,
                            })
                        })
                    });
                    if !near {
                        blanked_far += 1;
                    }
                }
            }
        }
        assert!(touched > 1000, "the triangle covers {touched} pixels");
        assert_eq!(blanked_far, 0, "pixels blanked away from the outline");
    }

    #[test]
    fn a_sliver_thinner_than_a_pixel_still_blanks_its_pixels() {
        // A horizontal sliver 0.2 px tall inside row 3 of 10 rows.
        let sliver = polygon(&[(0.2, 0.331), (0.8, 0.331), (0.8, 0.333), (0.2, 0.333)]);
        let masked = PrivacyMask::new(vec![sliver]).apply(frame(10, 10));
        for x in 2..8 {
            assert!(blanked(&masked, x, 3), "pixel ({x}, 3)");
        }
        assert!(!blanked(&masked, 5, 2) && !blanked(&masked, 5, 4));
        // A vertical one, thinner than a column.
        let thin = polygon(&[(0.551, 0.1), (0.553, 0.1), (0.553, 0.9), (0.551, 0.9)]);
        let masked = PrivacyMask::new(vec![thin]).apply(frame(10, 10));
        for y in 1..9 {
            assert!(blanked(&masked, 5, y), "pixel (5, {y})");
        }
        assert!(!blanked(&masked, 4, 5) && !blanked(&masked, 6, 5));
    }

    #[test]
    fn the_whole_frame_can_be_masked() {
        let masked = PrivacyMask::whole_frame().apply(frame(13, 7));
        assert!(masked.frame().pixels().iter().all(|&v| v == MASK_FILL));
    }
}
