//! Normalised image geometry: every coordinate is in [0, 1] of the frame's
//! width or height, so zones survive a change of camera resolution.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

/// An axis-aligned box, normalised, with `x1 <= x2` and `y1 <= y2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BBox {
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }
    /// Intersection over union; 0 for disjoint or empty boxes.
    pub fn iou(&self, other: &BBox) -> f32 {
        let inter = BBox {
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
            x2: self.x2.min(other.x2),
            y2: self.y2.min(other.y2),
        }
        .area();
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }
    /// Where a standing person touches the ground: the bottom centre.
    pub fn foot_point(&self) -> Point {
        Point {
            x: (self.x1 + self.x2) / 2.0,
            y: self.y2,
        }
    }
    /// The box grown by `factor` around its centre and clipped to the frame.
    pub fn scaled(&self, factor: f32) -> BBox {
        let (cx, cy) = ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0);
        let (hw, hh) = (self.width() * factor / 2.0, self.height() * factor / 2.0);
        BBox {
            x1: (cx - hw).clamp(0.0, 1.0),
            y1: (cy - hh).clamp(0.0, 1.0),
            x2: (cx + hw).clamp(0.0, 1.0),
            y2: (cy + hh).clamp(0.0, 1.0),
        }
    }
}

/// A simple polygon in normalised coordinates (validated by config: >= 3 points).
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    points: Vec<Point>,
}

impl Polygon {
    pub fn new(points: Vec<Point>) -> Self {
        Self { points }
    }
    pub fn points(&self) -> &[Point] {
        &self.points
    }
    /// Even-odd ray casting. Points exactly on an edge may fall either way,
    /// which is harmless for counting feet.
    pub fn contains(&self, p: Point) -> bool {
        let pts = &self.points;
        let mut inside = false;
        let mut j = pts.len().wrapping_sub(1);
        for i in 0..pts.len() {
            let (a, b) = (pts[i], pts[j]);
            if (a.y > p.y) != (b.y > p.y) {
                let x_cross = (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x;
                if p.x < x_cross {
                    inside = !inside;
                }
            }
            j = i;
        }
        inside
    }

    /// The first pair of edges (edge i runs from point i to point i+1) that
    /// cross or touch, other than neighbours sharing their corner.
    pub fn self_intersection(&self) -> Option<(usize, usize)> {
        let n = self.points.len();
        let edge = |i: usize| (self.points[i], self.points[(i + 1) % n]);
        for i in 0..n {
            for j in i + 1..n {
                let neighbours = j == i + 1 || (i == 0 && j == n - 1);
                if neighbours {
                    continue;
                }
                let (a, b) = edge(i);
                let (c, d) = edge(j);
                if segments_intersect(a, b, c, d) {
                    return Some((i, j));
                }
            }
        }
        None
    }
}

/// Twice the signed area of the triangle a, b, p: in image coordinates
/// (y down) negative when p lies left of a->b as seen on screen, positive
/// when right.
pub fn cross(a: Point, b: Point, p: Point) -> f32 {
    (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x)
}

/// Whether segments a-b and c-d share a point.
pub fn segments_intersect(a: Point, b: Point, c: Point, d: Point) -> bool {
    let (d1, d2) = (cross(c, d, a), cross(c, d, b));
    let (d3, d4) = (cross(a, b, c), cross(a, b, d));
    let on = |p: Point, q: Point, r: Point| {
        // r collinear with p-q: is it within their bounding box?
        r.x >= p.x.min(q.x) && r.x <= p.x.max(q.x) && r.y >= p.y.min(q.y) && r.y <= p.y.max(q.y)
    };
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    (d1 == 0.0 && on(c, d, a))
        || (d2 == 0.0 && on(c, d, b))
        || (d3 == 0.0 && on(a, b, c))
        || (d4 == 0.0 && on(a, b, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(x: f32, y: f32) -> Point {
        Point { x, y }
    }

    #[test]
    fn polygon_contains() {
        let square = Polygon::new(vec![pt(0.2, 0.2), pt(0.8, 0.2), pt(0.8, 0.8), pt(0.2, 0.8)]);
        // A concave "L": the notch at the top right is outside.
        let ell = Polygon::new(vec![
            pt(0.0, 0.0),
            pt(0.5, 0.0),
            pt(0.5, 0.5),
            pt(1.0, 0.5),
            pt(1.0, 1.0),
            pt(0.0, 1.0),
        ]);
        let check = |poly: &Polygon, p: Point, expected: bool| {
            assert_eq!(poly.contains(p), expected, "{p:?} in {poly:?}");
        };
        check(&square, pt(0.5, 0.5), true);
        check(&square, pt(0.1, 0.5), false);
        check(&square, pt(0.5, 0.9), false);
        check(&square, pt(0.79, 0.21), true);
        check(&ell, pt(0.25, 0.25), true);
        check(&ell, pt(0.75, 0.25), false);
        check(&ell, pt(0.75, 0.75), true);
        check(&ell, pt(1.5, 0.75), false);
    }

    #[test]
    fn self_intersections_are_found() {
        let square = Polygon::new(vec![pt(0.2, 0.2), pt(0.8, 0.2), pt(0.8, 0.8), pt(0.2, 0.8)]);
        let bow_tie = Polygon::new(vec![pt(0.2, 0.2), pt(0.8, 0.8), pt(0.8, 0.2), pt(0.2, 0.8)]);
        let triangle = Polygon::new(vec![pt(0.0, 0.0), pt(1.0, 0.0), pt(0.5, 1.0)]);
        // Two outlines touching at one corner.
        let pinched = Polygon::new(vec![
            pt(0.0, 0.0),
            pt(0.5, 0.5),
            pt(1.0, 0.0),
            pt(1.0, 1.0),
            pt(0.5, 0.5),
            pt(0.0, 1.0),
        ]);
        assert_eq!(square.self_intersection(), None);
        assert_eq!(triangle.self_intersection(), None);
        assert_eq!(bow_tie.self_intersection(), Some((0, 2)));
        assert!(pinched.self_intersection().is_some());
    }

    #[test]
    fn sides_of_a_line_as_seen_on_screen() {
        // Facing right along y = 0.5, the upper half of the screen is on the left.
        let (a, b) = (pt(0.0, 0.5), pt(1.0, 0.5));
        assert!(cross(a, b, pt(0.5, 0.3)) < 0.0);
        assert!(cross(a, b, pt(0.5, 0.7)) > 0.0);
        assert!(segments_intersect(a, b, pt(0.5, 0.3), pt(0.5, 0.7)));
        assert!(!segments_intersect(a, b, pt(1.2, 0.3), pt(1.2, 0.7)));
    }

    #[test]
    fn iou_and_scaling() {
        let a = BBox {
            x1: 0.0,
            y1: 0.0,
            x2: 0.2,
            y2: 0.2,
        };
        let b = BBox {
            x1: 0.1,
            y1: 0.0,
            x2: 0.3,
            y2: 0.2,
        };
        let far = BBox {
            x1: 0.5,
            y1: 0.5,
            x2: 0.6,
            y2: 0.6,
        };
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(a.iou(&far), 0.0);
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        let grown = far.scaled(2.0);
        assert!((grown.width() - 0.2).abs() < 1e-6 && (grown.x1 - 0.45).abs() < 1e-6);
        let clipped = a.scaled(3.0);
        assert_eq!((clipped.x1, clipped.y1), (0.0, 0.0));
        assert_eq!(a.foot_point(), pt(0.1, 0.2));
    }
}
