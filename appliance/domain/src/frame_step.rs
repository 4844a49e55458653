//! One frame step: the rules every path that analyses frames follows, the
//! live appliance (`run`), `analyze` and `redact` alike.
//!
//! 1. `examine` (on any thread, frames of a camera in any order; a
//!    `MaskedFrame` only, so the camera's privacy masks are blanked before
//!    anything here looks at it): the tamper statistics of the raw frame, in memory, when asked for; then
//!    the detectors, as `Look` says: the person model over a search area,
//!    or not at all (the `MotionGate` found the view unchanged, and its
//!    last findings stand), and the face model only on a frame that will
//!    be published, since no other frame's pixels can leave the process.
//!    Detection that fails, or finishes after the deadline, leaves the
//!    frame uncounted (and, if it was to be published, obscured whole).
//! 2. `CameraSteps::finish` (per camera): the frames back in the order they
//!    were taken (`Sequencer`); a frame to be published is redacted with
//!    the camera's hold, which runs forward in time only, and every other
//!    frame is dropped. What goes on is detections and statistics, no
//!    pixels, and a `RedactedFrame` only where a face scan of that very
//!    frame was made (the redactor takes it as proof).
//!
//! The detectors are behind `FrameDetector`, so the rules are tested here
//! without GStreamer or ONNX Runtime.

use crate::clock::UnixMs;
use crate::detection::{Detection, SearchArea, FULL_FRAME};
use crate::fixtures::Fixtures;
use crate::geometry::BBox;
use crate::person_sizes::PersonSizes;
use crate::pixels::frame::{Detections, Frame};
use crate::pixels::mask::MaskedFrame;
use crate::pixels::motion::MotionSample;
use crate::pixels::redaction::{RedactedFrame, Redactor, RegionHold};
use crate::pixels::stats::FrameStats;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What finds persons and faces in a frame.
pub trait FrameDetector {
    /// The persons within `persons` (none looked for when None) and, when
    /// `faces`, the frame's face scan; or why detection failed.
    fn find(
        &mut self,
        frame: &Frame,
        persons: Option<SearchArea>,
        faces: bool,
    ) -> Result<Detections, String>;
}

/// Where the person model looks in one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum PersonSearch {
    /// Over this area of the frame.
    Within(SearchArea),
    /// Not at all: these persons, found in an earlier frame of an unchanged
    /// view, stand for this frame's (the tracker coasts on them).
    Coast(Vec<Detection>),
    /// Not at all, and none are reported (redaction of files between
    /// person frames, where the hold carries the regions).
    Skip,
}

/// What to look for in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Look {
    pub persons: PersonSearch,
    /// Run the face model: needed, and only needed, on a frame that will be
    /// published (`StepRules::publish`).
    pub faces: bool,
}

/// How frames are examined.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepRules {
    /// Detection of a frame to publish finishing later than this obscures
    /// it whole and leaves it uncounted: a live view must not fall behind.
    /// A frame that is only counted has no deadline: its count is stamped
    /// with the time it was taken, however late it comes (an overloaded box
    /// analyses fewer frames; the queue keeps them fresh).
    pub deadline: Option<Duration>,
    /// Measure the tamper statistics of each frame.
    pub tamper: bool,
    /// The frame will be published (a snapshot, a redacted file): it is
    /// redacted, which takes its face scan, or obscured whole without one.
    /// Any other frame is dropped after examination.
    pub publish: bool,
}

/// A frame examined and not yet redacted: it still holds the raw frame, so
/// it goes nowhere but to its camera's `CameraSteps`.
pub struct Examined {
    frame: Frame,
    detections: Result<Detections, String>,
    tamper: Option<FrameStats>,
    publish: bool,
    /// The person model ran on this frame (it was not coasted or skipped).
    pub looked: bool,
}

impl Examined {
    /// The persons found (or coasted on); None when detection failed.
    pub fn persons(&self) -> Option<&[Detection]> {
        self.detections.as_ref().ok().map(|d| d.persons.as_slice())
    }
}

