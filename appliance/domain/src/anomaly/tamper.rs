//! Camera tamper from image statistics computed in memory on the raw frame
//! (`pixels::stats::FrameStats`: mean luma, contrast, sharpness, a coarse
//! structure signature and a sparse luma sample, never the pixels).
//!
//! `TamperDetector` learns a reference from the first `learning_ms` of
//! frames (after start-up or an admin's re-arm) and then reports four
//! conditions, each after a hold time and each cleared only after it has
//! been absent for a few seconds:
//!
//! - **Covered**: the image is nearly uniform (contrast collapsed), dark or
//!   bright: a hand, tape, a bag, paint, or a blinding light.
//! - **Defocused**: sharpness fell to a fraction of the reference: the lens
//!   was turned out of focus, sprayed or smeared.
//! - **Moved**: the coarse structure no longer matches the reference: the
//!   camera was knocked or re-aimed.
//! - **Frozen**: consecutive frames are identical while the stream runs:
//!   a stuck encoder or a replayed still.
//!
//! While nothing is wrong the reference follows the scene slowly (a time
//! constant of half an hour) so that daylight does not read as tampering.
//! All times are the frames' own timestamps, never the wall clock.

use crate::clock::UnixMs;
pub use crate::config::anomaly::{
    Sensitivity, TamperSettings, DEFAULT_FROZEN_MS, DEFAULT_LEARNING_MS,
};
use crate::pixels::stats::{ChangeSample, FrameStats};
use std::collections::VecDeque;

impl Sensitivity {
    /// The thresholds behind each level, tuned on ten minutes of real
    /// footage (people walking on a campus path, 640x480 at 2 fps). There
    /// the normal picture never went below 88 % of the reference sharpness
    /// (93 % as a 4 s median) nor below 0.87 similarity (0.90 as a 10 s
    /// median), so even High keeps a wide margin for weather and light the
    /// footage lacks. Medium catches a 5x5 box blur (sharpness ~23 %) and
    /// a re-aim by a fifth of the view (similarity ~0.3); Low needs a 7x7
    /// blur (~15 %); High catches a 3x3 blur (~45 %) and a re-aim by a
    /// tenth (~0.55).
    pub fn thresholds(self) -> Thresholds {
        match self {
            Sensitivity::Low => Thresholds {
                cover_floor: 5.0,
                cover_fraction: 0.2,
                sharpness_fraction: 0.2,
                min_similarity: 0.35,
            },
            Sensitivity::Medium => Thresholds {
                cover_floor: 8.0,
                cover_fraction: 0.3,
                sharpness_fraction: 0.3,
                min_similarity: 0.5,
            },
            Sensitivity::High => Thresholds {
                cover_floor: 12.0,
                cover_fraction: 0.4,
                sharpness_fraction: 0.5,
                min_similarity: 0.65,
            },
        }
    }
}

/// The numbers a sensitivity stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Covered below this luma standard deviation (grey levels)...
    pub cover_floor: f64,
    /// ...and below this fraction of the reference's, so that a camera
    /// whose scene is legitimately flat (a dim corridor) is not "covered".
    pub cover_fraction: f64,
    /// Defocused below this fraction of the reference sharpness.
    pub sharpness_fraction: f64,
    /// Moved below this structure similarity (normalised correlation).
    pub min_similarity: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TamperCondition {
    Covered,
    Defocused,
    Moved,
    Frozen,
}

/// An active condition with the figure that raised it.
#[derive(Debug, Clone, PartialEq)]
pub struct TamperReading {
    pub condition: TamperCondition,
    /// Covered: luma standard deviation (grey levels). Defocused: sharpness
    /// as a fraction of the reference. Moved: structure similarity (-1..1).
    /// Frozen: seconds without change. While a condition is clearing, the
    /// value when it was last present.
    pub value: f64,
    /// The value's limit, in the same unit.
    pub threshold: f64,
    /// One sentence with the value and the threshold; no pixels, no people.
    pub explanation: String,
}

