//! A frame reduced to a coarse luma grid, to tell whether anything in a
//! region moved since the person model last looked. Like `FrameStats` it is
//! opaque (it can only be compared) and never leaves the process.

use super::frame::Frame;
use crate::geometry::BBox;

/// The grid: about 4 px apart at the default 640 px analysis width, so a
/// person 20 px tall covers several samples.
const GRID_X: usize = 160;
const GRID_Y: usize = 90;
/// A sample changed when its luma moved by more than this: above the noise
/// of compression and scaling, below the contrast of a person against most
/// backgrounds.
const SAMPLE_CHANGE: u8 = 20;

pub struct MotionSample {
    luma: Vec<u8>,
}

impl MotionSample {
    /// Takes the grid of a frame (14,400 pixels, whatever its size).
    pub fn take(frame: &Frame) -> MotionSample {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let pixels = frame.pixels();
        let luma = (0..GRID_Y)
            .flat_map(|j| {
                let y = (2 * j + 1) * h / (2 * GRID_Y);
                (0..GRID_X).map(move |i| (y * w + (2 * i + 1) * w / (2 * GRID_X)) * 3)
            })
            .map(|at| match pixels.get(at..at + 3) {
                Some(p) => ((77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32) >> 8) as u8,
                None => 0,
            })
            .collect();
        MotionSample { luma }
    }

    /// How many samples inside `region` (normalised) changed by more than
    /// the noise since `earlier`.
    pub fn changed_since(&self, earlier: &MotionSample, region: BBox) -> usize {
        let cols = |a: f32, b: f32| {
            ((a * GRID_X as f32).floor().max(0.0) as usize)
                ..((b * GRID_X as f32).ceil() as usize).min(GRID_X)
        };
        let rows = ((region.y1 * GRID_Y as f32).floor().max(0.0) as usize)
            ..((region.y2 * GRID_Y as f32).ceil() as usize).min(GRID_Y);
        let columns = cols(region.x1, region.x2);
        rows.map(|j| {
            let row = j * GRID_X;
            let (now, then) = (
                &self.luma[row + columns.start..row + columns.end],
                &earlier.luma[row + columns.start..row + columns.end],
            );
            now.iter()
                .zip(then)
                .filter(|(a, b)| a.abs_diff(**b) > SAMPLE_CHANGE)
                .count()
        })
        .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: BBox = BBox {
        x1: 0.0,
        y1: 0.0,
        x2: 1.0,
        y2: 1.0,
    };

    fn frame(person_at: Option<(usize, usize)>, noise: u8) -> Frame {
        let (w, h) = (640usize, 360usize);
        let mut rgb = vec![0u8; w * h * 3];
        for (i, p) in rgb.chunks_exact_mut(3).enumerate() {
            let v = 100 + ((i * 7919) % (noise as usize + 1)) as u8;
            p.copy_from_slice(&[v, v, v]);
        }
        // A dark figure 8 px wide and 20 px tall.
        if let Some((x0, y0)) = person_at {
            for y in y0..y0 + 20 {
                for x in x0..x0 + 8 {
                    rgb[(y * w + x) * 3..][..3].copy_from_slice(&[20, 20, 30]);
                }
            }
        }
        Frame::new("cam".into(), w as u32, h as u32, rgb, 0).unwrap()
    }

    #[test]
    fn noise_is_not_motion_but_a_small_person_is() {
        let still = MotionSample::take(&frame(None, 0));
        let noisy = MotionSample::take(&frame(None, 12));
        assert_eq!(noisy.changed_since(&still, ALL), 0);
        let person = MotionSample::take(&frame(Some((300, 200)), 12));
        let changed = person.changed_since(&still, ALL);
        assert!(changed >= 4, "{changed}");
        // Only inside the region asked about.
        let elsewhere = BBox {
            x1: 0.0,
            y1: 0.0,
            x2: 0.3,
            y2: 0.3,
        };
        assert_eq!(person.changed_since(&still, elsewhere), 0);
    }
}
