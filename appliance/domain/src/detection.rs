//! What the detectors hand on: boxes with scores, normalised to the frame.
//! No identity of any kind lives here.

use crate::geometry::BBox;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
}

/// Where the person model looks in a frame. `region` (normalised) is
/// cropped before it is scaled to the model's input, so pixels no zone or
/// line can use cost nothing and the rest are seen larger; `detail`, the
/// part of the view where people are small, is looked at again in tiles at
/// a finer scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchArea {
    pub region: BBox,
    pub detail: Option<BBox>,
}

/// The whole frame.
pub const FULL_FRAME: BBox = BBox {
    x1: 0.0,
    y1: 0.0,
    x2: 1.0,
    y2: 1.0,
};

/// How far around a camera's zones and lines the person model looks: a
/// person counts by the foot point, so the body reaches a person's height
/// above it (people look tallest near the bottom of a view, up to about a
/// third of it); to the sides and below, the tracker must hold a person
/// for a few frames before and after a line (at 5 fps a walker moves a few
/// hundredths of the view a frame, and a box cut by the crop's edge is
/// dropped): with 0.08 the scenario eval missed 4 of 30 crossings.
const REACH_UP: f32 = 0.35;
const REACH_SIDE: f32 = 0.2;
/// A region covering more than this share of the frame is not cropped: the
/// crop would save little.
const CROP_WORTH_BELOW: f32 = 0.8;

impl SearchArea {
    pub const FULL: SearchArea = SearchArea {
        region: FULL_FRAME,
        detail: None,
    };

    /// The union of the boxes around `points` (a camera's zone corners and
    /// line ends, normalised), with a person's reach; the whole frame when
    /// there are none or they span most of it.
    pub fn around(points: impl IntoIterator<Item = crate::geometry::Point>) -> SearchArea {
        let mut bounds: Option<BBox> = None;
        for p in points {
            let b = bounds.get_or_insert(BBox {
                x1: p.x,
                y1: p.y,
                x2: p.x,
                y2: p.y,
            });
            b.x1 = b.x1.min(p.x);
            b.y1 = b.y1.min(p.y);
            b.x2 = b.x2.max(p.x);
            b.y2 = b.y2.max(p.y);
        }
        let Some(b) = bounds else {
            return SearchArea::FULL;
        };
        let region = BBox {
            x1: (b.x1 - REACH_SIDE).max(0.0),
            y1: (b.y1 - REACH_UP).max(0.0),
            x2: (b.x2 + REACH_SIDE).min(1.0),
            y2: (b.y2 + REACH_SIDE).min(1.0),
        };
        if region.area() > CROP_WORTH_BELOW {
            SearchArea::FULL
        } else {
            SearchArea {
                region,
                detail: None,
            }
        }
    }
}

/// Greedy non-maximum suppression: keeps the best-scoring box of every group
/// overlapping by more than `iou_threshold`. Output is sorted by score.
pub fn non_max_suppression(mut boxes: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::with_capacity(boxes.len());
    for candidate in boxes {
        if kept
            .iter()
            .all(|k| k.bbox.iou(&candidate.bbox) <= iou_threshold)
        {
            kept.push(candidate);
        }
    }
    kept
}

/// Drops every box lying mostly (`share` of its area or more) inside a
/// better-scoring larger one: the part-body boxes (a torso, a head and
/// shoulders) a detector adds inside a close person's whole box, which NMS
/// keeps because their overlap is small relative to the large box. A person
/// half behind another shows more than that outside the nearer one's box.
pub fn suppress_contained(boxes: Vec<Detection>, share: f32) -> Vec<Detection> {
    let mut sorted = boxes;
    sorted.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::with_capacity(sorted.len());
    for candidate in sorted {
        let b = candidate.bbox;
        let inside_a_better_one = kept.iter().any(|k| {
            let w = (b.x2.min(k.bbox.x2) - b.x1.max(k.bbox.x1)).max(0.0);
            let h = (b.y2.min(k.bbox.y2) - b.y1.max(k.bbox.y1)).max(0.0);
            k.bbox.area() > b.area() && w * h >= share * b.area()
        });
        if !inside_a_better_one {
            kept.push(candidate);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> Detection {
        Detection {
            bbox: BBox { x1, y1, x2, y2 },
            score,
        }
    }

    #[test]
    fn the_search_area_reaches_a_person_above_the_zones_and_lines() {
        use crate::geometry::Point;
        let p = |x, y| Point { x, y };
        assert_eq!(SearchArea::around([]), SearchArea::FULL);
        // A door line low in the middle of the view.
        let area = SearchArea::around([p(0.4, 0.7), p(0.6, 0.7)]);
        let r = area.region;
        assert!((r.x1 - 0.2).abs() < 1e-6 && (r.x2 - 0.8).abs() < 1e-6);
        assert!((r.y1 - 0.35).abs() < 1e-6 && (r.y2 - 0.9).abs() < 1e-6);
        // A zone over the whole view is not cropped.
        let whole = SearchArea::around([p(0.0, 0.0), p(1.0, 0.0), p(1.0, 1.0), p(0.0, 1.0)]);
        assert_eq!(whole, SearchArea::FULL);
    }

    #[test]
    fn part_body_boxes_inside_a_person_are_dropped_but_a_person_behind_is_kept() {
        let whole = det(0.4, 0.2, 0.6, 0.9, 0.9);
        let torso = det(0.42, 0.3, 0.58, 0.6, 0.6);
        // Behind the person, showing most of the body beside them.
        let behind = det(0.55, 0.25, 0.7, 0.7, 0.7);
        let kept = suppress_contained(vec![torso, behind, whole], 0.85);
        assert_eq!(kept, [whole, behind]);
        // A better-scoring small box inside a weaker large one stays.
        let kept = suppress_contained(vec![det(0.4, 0.2, 0.6, 0.9, 0.5), torso], 0.85);
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn nms_table() {
        let check = |input: Vec<Detection>, threshold: f32, expected_scores: &[f32]| {
            let kept: Vec<f32> = non_max_suppression(input, threshold)
                .iter()
                .map(|d| d.score)
                .collect();
            assert_eq!(kept, expected_scores);
        };
        check(vec![], 0.5, &[]);
        // Two heavily overlapping boxes: the better one survives.
        check(
            vec![det(0.0, 0.0, 0.2, 0.2, 0.6), det(0.01, 0.0, 0.21, 0.2, 0.9)],
            0.5,
            &[0.9],
        );
        // Disjoint boxes all survive, sorted by score.
        check(
            vec![det(0.0, 0.0, 0.1, 0.1, 0.5), det(0.5, 0.5, 0.6, 0.6, 0.7)],
            0.5,
            &[0.7, 0.5],
        );
        // IoU 1/3 is kept at threshold 0.5 but suppressed at 0.3.
        let pair = || vec![det(0.0, 0.0, 0.2, 0.2, 0.8), det(0.1, 0.0, 0.3, 0.2, 0.7)];
        check(pair(), 0.5, &[0.8, 0.7]);
        check(pair(), 0.3, &[0.8]);
        // A chain: c overlaps b, b overlaps a, but a and c are apart; b goes, c stays.
        check(
            vec![
                det(0.0, 0.0, 0.2, 0.2, 0.9),
                det(0.1, 0.0, 0.3, 0.2, 0.8),
                det(0.2, 0.0, 0.4, 0.2, 0.7),
            ],
            0.3,
            &[0.9, 0.7],
        );
    }
}
