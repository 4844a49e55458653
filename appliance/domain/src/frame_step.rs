//! One frame step: the rules every path that analyses frames follows, the
//! live appliance (`run`), `analyze` and `redact` alike.
//!
//! 1. `examine` (on any thread, frames of a camera in any order): the
//!    tamper statistics of the raw frame, in memory, when asked for; then
//!    the detectors. Detection that fails, or finishes after the deadline,
//!    leaves the frame uncounted and to be obscured whole.
//! 2. `CameraSteps::finish` (per camera): the frames back in the order they
//!    were taken (`Sequencer`), each redacted with the camera's hold, which
//!    runs forward in time only. From here on only the redacted frame
//!    exists; what goes on is its detections and statistics, no pixels.
//!
//! The detectors are behind `FrameDetector`, so the rules are tested here
//! without GStreamer or ONNX Runtime.

use crate::clock::UnixMs;
use crate::pixels::frame::{Detections, Frame};
use crate::pixels::redaction::{RedactedFrame, Redactor, RegionHold};
use crate::pixels::stats::FrameStats;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What finds persons and faces in a frame.
pub trait FrameDetector {
    /// The frame's persons (none looked for unless `persons`) and its face
    /// scan, or why detection failed.
    fn find(&mut self, frame: &Frame, persons: bool) -> Result<Detections, String>;
}

/// How frames are examined.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepRules {
    /// Detection finishing later than this obscures the frame whole and
    /// leaves it uncounted: a live view must not fall behind.
    pub deadline: Option<Duration>,
    /// Measure the tamper statistics of each frame.
    pub tamper: bool,
}

/// A frame examined and not yet redacted: it still holds the raw frame, so
/// it goes nowhere but to its camera's `CameraSteps`.
pub struct Examined {
    frame: Frame,
    detections: Result<Detections, String>,
    tamper: Option<FrameStats>,
}

/// Measures and detects, by `rules`. The person model runs only when
/// `persons` is set.
pub fn examine(
    frame: Frame,
    detector: &mut dyn FrameDetector,
    persons: bool,
    rules: StepRules,
) -> Examined {
    // On the raw frame, in memory: only statistics go on.
    let tamper = rules.tamper.then(|| FrameStats::measure(&frame));
    let started = Instant::now();
    let detections = match detector.find(&frame, persons) {
        Ok(found) => match rules.deadline {
            Some(deadline) if started.elapsed() > deadline => {
                tracing::warn!(
                    camera = %frame.camera(),
                    deadline_ms = deadline.as_millis() as u64,
                    "detection fell behind its deadline; frame obscured whole"
                );
                Err(format!(
                    "detection took longer than its deadline of {} ms",
                    deadline.as_millis()
                ))
            }
            _ => Ok(found),
        },
        Err(e) => {
            tracing::error!(camera = %frame.camera(), error = %e, "detection failed; frame obscured whole and not counted");
            Err(e)
        }
    };
    Examined {
        frame,
        detections,
        tamper,
    }
}

/// A frame through the whole step.
pub struct Stepped {
    pub redacted: RedactedFrame,
    /// When the frame was taken.
    pub at: UnixMs,
    /// What was found, or why the frame was obscured whole and is not
    /// counted.
    pub detections: Result<Detections, String>,
    pub tamper: Option<FrameStats>,
}

/// One camera's frames back in the order they were taken, and its hold.
#[derive(Default)]
pub struct CameraSteps {
    order: Sequencer<Examined>,
    hold: RegionHold,
}