/// A learning period needs at least this many frames, however long it ran:
/// a stream that stalled during it has not shown its scene yet.
const MIN_LEARNING_FRAMES: usize = 5;
/// Learning keeps at most this many scalar samples for its medians.
const MAX_LEARNING_SAMPLES: usize = 4096;
/// A lens covered for three seconds is not someone walking past it.
const COVERED_HOLD_MS: i64 = 3_000;
/// Sharpness is judged on the median of a few seconds of frames...
const DEFOCUS_WINDOW_MS: i64 = 4_000;
/// ...which must stay low for this long.
const DEFOCUS_HOLD_MS: i64 = 6_000;
/// Similarity is judged on the median of ten seconds, so that people
/// walking through the scene, even a crowd passing, do not move the camera.
const MOVED_WINDOW_MS: i64 = 10_000;
/// The median crosses after half the window; this hold makes it ~10 s.
const MOVED_HOLD_MS: i64 = 5_000;
/// A condition clears after it has been absent this long, so that a
/// borderline one does not flap.
const CLEAR_MS: i64 = 4_000;
/// Once raised, a condition stays present until its value is this factor
/// past the threshold: contrast a quarter above the floor, sharpness and
/// similarity a tenth above their minimum.
const COVER_MARGIN: f64 = 1.25;
const SHARPNESS_MARGIN: f64 = 1.1;
const SIMILARITY_MARGIN: f64 = 1.1;
/// Frames further apart than this are a discontinuity (a stream stall, a
/// clock step): pending holds and the frozen run restart.
const MAX_GAP_MS: i64 = 5_000;
/// The reference follows the scene with this time constant while nothing
/// is wrong: daylight moves, a camera knocked aside does not creep back.
const ADAPT_TAU_MS: f64 = 30.0 * 60_000.0;
/// Frames closer than this (mean absolute difference, grey levels) are
/// identical: a live sensor's noise alone is several times larger.
const FROZEN_CHANGE: f64 = 0.1;

/// The learned picture of the scene.
struct Reference {
    width: u32,
    height: u32,
    /// False when learning saw only uniform frames (a camera covered from
    /// the start): then only Covered can be judged, and the first real
    /// scene starts a new learning period.
    scene: bool,
    sharpness: f64,
    luma_std: f64,
    signature: Vec<f64>,
}

impl Reference {
    /// One step of the exponential moving average.
    fn adapt(&mut self, stats: &FrameStats, alpha: f64) {
        self.sharpness += alpha * (stats.sharpness() - self.sharpness);
        self.luma_std += alpha * (stats.luma_std() - self.luma_std);
        for (r, &s) in self.signature.iter_mut().zip(stats.signature()) {
            *r += alpha * (s as f64 - *r);
        }
    }
}

/// What learning has collected so far.
#[derive(Default)]
struct Learner {
    frames: usize,
    dims: Option<(u32, u32)>,
    sharpness: Vec<f64>,
    luma_std: Vec<f64>,
    uniform_std: Vec<f64>,
    signature_sum: Vec<f64>,
    scene_frames: usize,
}

impl Learner {
    fn add(&mut self, stats: &FrameStats, uniform: bool) {
        self.frames += 1;
        self.dims = Some(stats.size());
        if uniform {
            if self.uniform_std.len() < MAX_LEARNING_SAMPLES {
                self.uniform_std.push(stats.luma_std());
            }
            return;
        }
        self.scene_frames += 1;
        if self.sharpness.len() < MAX_LEARNING_SAMPLES {
            self.sharpness.push(stats.sharpness());
            self.luma_std.push(stats.luma_std());
        }
        if self.signature_sum.len() != stats.signature().len() {
            self.signature_sum = vec![0.0; stats.signature().len()];
        }
        for (sum, &s) in self.signature_sum.iter_mut().zip(stats.signature()) {
            *sum += s as f64;
        }
    }

    /// The reference, once there are enough frames: the scene if most of
    /// them showed one, else a "uniform" reference (and the scene is
    /// learned afresh as soon as it shows).
    fn finish(&mut self) -> Option<Reference> {
        if self.frames < MIN_LEARNING_FRAMES {
            return None;
        }
        let (width, height) = self.dims?;
        if self.scene_frames >= MIN_LEARNING_FRAMES && 2 * self.scene_frames >= self.frames {
            let n = self.scene_frames as f64;
            Some(Reference {
                width,
                height,
                scene: true,
                sharpness: median(&mut self.sharpness),
                luma_std: median(&mut self.luma_std),
                signature: self.signature_sum.iter().map(|s| s / n).collect(),
            })
        } else {
            Some(Reference {
                width,
                height,
                scene: false,
                sharpness: 0.0,
                luma_std: median(&mut self.uniform_std),
                signature: Vec::new(),
            })
        }
    }
}

/// The upper median; 0 for none.
fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mid = values.len() / 2;
    *values.select_nth_unstable_by(mid, f64::total_cmp).1
}

/// The values of the last `span` milliseconds, for a running median.
#[derive(Default)]
struct Window {
    values: VecDeque<(UnixMs, f64)>,
    scratch: Vec<f64>,
}

