//! Where in a camera's view people are small, learned from the boxes seen.
//!
//! In a fixed camera a person's height in the image follows the foot
//! point's height in the image, close to a straight line (perspective). A
//! least-squares line through recent confident boxes predicts how tall a
//! person standing anywhere in the view looks at the person model's input;
//! where that is under `SMALL_AT_INPUT` pixels the model misses most
//! people, so that part of the view (and a person's height above it) is the
//! detail area, looked at again in finer tiles. One look in
//! `SURVEY_WHILE_LEARNING` until enough boxes are seen, and one in
//! `SURVEY_EVERY` after, surveys the whole search region in tiles, so the
//! small people that the coarse pass misses are seen and the line follows
//! a camera that was moved.

use crate::detection::Detection;
use crate::geometry::BBox;
use std::collections::VecDeque;

/// Boxes kept to fit the line: the latest, so it follows a moved camera.
const KEEP: usize = 400;
/// Boxes needed before the line is trusted.
const MIN_SAMPLES: usize = 30;
/// One look in this many surveys the whole region in tiles...
const SURVEY_EVERY: u64 = 40;
/// ...and one in this many while too few people were seen to fit the line
/// (the first look included): a survey costs about seven passes.
const SURVEY_WHILE_LEARNING: u64 = 4;
/// People shorter than this at the model's input are mostly missed
/// (NanoDet-g: under 30 px fewer than half found, 30-45 px 83 %).
const SMALL_AT_INPUT: f32 = 45.0;
/// The person model's input, long side.
const MODEL_LONG_SIDE: f32 = 416.0;

#[derive(Debug, Default)]
pub struct PersonSizes {
    /// (foot y, height), normalised to the frame.
    samples: VecDeque<(f32, f32)>,
    looks: u64,
}

impl PersonSizes {
    /// Learns from the persons found at or above `threshold`.
    pub fn observe(&mut self, persons: &[Detection], threshold: f32) {
        for p in persons.iter().filter(|p| p.score >= threshold) {
            if self.samples.len() == KEEP {
                self.samples.pop_front();
            }
            self.samples.push_back((p.bbox.y2, p.bbox.height()));
        }
    }

    /// The detail area for one look at `region` (normalised) of a frame of
    /// `frame` pixels: the whole region when surveying (only a look at a
    /// view that moved, `may_survey`, counts towards the surveys), the part
    /// where people are small otherwise, None where none are.
    pub fn detail(&mut self, region: BBox, frame: (u32, u32), may_survey: bool) -> Option<BBox> {
        if may_survey {
            self.looks += 1;
            let survey_every = if self.samples.len() < MIN_SAMPLES {
                SURVEY_WHILE_LEARNING
            } else {
                SURVEY_EVERY
            };
            if self.looks % survey_every == 1 % survey_every {
                return Some(region);
            }
        }
        if self.samples.len() < MIN_SAMPLES {
            return None;
        }
        let (a, b) = self.fit()?;
        let (fw, fh) = (frame.0 as f32, frame.1 as f32);
        let scale = MODEL_LONG_SIDE / (region.width() * fw).max(region.height() * fh);
        let at_input = |foot_y: f32| (a + b * foot_y) * fh * scale;
        // The lowest foot point where a person still looks small, in steps
        // of 1/40 of the region.
        let steps = 40;
        let lowest_small = (0..=steps)
            .map(|i| region.y1 + region.height() * i as f32 / steps as f32)
            .filter(|&y| at_input(y) < SMALL_AT_INPUT)
            .fold(None, |_, y| Some(y))?;
        // Down to a step below that foot point; up to the region's top.
        let y2 = (lowest_small + region.height() / steps as f32).min(region.y2);
        Some(BBox { y2, ..region })
    }

