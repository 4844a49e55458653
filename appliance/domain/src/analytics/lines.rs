//! Crossing counts over one line. Each tracked foot point has a committed
//! side; it changes only when the point has been beyond a band around the
//! line on the other side for two observations in a row, so a person
//! dithering on the line counts once, and only crossings within the line's
//! extent count (walking round its end does not).

use crate::config::{LineConfig, Side};
use crate::geometry::{cross, Point};
use std::collections::HashMap;

/// Observations on the new side needed to commit a change.
const CONFIRMATIONS: u32 = 2;
/// How far beyond its ends (fraction of its length) a line still counts.
const END_MARGIN: f32 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    In,
    Out,
}

#[derive(Debug, Default)]
struct TrackSide {
    committed: Option<Side>,
    candidate: Option<(Side, u32)>,
    /// Where along the line (0 = start, 1 = end) the point last was.
    along: f32,
    /// Whether the point was within the line's extent while changing sides.
    crossed_within: bool,
}

pub(super) struct LineCounter {
    key: String,
    name: String,
    start: Point,
    end: Point,
    in_side: Side,
    band: f32,
    tracks: HashMap<u64, TrackSide>,
}

impl LineCounter {
    pub fn new(key: String, line: &LineConfig, band: f32) -> Self {
        Self {
            key,
            name: line.name.clone(),
            start: line.start,
            end: line.end,
            in_side: line.in_side,
            band,
            tracks: HashMap::new(),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `line` draws this very line (name, ends, in side; one-way is
    /// an anomaly rule), so the tracks' committed sides stay valid.
    pub fn same_as(&self, line: &LineConfig) -> bool {
        self.name == line.name
            && self.start == line.start
            && self.end == line.end
            && self.in_side == line.in_side
    }

    /// A matched track's foot point; a crossing when its side changes.
    /// Tracks not yet confirmed set their side but count nothing.
    pub fn observe(&mut self, track: u64, foot: Point, confirmed: bool) -> Option<Direction> {
        let (dx, dy) = (self.end.x - self.start.x, self.end.y - self.start.y);
        let length = dx.hypot(dy);
        let distance = cross(self.start, self.end, foot) / length;
        let along =
            ((foot.x - self.start.x) * dx + (foot.y - self.start.y) * dy) / (length * length);
        let within = (-END_MARGIN..=1.0 + END_MARGIN).contains(&along);
        let side = if distance < -self.band {
            Some(Side::Left)
        } else if distance > self.band {
            Some(Side::Right)
        } else {
            None
        };
        let state = self.tracks.entry(track).or_default();
        let previous_along = std::mem::replace(&mut state.along, along);
        let Some(side) = side else {
            // In the band: the point is on the line here.
            state.candidate = None;
            state.crossed_within |= within;
            return None;
        };
        let Some(committed) = state.committed else {
            state.committed = Some(side);
            return None;
        };
        if side == committed {
            state.candidate = None;
            state.crossed_within = false;
            return None;
        }
        let seen = match state.candidate {
            Some((s, n)) if s == side => n + 1,
            _ => {
                // The first point beyond: did the step from the last one
                // cross within the line's extent?
                let midway = (previous_along + along) / 2.0;
                state.crossed_within |= (-END_MARGIN..=1.0 + END_MARGIN).contains(&midway);
                1
            }
        };
        state.candidate = Some((side, seen));
        if seen < CONFIRMATIONS {
            return None;
        }
        state.committed = Some(side);
        state.candidate = None;
        let counted = std::mem::take(&mut state.crossed_within) && confirmed;
        counted.then(|| {
            if side == self.in_side {
                Direction::In
            } else {
                Direction::Out
            }
        })
    }

    pub fn forget(&mut self, removed: &[u64]) {
        for id in removed {
            self.tracks.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door() -> LineCounter {
        // Horizontal at y = 0.5 from x 0.3 to 0.7; facing right, "in" is up the screen.
        let line = LineConfig {
            name: "door".into(),
            start: Point { x: 0.3, y: 0.5 },
            end: Point { x: 0.7, y: 0.5 },
            in_side: Side::Left,
            one_way: None,
        };
        LineCounter::new("cam.door".into(), &line, 0.02)
    }

    fn walk(line: &mut LineCounter, track: u64, path: &[(f32, f32)]) -> Vec<Direction> {
        path.iter()
            .filter_map(|&(x, y)| line.observe(track, Point { x, y }, true))
            .collect()
    }

    #[test]
    fn crossing_up_is_in_and_down_is_out() {
        let mut line = door();
        let up: Vec<_> = (0..10).map(|i| (0.5, 0.8 - 0.06 * i as f32)).collect();
        assert_eq!(walk(&mut line, 1, &up), [Direction::In]);
        let down: Vec<_> = up.iter().rev().copied().collect();
        assert_eq!(walk(&mut line, 1, &down), [Direction::Out]);
    }

    #[test]
    fn dithering_on_the_line_counts_once() {
        let mut line = door();
        let mut path = vec![(0.5, 0.7), (0.5, 0.6)];
        // Stands on the line, shuffling a few pixels either way.
        for i in 0..20 {
            path.push((0.5, if i % 2 == 0 { 0.51 } else { 0.49 }));
        }
        path.extend([(0.5, 0.4), (0.5, 0.3), (0.5, 0.2)]);
        assert_eq!(walk(&mut line, 1, &path), [Direction::In]);
    }

    #[test]
    fn one_frame_beyond_the_band_is_not_a_crossing() {
        let mut line = door();
        let path = [(0.5, 0.7), (0.5, 0.55), (0.5, 0.45), (0.5, 0.6), (0.5, 0.7)];
        assert!(walk(&mut line, 1, &path).is_empty());
    }

    #[test]
    fn walking_round_the_end_counts_nothing() {
        let mut line = door();
        let path = [(0.9, 0.7), (0.9, 0.6), (0.9, 0.4), (0.9, 0.3), (0.9, 0.2)];
        assert!(walk(&mut line, 1, &path).is_empty());
    }

    #[test]
    fn unconfirmed_tracks_count_nothing() {
        let mut line = door();
        let counted: Vec<_> = [(0.5, 0.7), (0.5, 0.4), (0.5, 0.3)]
            .iter()
            .filter_map(|&(x, y)| line.observe(1, Point { x, y }, false))
            .collect();
        assert!(counted.is_empty());
    }
}