impl Window {
    fn push(&mut self, at: UnixMs, value: f64, span: i64) {
        self.values.push_back((at, value));
        while self.values.front().is_some_and(|&(t, _)| t <= at - span) {
            self.values.pop_front();
        }
    }

    fn median(&mut self) -> Option<f64> {
        if self.values.is_empty() {
            return None;
        }
        self.scratch.clear();
        self.scratch.extend(self.values.iter().map(|&(_, v)| v));
        Some(median(&mut self.scratch))
    }

    fn clear(&mut self) {
        self.values.clear();
    }
}

/// Onset hold and clearing hysteresis for one condition.
#[derive(Default)]
struct Hold {
    present_since: Option<UnixMs>,
    absent_since: Option<UnixMs>,
    active: bool,
    /// The value when last present: what a reading reports, also while the
    /// condition is clearing and the current value no longer shows it.
    value: f64,
}

impl Hold {
    /// `present` carries the value when the condition holds on this frame.
    /// Active once present for `hold_ms`, inactive once absent for
    /// `CLEAR_MS`; returns the value to report while active.
    fn update(&mut self, at: UnixMs, present: Option<f64>, hold_ms: i64) -> Option<f64> {
        if let Some(value) = present {
            self.value = value;
            self.absent_since = None;
            let since = *self.present_since.get_or_insert(at);
            if at - since >= hold_ms {
                self.active = true;
            }
        } else {
            self.present_since = None;
            if self.active {
                let since = *self.absent_since.get_or_insert(at);
                if at - since >= CLEAR_MS {
                    self.active = false;
                    self.absent_since = None;
                }
            }
        }
        self.active.then_some(self.value)
    }

    /// The factor on a condition's threshold: 1 to raise it, `margin` to
    /// keep it, so that a value hovering at the threshold does not flap.
    fn margin(&self, margin: f64) -> f64 {
        if self.active {
            margin
        } else {
            1.0
        }
    }

    /// Raised or on its way to being raised.
    fn engaged(&self) -> bool {
        self.active || self.present_since.is_some()
    }

    /// A discontinuity: an onset in progress starts again, an active
    /// condition stays until frames show otherwise.
    fn interrupt(&mut self) {
        self.present_since = None;
        self.absent_since = None;
    }
}

enum Phase {
    Learning { since: UnixMs, learner: Learner },
    Watching(Reference),
}

/// One camera's tamper state.
pub struct TamperDetector {
    settings: TamperSettings,
    thresholds: Thresholds,
    phase: Phase,
    last_at: Option<UnixMs>,
    previous_change: ChangeSample,
    /// Start of the current run of identical frames.
    frozen_since: Option<UnixMs>,
    defocus_window: Window,
    moved_window: Window,
    covered: Hold,
    defocused: Hold,
    moved: Hold,
    frozen: Hold,
}

impl TamperDetector {
    pub fn new(settings: TamperSettings, now: UnixMs) -> Self {
        TamperDetector {
            settings,
            thresholds: settings.sensitivity.thresholds(),
            phase: Phase::Learning {
                since: now,
                learner: Learner::default(),
            },
            last_at: None,
            previous_change: ChangeSample::default(),
            frozen_since: None,
            defocus_window: Window::default(),
            moved_window: Window::default(),
            covered: Hold::default(),
            defocused: Hold::default(),
            moved: Hold::default(),
            frozen: Hold::default(),
        }
    }

    /// Forgets the reference and every condition and learns again from
    /// `now`: for an admin who has deliberately re-aimed or refocused.
    pub fn rearm(&mut self, now: UnixMs) {
        *self = TamperDetector::new(self.settings, now);
    }

    pub fn learning(&self, now: UnixMs) -> bool {
        match &self.phase {
            Phase::Learning { since, learner } => {
                now - since < self.settings.learning_ms || learner.frames < MIN_LEARNING_FRAMES
            }
            Phase::Watching(_) => false,
        }
    }

    pub fn settings(&self) -> TamperSettings {
        self.settings
    }