    /// Height = a + b * foot y, by least squares; None when the foot points
    /// are too close together to give a slope.
    fn fit(&self) -> Option<(f32, f32)> {
        let n = self.samples.len() as f32;
        let (sx, sy) = self
            .samples
            .iter()
            .fold((0.0, 0.0), |(sx, sy), &(x, y)| (sx + x, sy + y));
        let (mx, my) = (sx / n, sy / n);
        let (sxx, sxy) = self.samples.iter().fold((0.0, 0.0), |(sxx, sxy), &(x, y)| {
            (sxx + (x - mx) * (x - mx), sxy + (x - mx) * (y - my))
        });
        if sxx < 1e-4 {
            // Everyone at one distance: one size everywhere.
            return Some((my, 0.0));
        }
        let b = sxy / sxx;
        Some((my - b * mx, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: (u32, u32) = (640, 480);
    const ALL: BBox = BBox {
        x1: 0.0,
        y1: 0.0,
        x2: 1.0,
        y2: 1.0,
    };

    /// A person with the foot at `foot_y` and the given height (normalised).
    fn person(foot_y: f32, height: f32) -> Detection {
        Detection {
            bbox: BBox {
                x1: 0.4,
                y1: foot_y - height,
                x2: 0.45,
                y2: foot_y,
            },
            score: 0.8,
        }
    }

    #[test]
    fn surveys_until_it_has_seen_enough_people_then_looks_closer_where_they_are_small() {
        let mut sizes = PersonSizes::default();
        assert_eq!(
            sizes.detail(ALL, FRAME, true),
            Some(ALL),
            "nothing seen yet"
        );
        // While learning, one look in SURVEY_WHILE_LEARNING surveys.
        let surveys = (1..SURVEY_WHILE_LEARNING)
            .filter(|_| sizes.detail(ALL, FRAME, true).is_some())
            .count();
        assert_eq!(surveys, 0);
        // An elevated camera: people 0.05 of the frame tall at the top
        // (15 px at the model's input, 416x312 for 640x480), 0.3 at the
        // bottom (94 px).
        let seen: Vec<Detection> = (0..40)
            .map(|i| {
                let foot = 0.2 + 0.8 * i as f32 / 40.0;
                person(foot, 0.05 + (foot - 0.2) * 0.3125)
            })
            .collect();
        // Weak detections teach nothing.
        let weak: Vec<Detection> = seen
            .iter()
            .map(|p| Detection { score: 0.3, ..*p })
            .collect();
        sizes.observe(&weak, 0.5);
        assert_eq!(sizes.detail(ALL, FRAME, true), Some(ALL), "the next survey");
        sizes.observe(&seen, 0.5);
        let detail = sizes.detail(ALL, FRAME, true).unwrap();
        // 45 px at the input is 0.144 of the frame: feet above y = 0.5.
        assert_eq!((detail.x1, detail.y1, detail.x2), (0.0, 0.0, 1.0));
        assert!((detail.y2 - 0.5).abs() < 0.04, "{detail:?}");
        // Every SURVEY_EVERYth look surveys the whole region again.
        let surveys = (0..SURVEY_EVERY)
            .filter(|_| sizes.detail(ALL, FRAME, true) == Some(ALL))
            .count();
        assert_eq!(surveys, 1);
        // A refresh of an unchanged view is never a survey, nor counts
        // towards one: it gets the learned band.
        let refreshes: Vec<Option<BBox>> = (0..2 * SURVEY_EVERY)
            .map(|_| sizes.detail(ALL, FRAME, false))
            .collect();
        assert!(
            refreshes.iter().all(|d| *d == Some(detail)),
            "{refreshes:?}"
        );
    }

    #[test]
    fn an_empty_view_is_surveyed_on_motion_only() {
        let mut sizes = PersonSizes::default();
        assert_eq!(sizes.detail(ALL, FRAME, false), None, "a refresh");
        assert_eq!(
            sizes.detail(ALL, FRAME, true),
            Some(ALL),
            "the first look that moved"
        );
    }

    #[test]
    fn a_view_of_large_people_needs_no_detail() {
        let mut sizes = PersonSizes::default();
        let close: Vec<Detection> = (0..40)
            .map(|i| person(0.6 + 0.01 * i as f32, 0.5))
            .collect();
        sizes.observe(&close, 0.5);
        sizes.looks = 1;
        assert_eq!(sizes.detail(ALL, FRAME, true), None);
    }
}
