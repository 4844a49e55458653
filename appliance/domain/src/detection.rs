//! What the detectors hand on: boxes with scores, normalised to the frame.
//! No identity of any kind lives here.

use crate::geometry::BBox;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
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