    /// Takes one frame's statistics and returns the conditions active at
    /// `at`, in `TamperCondition` order; none while learning.
    pub fn observe(&mut self, at: UnixMs, stats: &FrameStats) -> Vec<TamperReading> {
        let gap = self.last_at.map(|last| at - last);
        if gap.is_some_and(|g| !(0..=MAX_GAP_MS).contains(&g)) {
            self.interrupt(at);
        }
        let dt = gap.map_or(0, |g| g.clamp(0, MAX_GAP_MS));
        self.last_at = Some(at);

        // A new resolution changes every figure's scale: learn again.
        let dims = match &self.phase {
            Phase::Learning { learner, .. } => learner.dims,
            Phase::Watching(reference) => Some((reference.width, reference.height)),
        };
        if dims.is_some_and(|d| d != stats.size()) {
            self.rearm(at);
            self.last_at = Some(at);
        }

        let change = stats.change_since(&self.previous_change);
        if change < FROZEN_CHANGE {
            // The run starts with the previous frame, the first of the pair.
            self.frozen_since.get_or_insert(at - dt);
        } else {
            self.frozen_since = None;
        }
        self.previous_change.keep(stats);

        let t = self.thresholds;
        let uniform = stats.luma_std() < t.cover_floor;
        if let Phase::Learning { since, learner } = &mut self.phase {
            learner.add(stats, uniform);
            if at - *since < self.settings.learning_ms {
                return Vec::new();
            }
            match learner.finish() {
                Some(reference) => self.phase = Phase::Watching(reference),
                None => return Vec::new(),
            }
        }
        let Phase::Watching(reference) = &mut self.phase else {
            return Vec::new();
        };
        if !reference.scene && !uniform {
            // Learned while covered; this is the first look at the scene.
            self.rearm(at);
            self.last_at = Some(at);
            self.previous_change.keep(stats);
            if let Phase::Learning { learner, .. } = &mut self.phase {
                learner.add(stats, false);
            }
            return Vec::new();
        }

        // Covered: nearly uniform, and well below the learned contrast.
        let cover_threshold = if reference.scene {
            t.cover_floor.min(t.cover_fraction * reference.luma_std)
        } else {
            t.cover_floor
        };
        let covered_now = (stats.luma_std() < cover_threshold * self.covered.margin(COVER_MARGIN))
            .then_some(stats.luma_std());
        let covered = self.covered.update(at, covered_now, COVERED_HOLD_MS);

        // Defocused: the median sharpness over a few seconds, relative.
        let mut sharpness_ratio = None;
        if reference.scene && !uniform && reference.sharpness > 0.0 {
            self.defocus_window.push(
                at,
                stats.sharpness() / reference.sharpness,
                DEFOCUS_WINDOW_MS,
            );
            sharpness_ratio = self.defocus_window.median();
        } else {
            self.defocus_window.clear();
        }
        let defocused_now = sharpness_ratio
            .filter(|&r| r < t.sharpness_fraction * self.defocused.margin(SHARPNESS_MARGIN));
        let defocused = self.defocused.update(at, defocused_now, DEFOCUS_HOLD_MS);

        // Moved: the median similarity over ten seconds, judged only on a
        // clear, sharp picture (a blur or a cover changes the structure too,
        // and is reported as itself).
        let mut similarity = None;
        if reference.scene && !uniform && !self.defocused.engaged() {
            let s = stats.similarity_to(&reference.signature);
            self.moved_window.push(at, s, MOVED_WINDOW_MS);
            similarity = self.moved_window.median();
        } else {
            self.moved_window.clear();
        }
        let moved_now =
            similarity.filter(|&s| s < t.min_similarity * self.moved.margin(SIMILARITY_MARGIN));
        let moved = self.moved.update(at, moved_now, MOVED_HOLD_MS);

        // Frozen: identical frames for `frozen_ms`. A uniform picture has
        // nothing to change and is reported as covered instead.
        let frozen_ms = self.frozen_since.map_or(0, |since| at - since);
        let frozen_now =
            (!uniform && frozen_ms >= self.settings.frozen_ms).then_some(frozen_ms as f64 / 1000.0);
        let frozen = self.frozen.update(at, frozen_now, 0);

        let nothing_wrong = !(self.covered.engaged()
            || self.defocused.engaged()
            || self.moved.engaged()
            || self.frozen.engaged()
            || uniform
            || self.frozen_since.is_some());
        if nothing_wrong && dt > 0 {
            reference.adapt(stats, 1.0 - (-(dt as f64) / ADAPT_TAU_MS).exp());
        }

        let mut readings = Vec::new();
        if let Some(value) = covered {
            readings.push(TamperReading {
                condition: TamperCondition::Covered,
                value,
                threshold: cover_threshold,
                explanation: format!(
                    "image contrast fell to {value:.1} grey levels (threshold {cover_threshold:.1}): lens covered or blacked out",
                ),
            });
        }
        if let Some(value) = defocused {
            readings.push(TamperReading {
                condition: TamperCondition::Defocused,
                value,
                threshold: t.sharpness_fraction,
                explanation: format!(
                    "sharpness fell to {:.0} % of the learned reference (threshold {:.0} %)",
                    value * 100.0,
                    t.sharpness_fraction * 100.0
                ),
            });
        }
        if let Some(value) = moved {
            readings.push(TamperReading {
                condition: TamperCondition::Moved,
                value,
                threshold: t.min_similarity,
                explanation: format!(
                    "scene matches its learned reference at {value:.2} (threshold {:.2}): camera moved or re-aimed",
                    t.min_similarity
                ),
            });
        }
        if let Some(seconds) = frozen {
            let threshold = self.settings.frozen_ms as f64 / 1000.0;
            readings.push(TamperReading {
                condition: TamperCondition::Frozen,
                value: seconds,
                threshold,
                explanation: format!(
                    "image unchanged for {seconds:.0} s (threshold {threshold:.0} s)"
                ),
            });
        }
        readings
    }