/// Measures and detects, by `look` and `rules`.
pub fn examine(
    frame: MaskedFrame,
    detector: &mut dyn FrameDetector,
    look: Look,
    rules: StepRules,
) -> Examined {
    let frame = frame.into_frame();
    // On the raw frame, in memory: only statistics go on.
    let tamper = rules.tamper.then(|| FrameStats::measure(&frame));
    let (area, coasted) = match look.persons {
        PersonSearch::Within(area) => (Some(area), None),
        PersonSearch::Coast(persons) => (None, Some(persons)),
        PersonSearch::Skip => (None, None),
    };
    let looked = area.is_some();
    let started = Instant::now();
    let detections = match detector.find(&frame, area, look.faces) {
        Ok(found) => match rules.deadline.filter(|_| rules.publish) {
            Some(deadline) if started.elapsed() > deadline => {
                tracing::warn!(
                    camera = %frame.camera(),
                    deadline_ms = deadline.as_millis() as u64,
                    "detection fell behind its deadline; frame not counted"
                );
                Err(format!(
                    "detection took longer than its deadline of {} ms",
                    deadline.as_millis()
                ))
            }
            _ => Ok(match coasted {
                Some(persons) => Detections { persons, ..found },
                None => found,
            }),
        },
        Err(e) => {
            tracing::error!(camera = %frame.camera(), error = %e, "detection failed; frame not counted");
            Err(e)
        }
    };
    Examined {
        frame,
        detections,
        tamper,
        publish: rules.publish,
        looked,
    }
}

/// A frame through the whole step.
pub struct Stepped {
    /// The frame redacted, when it was to be published; None otherwise (its
    /// pixels are gone).
    pub redacted: Option<RedactedFrame>,
    /// When the frame was taken.
    pub at: UnixMs,
    /// What was found, or why the frame is not counted.
    pub detections: Result<Detections, String>,
    pub tamper: Option<FrameStats>,
    /// The person model ran on this frame.
    pub looked: bool,
}

/// When the person model must look again at a camera's view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateRules {
    /// Look at least this often, however still the view: a person standing
    /// still is re-detected within this time, and a change too small for
    /// the gate is seen within it.
    pub refresh_ms: i64,
    /// Look when at least this many samples of the motion grid (160x90)
    /// inside the search area changed since the model last looked.
    pub min_changed: usize,
}

impl Default for GateRules {
    fn default() -> Self {
        GateRules {
            refresh_ms: 2000,
            min_changed: 4,
        }
    }
}

/// One camera's memory of what the person model last saw: the view then
/// (a coarse luma grid, in memory only) and the persons it found.
#[derive(Default)]
pub struct MotionGate {
    /// The grid of the last frame the model looked at, and its time.
    reference: Option<(MotionSample, UnixMs)>,
    /// The grid of the look before that one.
    previous: Option<MotionSample>,
    persons: Vec<Detection>,
    persons_at: Option<UnixMs>,
}

impl MotionGate {
    /// Whether the person model must look at `frame` (inside `region`), or
    /// the view is unchanged since it last looked and those findings stand.
    /// Looking makes this frame the new reference at once, so frames that
    /// other workers examine meanwhile compare against it.
    pub fn decide(
        &mut self,
        frame: &MaskedFrame,
        region: BBox,
        rules: GateRules,
    ) -> PersonSearchNeed {
        let frame = frame.frame();
        let sample = MotionSample::take(frame);
        let at = frame.timestamp_ms();
        let need = match &self.reference {
            None => PersonSearchNeed::Look,
            Some((reference, then)) => {
                if at < *then || sample.changed_since(reference, region) >= rules.min_changed {
                    PersonSearchNeed::Look
                } else if at - then >= rules.refresh_ms {
                    PersonSearchNeed::Refresh
                } else {
                    PersonSearchNeed::Coast(self.persons.clone())
                }
            }
        };
        if !matches!(need, PersonSearchNeed::Coast(_)) {
            self.previous = self.reference.replace((sample, at)).map(|(s, _)| s);
        }
        need
    }