impl CameraSteps {
    /// Takes the camera's frame `number` (numbered as taken, from 0) and
    /// redacts every frame whose turn has come, in order.
    pub fn finish(&mut self, number: u64, examined: Examined, redactor: &Redactor) -> Vec<Stepped> {
        self.order
            .push(number, examined)
            .into_iter()
            .map(
                |Examined {
                     frame,
                     detections,
                     tamper,
                 }| {
                    let at = frame.timestamp_ms();
                    let redacted = match &detections {
                        Ok(found) => {
                            redactor.redact(frame, &found.faces, &found.persons, &mut self.hold)
                        }
                        Err(_) => redactor.obscure_whole(frame),
                    };
                    Stepped {
                        redacted,
                        at,
                        detections,
                        tamper,
                    }
                },
            )
            .collect()
    }
}

/// Frames that may wait for a missing number before it is skipped: a worker
/// that died or stalled must not hold its camera up (at 2 fps, 2 s, the
/// default detection deadline).
const MAX_WAITING: usize = 4;

/// Puts numbered items back in order. An item whose number was skipped is
/// handed on as soon as it comes (a frame is then obscured whole by its
/// hold, which has redacted later frames, never run backwards).
struct Sequencer<T> {
    next: u64,
    waiting: BTreeMap<u64, T>,
}

impl<T> Default for Sequencer<T> {
    fn default() -> Self {
        Sequencer {
            next: 0,
            waiting: BTreeMap::new(),
        }
    }
}

