//! A frame reduced to image statistics, for the tamper detector
//! (`anomaly::tamper`): mean luma, contrast, sharpness, a coarse 32x18
//! structure signature and a sparse luma sample for the frozen check. None
//! of it is serialisable and its `Debug` prints only the scalars: the
//! statistics never leave the process and cannot be turned back into a
//! picture of anyone. The signature and the sample stay behind methods.

use super::frame::Frame;
use std::fmt;

/// Luma is sampled on a grid about this many samples wide, whatever the
/// frame size: the cost stays flat, and the reference is per camera so the
/// scale of the figures does not matter.
const SAMPLE_WIDTH: usize = 320;
/// The structure signature's grid: coarse enough that a person covers only
/// a few cells, fine enough that a re-aim of a fifth of the view moves the
/// pattern by several cells.
const GRID_X: usize = 32;
const GRID_Y: usize = 18;
/// The frozen check's sample: a few thousand luma values.
const CHANGE_X: usize = 80;
const CHANGE_Y: usize = 45;
/// Sharpness is relative to mean luma; below this mean the division would
/// magnify noise.
const LUMA_FLOOR: f64 = 16.0;

/// What a frame is reduced to. Held in memory only: neither serialisable
/// nor printable beyond its scalars.
pub struct FrameStats {
    width: u32,
    height: u32,
    mean_luma: f64,
    luma_std: f64,
    /// Mean squared luma gradient over squared mean luma. A lighting change
    /// scales both; a blur or a veil of spray lowers only the gradient. The
    /// square matters: blurring a clean edge spreads it without lowering
    /// its summed absolute gradient, but its energy falls with the width.
    sharpness: f64,
    /// Square root of the mean gradient in each grid cell, row-major. Offset
    /// invariant by construction and compared by normalised correlation, so
    /// gain and global blur cancel out; the root keeps a few high-contrast
    /// cells (or people) from dominating.
    signature: Vec<f32>,
    /// Luma on a sparse grid, for frame-to-frame change.
    change: Vec<u8>,
}

impl fmt::Debug for FrameStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameStats")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("mean_luma", &self.mean_luma)
            .field("luma_std", &self.luma_std)
            .field("sharpness", &self.sharpness)
            .finish_non_exhaustive()
    }
}

impl FrameStats {
    /// Well under a millisecond at 640x360: one pass to sample luma, one for
    /// the gradients.
    pub fn measure(frame: &Frame) -> FrameStats {
        let (width, height) = (frame.width(), frame.height());
        let (w, h) = (width as usize, height as usize);
        let step = ((w + SAMPLE_WIDTH / 2) / SAMPLE_WIDTH).max(1);
        let (sw, sh) = (w.div_ceil(step), h.div_ceil(step));
        let pixels = frame.pixels();
        let mut luma: Vec<u8> = Vec::with_capacity(sw * sh);
        // BT.601 weights in 8.8 fixed point; at most 255.
        let to_luma =
            |p: &[u8]| ((77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32 + 128) >> 8) as u8;
        for row in pixels.chunks_exact(w * 3).step_by(step) {
            // The first pixel of every `step`, the last partial step included.
            let steps = row.chunks_exact(3 * step);
            let rest = steps.remainder();
            luma.extend(steps.map(to_luma));
            if rest.len() >= 3 {
                luma.push(to_luma(rest));
            }
        }
        let n = luma.len().max(1) as f64;
        // Row by row in u32 (a row of 255s squared fits), which vectorises.
        let (sum, sum_sq) = luma.chunks(sw.max(1)).fold((0u64, 0u64), |(s, q), row| {
            let (rs, rq) = row.iter().fold((0u32, 0u32), |(s, q), &l| {
                (s + l as u32, q + l as u32 * l as u32)
            });
            (s + rs as u64, q + rq as u64)
        });
        let mean_luma = sum as f64 / n;
        let luma_std = (sum_sq as f64 / n - mean_luma * mean_luma).max(0.0).sqrt();

        // Gradients between neighbouring samples: their energy over the
        // frame, and their absolute sum per grid cell. Columns accumulate
        // over a band of rows and are folded into cells at the band's end,
        // which keeps the inner loop free of lookups (and vectorised).
        let (gw, gh) = (sw.saturating_sub(1), sh.saturating_sub(1));
        // Samples per cell: the cell boundaries are the same on every row
        // and column, so the counts factor.
        let per_column = cell_counts(gw, GRID_X);
        let per_row = cell_counts(gh, GRID_Y);
        let mut cells = vec![0u32; GRID_X * GRID_Y];
        let mut columns = vec![0u32; gw];
        let mut gradient_energy = 0u64;
        let mut y = 0;
        for (band, &rows) in per_row.iter().enumerate() {
            for _ in 0..rows {
                let top = &luma[y * sw..][..sw];
                let below = &luma[(y + 1) * sw..][..sw];
                let mut row_energy = 0u32;
                for (((column, &here), &right), &under) in
                    columns.iter_mut().zip(top).zip(&top[1..]).zip(below)
                {
                    let dx = right as i32 - here as i32;
                    let dy = under as i32 - here as i32;
                    *column += dx.unsigned_abs() + dy.unsigned_abs();
                    row_energy += (dx * dx + dy * dy) as u32;
                }
                gradient_energy += row_energy as u64;
                y += 1;
            }
            let mut x = 0;
            for (cell, &width) in cells[band * GRID_X..][..GRID_X].iter_mut().zip(&per_column) {
                *cell = columns[x..x + width].iter().sum();
                x += width;
            }
            columns.fill(0);
        }
        let sharpness = if gw > 0 && gh > 0 {
            gradient_energy as f64 / (gw * gh) as f64 / mean_luma.max(LUMA_FLOOR).powi(2)
        } else {
            0.0
        };
        let signature = cells
            .iter()
            .enumerate()
            .map(|(i, &total)| {
                let count = per_row[i / GRID_X] * per_column[i % GRID_X];
                if count == 0 {
                    0.0
                } else {
                    (total as f32 / count as f32).sqrt()
                }
            })
            .collect();

        let change = (0..CHANGE_Y)
            .flat_map(|j| {
                let row = (j * sh / CHANGE_Y) * sw;
                (0..CHANGE_X).map(move |i| row + i * sw / CHANGE_X)
            })
            .map(|i| luma.get(i).copied().unwrap_or(0))
            .collect();

        FrameStats {
            width,
            height,
            mean_luma,
            luma_std,
            sharpness,
            signature,
            change,
        }
    }