    /// How many samples inside `region` changed between the last two
    /// looks; None before the second.
    fn changed_between_looks(&self, region: BBox) -> Option<usize> {
        let (now, _) = self.reference.as_ref()?;
        Some(now.changed_since(self.previous.as_ref()?, region))
    }

    /// Records what the model found in the frame taken at `at`.
    pub fn found(&mut self, at: UnixMs, persons: &[Detection]) {
        if self.persons_at.is_none_or(|then| at >= then) {
            self.persons = persons.to_vec();
            self.persons_at = Some(at);
        }
    }

    /// The model failed on a frame: look at the next one, whatever it shows.
    pub fn failed(&mut self) {
        self.reference = None;
    }
}

/// How a camera's person search is planned, frame by frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanRules {
    /// None: the person model looks at every frame.
    pub gate: Option<GateRules>,
    /// Learn where people are small and look there again in finer tiles
    /// (unless the camera's detail is configured).
    pub learn_detail: bool,
    /// Persons at or above this score teach the sizes.
    pub person_threshold: f32,
    /// With the gate, a person-like box unchanged this long is a fixture
    /// and stops counting (`fixtures`); None: never.
    pub fixture_after_ms: Option<i64>,
}

/// One camera's planning state: its motion gate, the person sizes seen and
/// the fixtures learned (with the gate only: they are learned from it).
#[derive(Default)]
pub struct CameraPlan {
    gate: MotionGate,
    sizes: PersonSizes,
    fixtures: Fixtures,
}

impl CameraPlan {
    /// Where the person model looks in `frame`: over `area` (its detail
    /// learned where not configured), or not at all when the gate finds
    /// the view unchanged. A frame to publish is always looked at, over
    /// the whole frame, so that every person's head is redacted.
    pub fn plan(
        &mut self,
        frame: &MaskedFrame,
        mut area: SearchArea,
        publish: bool,
        rules: PlanRules,
    ) -> PersonSearch {
        let mut moved = true;
        if publish {
            area.region = FULL_FRAME;
        } else if let Some(gate) = rules.gate {
            match self.gate.decide(frame, area.region, gate) {
                PersonSearchNeed::Coast(persons) => return PersonSearch::Coast(persons),
                PersonSearchNeed::Refresh => moved = false,
                PersonSearchNeed::Look => {}
            }
            let gate = &self.gate;
            self.fixtures
                .compared(frame.frame().timestamp_ms(), |place| {
                    gate.changed_between_looks(place).is_none_or(|n| n > 0)
                });
        }
        // A snapshot frame takes the configured detail only: it must finish
        // within the deadline, and faces plus every person's head are its
        // redaction; the learned detail serves counting. A refresh of an
        // unchanged view is no survey: whoever is there was found when they
        // moved in, and an empty view would otherwise be surveyed forever.
        if rules.learn_detail && area.detail.is_none() && !publish {
            let size = (frame.frame().width(), frame.frame().height());
            area.detail = self.sizes.detail(area.region, size, moved);
        }
        PersonSearch::Within(area)
    }

    /// Learns from an examined frame taken at `at`: what the model found
    /// (or that it failed) and the sizes of the persons.
    pub fn learn(&mut self, at: UnixMs, examined: &Examined, rules: PlanRules) {
        if !examined.looked {
            return;
        }
        match examined.persons() {
            Some(persons) => {
                self.gate.found(at, persons);
                self.sizes.observe(persons, rules.person_threshold);
                let before = self.fixtures.count(at);
                // Learned from the gate's grids: without the gate, none.
                let after_ms = rules.fixture_after_ms.filter(|_| rules.gate.is_some());
                self.fixtures.found(at, persons, after_ms);
                let now = self.fixtures.count(at);
                if now != before {
                    tracing::info!(
                        camera = %examined.frame.camera(),
                        fixtures = now,
                        "fixtures changed: person-like boxes that have not changed for detection.fixture_after_secs are not counted"
                    );
                }
            }
            None => self.gate.failed(),
        }
    }