impl<T> Sequencer<T> {
    /// Takes item `number` and returns those whose turn has come, in order.
    fn push(&mut self, number: u64, item: T) -> Vec<T> {
        if number < self.next {
            return vec![item];
        }
        self.waiting.insert(number, item);
        let mut ready = Vec::new();
        loop {
            if let Some(item) = self.waiting.remove(&self.next) {
                ready.push(item);
                self.next += 1;
            } else if self.waiting.len() > MAX_WAITING {
                // Skip the missing numbers up to the first that waits.
                if let Some((&first, _)) = self.waiting.first_key_value() {
                    self.next = first;
                }
            } else {
                return ready;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::Detection;
    use crate::geometry::BBox;
    use crate::pixels::redaction::RedactionPolicy;
    use crate::pixels::testing::GivenFaces;

    /// A detector that finds one person and one face, after `delay`, or fails.
    struct Scripted {
        delay: Duration,
        fail: bool,
    }

    impl FrameDetector for Scripted {
        fn find(&mut self, frame: &Frame, persons: bool) -> Result<Detections, String> {
            std::thread::sleep(self.delay);
            if self.fail {
                return Err("model failed".into());
            }
            let face = Detection {
                bbox: BBox {
                    x1: 0.25,
                    y1: 0.25,
                    x2: 0.5,
                    y2: 0.5,
                },
                score: 0.9,
            };
            let person = Detection {
                bbox: BBox {
                    x1: 0.1,
                    y1: 0.1,
                    x2: 0.9,
                    y2: 0.9,
                },
                score: 0.8,
            };
            Ok(Detections {
                persons: if persons { vec![person] } else { Vec::new() },
                faces: frame.scan_faces(&mut GivenFaces::found(vec![face])),
            })
        }
    }

    fn frame(at: UnixMs) -> Frame {
        Frame::new("cam".into(), 8, 8, vec![200; 8 * 8 * 3], at).unwrap()
    }

    fn redactor() -> Redactor {
        Redactor::new(RedactionPolicy::default())
    }

    #[test]
    fn a_found_frame_is_redacted_and_counted_with_its_statistics() {
        let mut detector = Scripted {
            delay: Duration::ZERO,
            fail: false,
        };
        let rules = StepRules {
            deadline: Some(Duration::from_secs(5)),
            tamper: true,
        };
        let examined = examine(frame(40), &mut detector, true, rules);
        let mut steps = CameraSteps::default();
        let [stepped] = <[Stepped; 1]>::try_from(steps.finish(0, examined, &redactor()))
            .ok()
            .unwrap();
        assert_eq!(stepped.at, 40);
        let found = stepped.detections.unwrap();
        assert_eq!(found.persons.len(), 1);
        assert_eq!(found.faces.faces().unwrap().len(), 1);
        assert!(stepped.tamper.is_some());
        assert!(!stepped.redacted.stats().obscured_whole);
        assert_eq!(stepped.redacted.stats().faces, 1);
    }

    #[test]
    fn a_failed_or_late_detection_obscures_the_frame_whole_and_is_not_counted() {
        let redactor = redactor();
        let mut steps = CameraSteps::default();
        let mut failing = Scripted {
            delay: Duration::ZERO,
            fail: true,
        };
        let examined = examine(frame(0), &mut failing, true, StepRules::default());
        let stepped = steps.finish(0, examined, &redactor).remove(0);
        assert_eq!(stepped.detections.unwrap_err(), "model failed");
        assert!(stepped.redacted.stats().obscured_whole);

        let mut slow = Scripted {
            delay: Duration::from_millis(30),
            fail: false,
        };
        let rules = StepRules {
            deadline: Some(Duration::from_millis(5)),
            tamper: false,
        };
        let examined = examine(frame(500), &mut slow, true, rules);
        let stepped = steps.finish(1, examined, &redactor).remove(0);
        assert!(stepped.detections.unwrap_err().contains("deadline"));
        assert!(stepped.redacted.stats().obscured_whole);
        assert!(stepped.tamper.is_none(), "no statistics unless asked for");
    }

    #[test]
    fn frames_finished_out_of_order_are_redacted_in_the_order_taken() {
        let redactor = redactor();
        let mut steps = CameraSteps::default();
        let mut detector = Scripted {
            delay: Duration::ZERO,
            fail: false,
        };
        let mut examined: Vec<_> = (0..3)
            .map(|n| examine(frame(n * 500), &mut detector, true, StepRules::default()))
            .collect();
        let third = examined.pop().unwrap();
        let second = examined.pop().unwrap();
        let first = examined.pop().unwrap();
        assert!(steps.finish(2, third, &redactor).is_empty());
        assert!(steps.finish(1, second, &redactor).is_empty());
        let times: Vec<_> = steps
            .finish(0, first, &redactor)
            .iter()
            .map(|s| s.at)
            .collect();
        assert_eq!(times, [0, 500, 1000]);
    }

    #[test]
    fn items_come_out_in_the_order_they_were_numbered() {
        let mut order = Sequencer::default();
        assert!(order.push(1, 'b').is_empty());
        assert!(order.push(2, 'c').is_empty());
        assert_eq!(order.push(0, 'a'), ['a', 'b', 'c']);
        assert_eq!(order.push(3, 'd'), ['d']);
        assert!(order.push(5, 'f').is_empty());
        assert_eq!(order.push(4, 'e'), ['e', 'f']);
    }

    #[test]
    fn a_number_that_does_not_come_back_is_skipped_once_too_many_wait() {
        let mut order = Sequencer::default();
        assert_eq!(order.push(0, 0), [0]);
        // 1 is held by a worker that died; 2 to 5 wait for it.
        for n in 2..2 + MAX_WAITING as u64 {
            assert!(order.push(n, n).is_empty(), "{n}");
        }
        // One more is too many: 1 is skipped, the rest come out in order.
        let last = 2 + MAX_WAITING as u64;
        assert_eq!(order.push(last, last), (2..=last).collect::<Vec<_>>());
        // 1, late after all, is handed on at once (its hold obscures it);
        // the order goes on after the last.
        assert_eq!(order.push(1, 1), [1]);
        assert_eq!(order.push(last + 1, last + 1), [last + 1]);
    }

    #[test]
    fn several_missing_numbers_are_skipped_together() {
        let mut order = Sequencer::default();
        // 0 and 1 never come; 2 to 6 arrive out of order.
        for n in [3, 2, 5, 4] {
            assert!(order.push(n, n).is_empty(), "{n}");
        }
        assert_eq!(order.push(6, 6), [2, 3, 4, 5, 6]);
    }
}