    /// Time jumped back or stood still too long: restart what depends on
    /// continuity, keep the reference and the active conditions.
    fn interrupt(&mut self, at: UnixMs) {
        if let Phase::Learning { since, .. } = &mut self.phase {
            if at < *since {
                *since = at;
            }
        }
        self.frozen_since = None;
        self.previous_change.clear();
        self.defocus_window.clear();
        self.moved_window.clear();
        for hold in [
            &mut self.covered,
            &mut self.defocused,
            &mut self.moved,
            &mut self.frozen,
        ] {
            hold.interrupt();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pixels::frame::Frame;
    use std::sync::Arc;

    const W: usize = 320;
    const H: usize = 180;
    /// The world is wider than the view, so a re-aimed camera sees new
    /// ground rather than a wrapped copy of the old.
    const WORLD_W: usize = 480;
    /// 2 fps, the usual analysis rate.
    const STEP: i64 = 500;
    const T0: UnixMs = 1_700_000_000_000;

    fn hash(mut x: u32) -> u32 {
        x ^= x >> 16;
        x = x.wrapping_mul(0x7feb_352d);
        x ^= x >> 15;
        x = x.wrapping_mul(0x846c_a68b);
        x ^ (x >> 16)
    }

    /// Rectangles of varied colour and size over a textured, graded ground:
    /// edges everywhere, but not evenly, and no repeats.
    fn world() -> Vec<[u8; 3]> {
        let mut img = vec![[0u8; 3]; WORLD_W * H];
        for y in 0..H {
            for x in 0..WORLD_W {
                let v = (50 + y * 70 / H + (hash((x * 7919 + y * 131) as u32) % 24) as usize) as u8;
                img[y * WORLD_W + x] = [v, v, v.saturating_add(10)];
            }
        }
        for r in 0..110u32 {
            let x0 = hash(r * 8 + 1) as usize % WORLD_W;
            let y0 = hash(r * 8 + 2) as usize % H;
            let rw = 6 + hash(r * 8 + 3) as usize % 50;
            let rh = 6 + hash(r * 8 + 4) as usize % 40;
            let c = hash(r * 8 + 5);
            let colour = [
                (c & 0xff) as u8,
                (c >> 8 & 0xff) as u8,
                (c >> 16 & 0xff) as u8,
            ];
            for y in y0..(y0 + rh).min(H) {
                for x in x0..(x0 + rw).min(WORLD_W) {
                    img[y * WORLD_W + x] = colour;
                }
            }
        }
        img
    }

    /// The view at `offset` in the world at frame `n`: gain applied, a
    /// person walking across, and a little sensor noise.
    fn view(world: &[[u8; 3]], offset: usize, n: i64, gain: f64) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(W * H * 3);
        for y in 0..H {
            for x in 0..W {
                for c in world[y * WORLD_W + offset + x] {
                    let noise =
                        (hash((n as u32).wrapping_mul(977) ^ (y * W + x) as u32) % 5) as f64 - 2.0;
                    rgb.push((c as f64 * gain + noise).clamp(0.0, 255.0) as u8);
                }
            }
        }
        // A person, 24x70, crossing the view at 6 px a frame.
        let px = (n * 6).rem_euclid(W as i64 + 24) - 24;
        for y in 90..160 {
            for x in px.max(0)..(px + 24).min(W as i64) {
                let i = (y * W + x as usize) * 3;
                let shade = if y < 104 {
                    [200, 160, 140]
                } else {
                    [30, 40, 90]
                };
                rgb[i..i + 3].copy_from_slice(&shade);
            }
        }
        rgb
    }

    /// Separable box blur of the given radius.
    fn blur(rgb: &[u8], radius: usize) -> Vec<u8> {
        let pass = |src: &[u8], horizontal: bool| -> Vec<u8> {
            let mut out = vec![0u8; src.len()];
            for y in 0..H {
                for x in 0..W {
                    for c in 0..3 {
                        let (mut sum, mut n) = (0u32, 0u32);
                        for d in -(radius as i64)..=radius as i64 {
                            let (xx, yy) = if horizontal {
                                (x as i64 + d, y as i64)
                            } else {
                                (x as i64, y as i64 + d)
                            };
                            if (0..W as i64).contains(&xx) && (0..H as i64).contains(&yy) {
                                sum += src[(yy as usize * W + xx as usize) * 3 + c] as u32;
                                n += 1;
                            }
                        }
                        out[(y * W + x) * 3 + c] = (sum / n) as u8;
                    }
                }
            }
            out
        };
        pass(&pass(rgb, true), false)
    }

    fn stats(rgb: Vec<u8>, at: UnixMs) -> FrameStats {
        FrameStats::measure(&Frame::new(Arc::from("cam"), W as u32, H as u32, rgb, at).unwrap())
    }

    fn settings(sensitivity: Sensitivity) -> TamperSettings {
        TamperSettings {
            sensitivity,
            ..TamperSettings::default()
        }
    }

    /// Frame `n`'s timestamp.
    fn at(n: i64) -> UnixMs {
        T0 + n * STEP
    }

    /// Runs frames `from..to` made by `make`, returning each frame's
    /// readings' conditions.
    fn run(
        detector: &mut TamperDetector,
        from: i64,
        to: i64,
        mut make: impl FnMut(i64) -> Vec<u8>,
    ) -> Vec<Vec<TamperCondition>> {
        (from..to)
            .map(|n| {
                let s = stats(make(n), at(n));
                detector
                    .observe(at(n), &s)
                    .iter()
                    .map(|r| r.condition)
                    .collect()
            })
            .collect()
    }

    /// A detector that has learned the normal scene (frames 0..130).
    fn learned(world: &[[u8; 3]], sensitivity: Sensitivity) -> TamperDetector {
        let mut d = TamperDetector::new(settings(sensitivity), at(0));
        let out = run(&mut d, 0, 130, |n| view(world, 0, n, 1.0));
        assert!(out.iter().all(Vec::is_empty));
        assert!(!d.learning(at(130)));
        d
    }

    /// The index of the first frame whose readings contain `condition`.
    fn first(out: &[Vec<TamperCondition>], condition: TamperCondition) -> Option<usize> {
        out.iter().position(|r| r.contains(&condition))
    }

    #[test]
    fn nothing_is_reported_while_learning() {
        let world = world();
        let mut d = TamperDetector::new(TamperSettings::default(), at(0));
        // Mostly normal, then black: covered for 20 s, yet still learning.
        for n in 0..119 {
            let rgb = if n < 80 {
                view(&world, 0, n, 1.0)
            } else {
                vec![0; W * H * 3]
            };
            assert!(d.learning(at(n)));
            assert!(d.observe(at(n), &stats(rgb, at(n))).is_empty(), "frame {n}");
        }
        assert!(d.learning(at(119)));
        // Learning ended on the scene, so the black frames now count.
        let out = run(&mut d, 120, 140, |_| vec![0; W * H * 3]);
        assert!(!d.learning(at(140)));
        assert!(first(&out, TamperCondition::Covered).is_some());
    }

    #[test]
    fn learning_waits_for_frames() {
        let world = world();
        let mut d = TamperDetector::new(TamperSettings::default(), at(0));
        // No frame for two minutes, then a handful: learning needs five.
        for n in 240..244 {
            assert!(d
                .observe(at(n), &stats(view(&world, 0, n, 1.0), at(n)))
                .is_empty());
            assert!(d.learning(at(n)));
        }
        d.observe(at(244), &stats(view(&world, 0, 244, 1.0), at(244)));
        assert!(!d.learning(at(245)));
    }

    #[test]
    fn a_normal_scene_raises_nothing_for_ten_minutes() {
        let world = world();
        let mut d = learned(&world, Sensitivity::High);
        let out = run(&mut d, 130, 1330, |n| view(&world, 0, n, 1.0));
        assert_eq!(out.iter().filter(|r| !r.is_empty()).count(), 0);
    }

    #[test]
    fn dimmer_light_is_not_tampering() {
        let world = world();
        let mut d = learned(&world, Sensitivity::High);
        let out = run(&mut d, 130, 250, |n| view(&world, 0, n, 0.55));
        assert!(out.iter().all(Vec::is_empty), "{out:?}");
    }

    #[test]
    fn black_frames_are_covered_after_the_hold_and_clear_after_recovery() {
        let world = world();
        let mut d = learned(&world, Sensitivity::Medium);
        let black = run(&mut d, 130, 150, |_| vec![3; W * H * 3]);
        // Black from frame 130: the hold is 3 s, so frame 136 at the earliest.
        assert_eq!(first(&black, TamperCondition::Covered), Some(6));
        assert!(black[19].iter().all(|&c| c == TamperCondition::Covered));
        let s = stats(vec![3; W * H * 3], at(150));
        let readings = d.observe(at(150), &s);
        assert_eq!(readings.len(), 1);
        assert!(readings[0].value < 1.0 && readings[0].threshold == 8.0);
        assert!(readings[0].explanation.contains("threshold 8.0"));
        // Back to normal: still reported while clearing, with the figure
        // that raised it rather than today's contrast...
        let r = d.observe(at(151), &stats(view(&world, 0, 151, 1.0), at(151)));
        assert_eq!(r[0].condition, TamperCondition::Covered);
        assert!(r[0].value < 1.0, "{r:?}");
        // ...cleared after 4 s absent, and nothing else raised.
        let after = run(&mut d, 152, 300, |n| view(&world, 0, n, 1.0));
        assert!(after[..7].iter().all(|r| r == &[TamperCondition::Covered]));
        assert!(after[7..].iter().all(Vec::is_empty), "{after:?}");
    }

    #[test]
    fn a_hand_passing_the_lens_is_not_covered() {
        let world = world();
        let mut d = learned(&world, Sensitivity::High);
        let out = run(&mut d, 130, 200, |n| {
            if n % 20 < 4 {
                vec![20; W * H * 3]
            } else {
                view(&world, 0, n, 1.0)
            }
        });
        assert!(out.iter().all(Vec::is_empty), "{out:?}");
    }

    #[test]
    fn a_blurred_scene_is_defocused() {
        let world = world();
        let mut d = learned(&world, Sensitivity::Medium);
        let out = run(&mut d, 130, 170, |n| blur(&view(&world, 0, n, 1.0), 4));
        let onset = first(&out, TamperCondition::Defocused).unwrap();
        assert!((12..=24).contains(&onset), "onset {onset}");
        assert!(out
            .iter()
            .flatten()
            .all(|&c| c == TamperCondition::Defocused));
        let s = stats(blur(&view(&world, 0, 170, 1.0), 4), at(170));
        let r = d.observe(at(170), &s);
        assert_eq!(r[0].condition, TamperCondition::Defocused);
        assert!(r[0].value < 0.3 && r[0].threshold == 0.3, "{r:?}");
        assert!(r[0].explanation.contains("(threshold 30 %)"));
    }

    #[test]
    fn a_shifted_scene_is_moved_after_its_hold() {
        let world = world();
        let mut d = learned(&world, Sensitivity::Medium);
        let out = run(&mut d, 130, 180, |n| view(&world, 64, n, 1.0));
        let onset = first(&out, TamperCondition::Moved).unwrap();
        // The 10 s median crosses after ~5 s, then a 5 s hold.
        assert!((18..=24).contains(&onset), "onset {onset}");
        assert!(out[onset..].iter().all(|r| r == &[TamperCondition::Moved]));
        let r = d.observe(at(180), &stats(view(&world, 64, 180, 1.0), at(180)));
        assert!(r[0].value < r[0].threshold && r[0].threshold == 0.5);
    }

    #[test]
    fn rearm_learns_the_new_aim() {
        let world = world();
        let mut d = learned(&world, Sensitivity::Medium);
        let out = run(&mut d, 130, 160, |n| view(&world, 64, n, 1.0));
        assert!(out[29].contains(&TamperCondition::Moved));
        d.rearm(at(160));
        assert!(d.learning(at(160)));
        let out = run(&mut d, 160, 600, |n| view(&world, 64, n, 1.0));
        assert!(out.iter().all(Vec::is_empty), "{out:?}");
        assert!(!d.learning(at(600)));
        // And the old aim is now the stranger.
        let out = run(&mut d, 600, 640, |n| view(&world, 0, n, 1.0));
        assert!(out[39].contains(&TamperCondition::Moved));
    }

    #[test]
    fn identical_frames_are_frozen_after_frozen_ms_only() {
        let world = world();
        let mut d = learned(&world, Sensitivity::Medium);
        let still = view(&world, 0, 130, 1.0);
        // Frame 130 starts the run; 20 s later is frame 170.
        let out = run(&mut d, 130, 180, |_| still.clone());
        assert_eq!(first(&out, TamperCondition::Frozen), Some(40));
        assert!(out[..40].iter().all(Vec::is_empty));
        let r = d.observe(at(180), &stats(still.clone(), at(180)));
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].value, r[0].threshold), (25.0, 20.0));
        assert_eq!(
            r[0].explanation,
            "image unchanged for 25 s (threshold 20 s)"
        );
        // Moving again: cleared after 4 s.
        let out = run(&mut d, 181, 200, |n| view(&world, 0, n, 1.0));
        assert_eq!(first(&out, TamperCondition::Frozen), Some(0));
        assert!(out[8..].iter().all(Vec::is_empty));
    }

    #[test]
    fn high_sensitivity_catches_a_milder_blur_than_low() {
        let world = world();
        let mild = |n| blur(&view(&world, 0, n, 1.0), 1);
        let mut high = learned(&world, Sensitivity::High);
        let out = run(&mut high, 130, 180, mild);
        assert!(out[49].contains(&TamperCondition::Defocused), "{out:?}");
        let mut low = learned(&world, Sensitivity::Low);
        let out = run(&mut low, 130, 180, mild);
        assert!(out.iter().all(Vec::is_empty), "{out:?}");
    }

    #[test]
    fn covered_from_the_start_is_reported_then_the_scene_is_learned() {
        let world = world();
        let mut d = TamperDetector::new(TamperSettings::default(), at(0));
        let out = run(&mut d, 0, 140, |_| vec![0; W * H * 3]);
        assert!(out[139].contains(&TamperCondition::Covered));
        // Uncovered: a fresh learning period on the real scene, no "moved".
        let out = run(&mut d, 140, 400, |n| view(&world, 0, n, 1.0));
        assert!(d.learning(at(141)) || out[1].is_empty());
        assert!(out[10..].iter().all(Vec::is_empty), "{out:?}");
        let out = run(&mut d, 400, 440, |n| view(&world, 64, n, 1.0));
        assert!(out[39].contains(&TamperCondition::Moved));
    }

    #[test]
    fn gaps_and_clock_steps_restart_holds() {
        let world = world();
        let mut d = learned(&world, Sensitivity::Medium);
        let black = || stats(vec![0; W * H * 3], 0);
        // Two black frames a minute apart are not three seconds of cover.
        assert!(d.observe(at(200), &black()).is_empty());
        assert!(d.observe(at(320), &black()).is_empty());
        // A clock step back neither panics nor raises.
        assert!(d.observe(at(100), &black()).is_empty());
        let out = run(&mut d, 101, 160, |n| view(&world, 0, n, 1.0));
        assert!(out.iter().all(Vec::is_empty), "{out:?}");
    }

    #[test]
    fn a_new_resolution_is_learned_afresh() {
        let world = world();
        let mut d = learned(&world, Sensitivity::Medium);
        let small = Frame::new(Arc::from("cam"), 160, 90, vec![0; 160 * 90 * 3], at(130)).unwrap();
        assert!(d.observe(at(130), &FrameStats::measure(&small)).is_empty());
        assert!(d.learning(at(131)));
    }

    #[test]
    fn debug_shows_no_pixels() {
        let world = world();
        let s = stats(view(&world, 0, 0, 1.0), 0);
        let text = format!("{s:?}");
        assert!(text.starts_with("FrameStats { width: 320, height: 180, mean_luma: "));
        assert!(!text.contains("signature") && !text.contains("change"));
        assert!(text.len() < 200, "{text}");
    }

    #[test]
    fn statistics_measure_what_they_say() {
        let flat = stats(vec![128; W * H * 3], 0);
        assert_eq!(
            (flat.mean_luma(), flat.luma_std(), flat.sharpness()),
            (128.0, 0.0, 0.0)
        );
        let world = world();
        let sharp = stats(view(&world, 0, 0, 1.0), 0);
        let soft = stats(blur(&view(&world, 0, 0, 1.0), 3), 0);
        assert!(soft.sharpness() < 0.5 * sharp.sharpness());
        assert!(sharp.similarity(&sharp) > 0.999);
        assert_eq!(sharp.change_from(&sharp), 0.0);
        assert!(sharp.change_from(&stats(view(&world, 0, 1, 1.0), 0)) > 0.5);
    }
}