    /// Mean luma, 0..255.
    pub fn mean_luma(&self) -> f64 {
        self.mean_luma
    }

    /// Luma standard deviation (contrast), grey levels.
    pub fn luma_std(&self) -> f64 {
        self.luma_std
    }

    /// Mean gradient per unit of mean luma; comparable only between frames
    /// of one camera at one resolution.
    pub fn sharpness(&self) -> f64 {
        self.sharpness
    }

    /// The frame's width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The structure signature, for a reference learned from many frames.
    pub(crate) fn signature(&self) -> &[f32] {
        &self.signature
    }

    /// Normalised correlation of the two frames' structure signatures.
    pub fn similarity(&self, other: &FrameStats) -> f64 {
        let a: Vec<f64> = self.signature.iter().map(|&v| v as f64).collect();
        correlation(&a, &other.signature)
    }

    /// Normalised correlation of this frame's structure signature with a
    /// learned one.
    pub(crate) fn similarity_to(&self, reference: &[f64]) -> f64 {
        correlation(reference, &self.signature)
    }

    /// Mean absolute luma difference over the sparse sample, grey levels.
    pub fn change_from(&self, other: &FrameStats) -> f64 {
        mean_abs_difference(&self.change, &other.change)
    }

    /// As `change_from`, against a sample kept from an earlier frame.
    pub fn change_since(&self, earlier: &ChangeSample) -> f64 {
        mean_abs_difference(&self.change, &earlier.0)
    }
}

/// A frame's sparse luma sample, kept to compare the next frame against.
/// Opaque: it can only be compared, never read.
#[derive(Default)]
pub struct ChangeSample(Vec<u8>);

impl ChangeSample {
    /// Keeps `stats`' sample in place of the one held.
    pub fn keep(&mut self, stats: &FrameStats) {
        self.0.clone_from(&stats.change);
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// How many of `n` indices fall in each of `cells` equal cells, with index
/// `i` in cell `i * cells / n`.
fn cell_counts(n: usize, cells: usize) -> Vec<usize> {
    let mut counts = vec![0; cells];
    for i in 0..n {
        counts[i * cells / n] += 1;
    }
    counts
}

/// Pearson correlation; 0 when either side is flat.
fn correlation(reference: &[f64], current: &[f32]) -> f64 {
    let n = reference.len().min(current.len());
    if n == 0 {
        return 0.0;
    }
    let mean_a = reference[..n].iter().sum::<f64>() / n as f64;
    let mean_b = current[..n].iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&a, &b) in reference.iter().zip(current) {
        let (da, db) = (a - mean_a, b as f64 - mean_b);
        ab += da * db;
        aa += da * da;
        bb += db * db;
    }
    if aa <= f64::EPSILON || bb <= f64::EPSILON {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

fn mean_abs_difference(a: &[u8], b: &[u8]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        // Different sample sizes cannot be the same picture.
        return f64::INFINITY;
    }
    let total: u64 = a.iter().zip(b).map(|(&x, &y)| x.abs_diff(y) as u64).sum();
    total as f64 / a.len() as f64
}