    /// The persons of the frame taken at `at` that count: all but those at
    /// a fixture (`fixtures`).
    pub fn counted(&self, at: UnixMs, persons: Vec<Detection>) -> Vec<Detection> {
        self.fixtures.counted(at, persons)
    }

    /// How many fixtures the camera has at `at`.
    pub fn fixtures(&self, at: UnixMs) -> usize {
        self.fixtures.count(at)
    }
}

/// The gate's answer for one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum PersonSearchNeed {
    /// Something moved (or the view is new): look.
    Look,
    /// Nothing moved, but the last look is `refresh_ms` old: look again,
    /// so that a still person is never lost.
    Refresh,
    /// Nothing moved: the persons last found stand.
    Coast(Vec<Detection>),
}

/// One camera's frames back in the order they were taken, and its hold.
#[derive(Default)]
pub struct CameraSteps {
    order: Sequencer<Examined>,
    hold: RegionHold,
}

impl CameraSteps {
    /// Takes the camera's frame `number` (numbered as taken, from 0) and
    /// finishes every frame whose turn has come, in order: redacted if it
    /// is to be published, dropped otherwise.
    pub fn finish(&mut self, number: u64, examined: Examined, redactor: &Redactor) -> Vec<Stepped> {
        self.order
            .push(number, examined)
            .into_iter()
            .map(
                |Examined {
                     frame,
                     detections,
                     tamper,
                     publish,
                     looked,
                 }| {
                    let at = frame.timestamp_ms();
                    let redacted = publish.then(|| match &detections {
                        Ok(Detections {
                            persons,
                            faces: Some(scan),
                        }) => redactor.redact(frame, scan, persons, &mut self.hold),
                        // No face scan, or detection failed: fail closed.
                        _ => redactor.obscure_whole(frame),
                    });
                    Stepped {
                        redacted,
                        at,
                        detections,
                        tamper,
                        looked,
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
    use crate::geometry::{Point, Polygon};
    use crate::pixels::mask::{PrivacyMask, MASK_FILL};
    use crate::pixels::redaction::RedactionPolicy;
    use crate::pixels::testing::{pixels_of, GivenFaces};

    /// A detector that finds one person and one face, after `delay`, or
    /// fails; it counts its face searches.
    #[derive(Default)]
    struct Scripted {
        delay: Duration,
        fail: bool,
        face_searches: usize,
    }

    impl FrameDetector for Scripted {
        fn find(
            &mut self,
            frame: &Frame,
            persons: Option<SearchArea>,
            faces: bool,
        ) -> Result<Detections, String> {
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
            self.face_searches += usize::from(faces);
            Ok(Detections {
                persons: persons.map(|_| vec![person]).unwrap_or_default(),
                faces: faces.then(|| frame.scan_faces(&mut GivenFaces::found(vec![face]))),
            })
        }
    }

    fn frame(at: UnixMs) -> MaskedFrame {
        PrivacyMask::default()
            .apply(Frame::new("cam".into(), 8, 8, vec![200; 8 * 8 * 3], at).unwrap())
    }

    fn redactor() -> Redactor {
        Redactor::new(RedactionPolicy::default())
    }

    /// Persons over the whole frame, and faces.
    fn look() -> Look {
        Look {
            persons: PersonSearch::Within(SearchArea::FULL),
            faces: true,
        }
    }

    const PUBLISH: StepRules = StepRules {
        deadline: None,
        tamper: false,
        publish: true,
    };

    #[test]
    fn faces_are_searched_only_in_frames_to_publish_and_others_are_dropped() {
        let redactor = redactor();
        let mut steps = CameraSteps::default();
        let mut detector = Scripted::default();
        let counting = Look {
            persons: PersonSearch::Within(SearchArea::FULL),
            faces: false,
        };
        let examined = examine(frame(0), &mut detector, counting, StepRules::default());
        let stepped = steps.finish(0, examined, &redactor).remove(0);
        assert_eq!(detector.face_searches, 0);
        assert!(
            stepped.redacted.is_none(),
            "an unpublished frame is dropped"
        );
        let found = stepped.detections.unwrap();
        assert_eq!(found.persons.len(), 1);
        assert!(found.faces.is_none());
        // A frame to publish without a face scan is obscured whole.
        let unscanned = Look {
            persons: PersonSearch::Within(SearchArea::FULL),
            faces: false,
        };
        let examined = examine(frame(500), &mut detector, unscanned, PUBLISH);
        let stepped = steps.finish(1, examined, &redactor).remove(0);
        assert!(stepped.redacted.unwrap().stats().obscured_whole);
        // With its scan it is redacted.
        let examined = examine(frame(1000), &mut detector, look(), PUBLISH);
        let stepped = steps.finish(2, examined, &redactor).remove(0);
        assert_eq!(detector.face_searches, 1);
        assert_eq!(stepped.redacted.unwrap().stats().faces, 1);
    }

    /// A detector that keeps a copy of the pixels it was given and finds
    /// one face, across the mask's edge.
    #[derive(Default)]
    struct Recording {
        given: Vec<u8>,
    }

    impl FrameDetector for Recording {
        fn find(
            &mut self,
            frame: &Frame,
            _: Option<SearchArea>,
            faces: bool,
        ) -> Result<Detections, String> {
            self.given = pixels_of(frame);
            let face = Detection {
                bbox: BBox {
                    x1: 0.3,
                    y1: 0.0,
                    x2: 0.7,
                    y2: 0.25,
                },
                score: 0.9,
            };
            Ok(Detections {
                persons: Vec::new(),
                faces: faces.then(|| frame.scan_faces(&mut GivenFaces::found(vec![face]))),
            })
        }
    }

    #[test]
    fn masked_pixels_reach_neither_the_detectors_nor_a_snapshot() {
        // Every pixel of a 16x16 frame different from the fill; the left
        // 45 % masked: columns 0-7 (column 7 in part).
        let (w, h) = (16usize, 16usize);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i % 100) as u8).collect();
        let raw = Frame::new("cam".into(), w as u32, h as u32, rgb.clone(), 0).unwrap();
        let left = Polygon::new(
            [(0.0, 0.0), (0.45, 0.0), (0.45, 1.0), (0.0, 1.0)]
                .map(|(x, y)| Point { x, y })
                .to_vec(),
        );
        let mut detector = Recording::default();
        let examined = examine(
            PrivacyMask::new(vec![left]).apply(raw),
            &mut detector,
            look(),
            PUBLISH,
        );
        let stepped = CameraSteps::default()
            .finish(0, examined, &redactor())
            .remove(0);
        let published = stepped.redacted.expect("a frame to publish");
        assert_eq!(published.stats().faces, 1);
        let published = published.pixels().to_vec();
        let pixel = |pixels: &[u8], x: usize, y: usize| pixels[(y * w + x) * 3..][..3].to_vec();
        for y in 0..h {
            for x in 0..w {
                let original = rgb[(y * w + x) * 3..][..3].to_vec();
                let expected = if x < 8 {
                    vec![MASK_FILL; 3]
                } else {
                    original.clone()
                };
                assert_eq!(
                    pixel(&detector.given, x, y),
                    expected,
                    "the detector's input: pixel ({x}, {y})"
                );
                // The face, blurred across the mask's edge, spreads nothing into it.
                if x < 8 || y >= 8 {
                    assert_eq!(
                        pixel(&published, x, y),
                        expected,
                        "the snapshot: pixel ({x}, {y})"
                    );
                }
            }
        }
        let redacted = (8..w).any(|x| pixel(&published, x, 1) != rgb[(w + x) * 3..][..3]);
        assert!(redacted, "the face beside the mask was not redacted");
    }

    #[test]
    fn a_coasted_frame_reports_the_persons_last_found_without_running_the_model() {
        let mut detector = Scripted::default();
        let earlier = Detection {
            bbox: BBox {
                x1: 0.2,
                y1: 0.2,
                x2: 0.3,
                y2: 0.6,
            },
            score: 0.7,
        };
        let coast = Look {
            persons: PersonSearch::Coast(vec![earlier]),
            faces: false,
        };
        let examined = examine(frame(0), &mut detector, coast, StepRules::default());
        assert!(!examined.looked);
        let stepped = CameraSteps::default()
            .finish(0, examined, &redactor())
            .remove(0);
        assert_eq!(stepped.detections.unwrap().persons, [earlier]);
    }

    /// A 64x36 grey frame with a dark block at column `x` (None: none).
    fn view(at: UnixMs, x: Option<usize>) -> MaskedFrame {
        let (w, h) = (64usize, 36usize);
        let mut rgb = vec![120u8; w * h * 3];
        if let Some(x) = x {
            for y in 10..30 {
                rgb[(y * w + x) * 3..][..12].fill(10);
            }
        }
        PrivacyMask::default().apply(Frame::new("cam".into(), w as u32, h as u32, rgb, at).unwrap())
    }

    #[test]
    fn the_gate_looks_on_motion_and_at_least_every_refresh() {
        let rules = GateRules {
            refresh_ms: 2000,
            min_changed: 4,
        };
        let all = SearchArea::FULL.region;
        let mut gate = MotionGate::default();
        assert_eq!(
            gate.decide(&view(0, Some(10)), all, rules),
            PersonSearchNeed::Look
        );
        let person = Detection {
            bbox: BBox {
                x1: 0.15,
                y1: 0.27,
                x2: 0.22,
                y2: 0.84,
            },
            score: 0.8,
        };
        gate.found(0, &[person]);
        // A still view coasts on what was found...
        assert_eq!(
            gate.decide(&view(500, Some(10)), all, rules),
            PersonSearchNeed::Coast(vec![person])
        );
        // ...until someone moves...
        assert_eq!(
            gate.decide(&view(1000, Some(30)), all, rules),
            PersonSearchNeed::Look
        );
        // ...or, when nothing moves, the refresh comes due.
        assert!(matches!(
            gate.decide(&view(2500, Some(30)), all, rules),
            PersonSearchNeed::Coast(_)
        ));
        assert_eq!(
            gate.decide(&view(3000, Some(30)), all, rules),
            PersonSearchNeed::Refresh
        );
        // Motion outside the search area does not count.
        let left = BBox { x2: 0.3, ..all };
        assert!(matches!(
            gate.decide(&view(3500, Some(50)), left, rules),
            PersonSearchNeed::Coast(_)
        ));
        // After a failure the next frame is looked at.
        gate.failed();
        assert_eq!(
            gate.decide(&view(3600, Some(30)), all, rules),
            PersonSearchNeed::Look
        );
    }

    /// Finds the same persons in every frame it is shown.
    struct Sees(Vec<Detection>);

    impl FrameDetector for Sees {
        fn find(
            &mut self,
            _: &Frame,
            _: Option<SearchArea>,
            _: bool,
        ) -> Result<Detections, String> {
            Ok(Detections {
                persons: self.0.clone(),
                faces: None,
            })
        }
    }

    #[test]
    fn a_person_like_box_that_never_changes_stops_counting_after_ten_minutes_and_counts_when_it_moves(
    ) {
        // The dark block of `view` at column 10, as the model would box it.
        let sign = Detection {
            bbox: BBox {
                x1: 10.0 / 64.0,
                y1: 10.0 / 36.0,
                x2: 14.0 / 64.0,
                y2: 30.0 / 36.0,
            },
            score: 0.6,
        };
        let mut detector = Sees(vec![sign]);
        let mut plan = CameraPlan::default();
        let rules = PlanRules {
            gate: Some(GateRules::default()),
            learn_detail: false,
            person_threshold: 0.5,
            fixture_after_ms: Some(10 * 60_000),
        };
        let mut step = |plan: &mut CameraPlan, at: UnixMs, x: usize| {
            let frame = view(at, Some(x));
            let persons = plan.plan(&frame, SearchArea::FULL, false, rules);
            let look = Look {
                persons,
                faces: false,
            };
            let examined = examine(frame, &mut detector, look, StepRules::default());
            plan.learn(at, &examined, rules);
            plan.counted(at, examined.persons().unwrap().to_vec())
        };
        let minute = 60_000;
        // Half a second apart: the gate coasts, and refreshes every 2 s.
        for at in (0..10 * minute).step_by(500) {
            assert_eq!(step(&mut plan, at, 10), [sign], "counted at {at} ms");
        }
        assert!(step(&mut plan, 10 * minute, 10).is_empty());
        assert!(step(&mut plan, 10 * minute + 2000, 10).is_empty());
        // It moves a pixel: it counts again at once.
        assert_eq!(step(&mut plan, 10 * minute + 2500, 11), [sign]);
        assert_eq!(step(&mut plan, 10 * minute + 4500, 11), [sign]);

        // Without the gate nothing is learned: everything counts.
        let mut ungated = CameraPlan::default();
        let rules = PlanRules {
            gate: None,
            ..rules
        };
        for at in (0..=12 * minute).step_by(2000) {
            let frame = view(at, Some(10));
            let look = Look {
                persons: ungated.plan(&frame, SearchArea::FULL, false, rules),
                faces: false,
            };
            let examined = examine(frame, &mut detector, look, StepRules::default());
            ungated.learn(at, &examined, rules);
            assert_eq!(ungated.counted(at, vec![sign]), [sign]);
        }
    }

    #[test]
    fn a_found_frame_is_redacted_and_counted_with_its_statistics() {
        let mut detector = Scripted::default();
        let rules = StepRules {
            deadline: Some(Duration::from_secs(5)),
            tamper: true,
            publish: true,
        };
        let examined = examine(frame(40), &mut detector, look(), rules);
        let mut steps = CameraSteps::default();
        let [stepped] = <[Stepped; 1]>::try_from(steps.finish(0, examined, &redactor()))
            .ok()
            .unwrap();
        assert_eq!(stepped.at, 40);
        let found = stepped.detections.unwrap();
        assert_eq!(found.persons.len(), 1);
        assert_eq!(found.faces.unwrap().faces().unwrap().len(), 1);
        assert!(stepped.tamper.is_some());
        let redacted = stepped.redacted.unwrap();
        assert!(!redacted.stats().obscured_whole);
        assert_eq!(redacted.stats().faces, 1);
    }

    #[test]
    fn a_failed_or_late_detection_obscures_the_frame_whole_and_is_not_counted() {
        let redactor = redactor();
        let mut steps = CameraSteps::default();
        let mut failing = Scripted {
            fail: true,
            ..Scripted::default()
        };
        let examined = examine(frame(0), &mut failing, look(), PUBLISH);
        let stepped = steps.finish(0, examined, &redactor).remove(0);
        assert_eq!(stepped.detections.unwrap_err(), "model failed");
        assert!(stepped.redacted.unwrap().stats().obscured_whole);

        let mut slow = Scripted {
            delay: Duration::from_millis(30),
            ..Scripted::default()
        };
        let rules = StepRules {
            deadline: Some(Duration::from_millis(5)),
            ..PUBLISH
        };
        let examined = examine(frame(500), &mut slow, look(), rules);
        let stepped = steps.finish(1, examined, &redactor).remove(0);
        assert!(stepped.detections.unwrap_err().contains("deadline"));
        assert!(stepped.redacted.unwrap().stats().obscured_whole);
        // A frame only counted is counted however late.
        let counting = StepRules {
            publish: false,
            ..rules
        };
        let examined = examine(frame(1000), &mut slow, look(), counting);
        let stepped = steps.finish(2, examined, &redactor).remove(0);
        assert_eq!(stepped.detections.unwrap().persons.len(), 1);
        assert!(stepped.tamper.is_none(), "no statistics unless asked for");
    }

    #[test]
    fn frames_finished_out_of_order_are_redacted_in_the_order_taken() {
        let redactor = redactor();
        let mut steps = CameraSteps::default();
        let mut detector = Scripted::default();
        let mut examined: Vec<_> = (0..3)
            .map(|n| examine(frame(n * 500), &mut detector, look(), PUBLISH))
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
