//! Things in a camera's view that the person model takes for people: a
//! sign, a mannequin, a poster, a coat on a stand. Counted, one of them
//! keeps a zone occupied all night and raises after-hours presence every
//! evening.
//!
//! A fixture is learned (a configured `exclusions` polygon leaves a known
//! one out from the start): a box the model finds at the
//! same place (`SAME_PLACE` overlap with the box first found there) while
//! no sample of the motion grid inside it changes for `after_ms`
//! (`detection.fixture_after_secs`, 10 minutes by default) is not counted.
//! Motion inside it ends that at once: it counts again, and must stay
//! still that long again to be a fixture again. So a person standing or
//! sitting still is counted as long as anything inside their box changes
//! once in that time (a turn of the head, a hand: the edges of a person
//! move more than the grid's threshold), and anyone who moves where a
//! fixture was learned counts at once. What it gets wrong: a person who
//! makes no change the grid sees (under about 20 grey levels at every
//! sample, 4 px apart at 640 px) for that long, asleep in a chair, is no
//! longer counted until they move (a care home may want it longer, or
//! off). It needs the motion gate: with the gate off, nothing is learned
//! and everything counts.

use crate::clock::UnixMs;
use crate::detection::Detection;
use crate::geometry::BBox;

/// A box found again overlaps the place's first box at least this much.
const SAME_PLACE: f32 = 0.8;
/// A place where the model has found nothing for this long is forgotten:
/// a box seen once (a passer-by) soon, a fixture after a longer gap (its
/// box may go unfound for a while, at dusk).
const FORGET_PLACE_MS: i64 = 60 * 1000;
const FORGET_FIXTURE_MS: i64 = 10 * 60 * 1000;
/// Places watched per camera; a crowd makes many, each soon forgotten.
const MAX_PLACES: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Place {
    /// The box first found here (not moved with later ones: a person who
    /// creeps along is at a new place before long).
    bbox: BBox,
    /// Nothing inside the box has changed since then.
    still_since: UnixMs,
    /// The model last found a box here.
    seen_at: UnixMs,
}

impl Place {
    fn is_fixture(&self, at: UnixMs, after_ms: Option<i64>) -> bool {
        after_ms.is_some_and(|after| at - self.still_since >= after)
    }
}

/// One camera's places where the model found a person-like box.
#[derive(Debug, Default)]
pub struct Fixtures {
    places: Vec<Place>,
    /// Still this long, a place is a fixture; None: none is (off).
    after_ms: Option<i64>,
}

impl Fixtures {
    /// The view was compared with the one the model looked at before, at
    /// `at`: a place where `changed` says something moved is not still.
    pub fn compared(&mut self, at: UnixMs, changed: impl Fn(BBox) -> bool) {
        for place in &mut self.places {
            if changed(place.bbox) {
                place.still_since = place.still_since.max(at);
            }
        }
    }

    /// The model looked at the frame taken at `at` and found `persons`,
    /// weak ones included: the tracker continues a track on a weak box, so
    /// a sign found confidently by day keeps a track all night on one. A
    /// place still for `after_ms` is a fixture (None: fixtures are off, and
    /// every place is forgotten).
    pub fn found(&mut self, at: UnixMs, persons: &[Detection], after_ms: Option<i64>) {
        self.after_ms = after_ms;
        if after_ms.is_none() {
            self.places.clear();
            return;
        }
        for person in persons {
            match self.place_of(&person.bbox) {
                Some(i) => self.places[i].seen_at = self.places[i].seen_at.max(at),
                None => self.places.push(Place {
                    bbox: person.bbox,
                    still_since: at,
                    seen_at: at,
                }),
            }
        }
        self.places.retain(|p| {
            let forget = if p.is_fixture(at, after_ms) {
                FORGET_FIXTURE_MS
            } else {
                FORGET_PLACE_MS
            };
            at - p.seen_at < forget
        });
        if self.places.len() > MAX_PLACES {
            // Keep the fixtures and those stillest for longest.
            self.places.sort_by_key(|p| p.still_since);
            self.places.truncate(MAX_PLACES);
        }
    }

    /// The persons of the frame taken at `at` that count: all but those at
    /// a fixture.
    pub fn counted(&self, at: UnixMs, persons: Vec<Detection>) -> Vec<Detection> {
        persons
            .into_iter()
            .filter(|person| {
                self.place_of(&person.bbox)
                    .is_none_or(|i| !self.places[i].is_fixture(at, self.after_ms))
            })
            .collect()
    }

    /// How many fixtures the camera has at `at`.
    pub fn count(&self, at: UnixMs) -> usize {
        self.places
            .iter()
            .filter(|p| p.is_fixture(at, self.after_ms))
            .count()
    }

    fn place_of(&self, bbox: &BBox) -> Option<usize> {
        self.places
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.bbox.iou(bbox)))
            .filter(|&(_, overlap)| overlap >= SAME_PLACE)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60 * 1000;
    const TEN_MINUTES: i64 = 10 * MINUTE;

    fn person(x: f32) -> Detection {
        Detection {
            bbox: BBox {
                x1: x,
                y1: 0.2,
                x2: x + 0.03,
                y2: 0.26,
            },
            score: 0.6,
        }
    }

    /// Looks every 2 s from `from` to `to` (ms), the model finding `persons`
    /// each time and `moving` saying whether the view changed in a box.
    fn watch(
        fixtures: &mut Fixtures,
        from: i64,
        to: i64,
        persons: &[Detection],
        moving: impl Fn(BBox) -> bool,
    ) {
        for at in (from..=to).step_by(2000) {
            fixtures.compared(at, &moving);
            fixtures.found(at, persons, Some(TEN_MINUTES));
        }
    }

    #[test]
    fn a_box_still_for_ten_minutes_is_a_fixture_and_counts_again_once_something_moves_in_it() {
        let mut fixtures = Fixtures::default();
        let sign = person(0.04);
        watch(&mut fixtures, 0, 9 * MINUTE, &[sign], |_| false);
        assert_eq!(
            fixtures.counted(9 * MINUTE, vec![sign]),
            [sign],
            "still counted at 9 min"
        );
        watch(&mut fixtures, 9 * MINUTE, 10 * MINUTE, &[sign], |_| false);
        assert!(fixtures.counted(10 * MINUTE, vec![sign]).is_empty());
        assert_eq!(fixtures.count(10 * MINUTE), 1);
        // The model's box jitters by a pixel: still the same place.
        let jittered = Detection {
            bbox: BBox {
                x1: sign.bbox.x1 + 0.001,
                ..sign.bbox
            },
            ..sign
        };
        assert!(fixtures.counted(10 * MINUTE, vec![jittered]).is_empty());
        // Someone elsewhere counts.
        let walker = person(0.5);
        assert_eq!(fixtures.counted(10 * MINUTE, vec![sign, walker]), [walker]);

        // Something moves inside the box: it counts again at once, and is
        // a fixture again only after another ten still minutes.
        let moved_at = 11 * MINUTE;
        fixtures.compared(moved_at, |b| b.iou(&sign.bbox) > 0.5);
        fixtures.found(moved_at, &[sign], Some(TEN_MINUTES));
        assert_eq!(fixtures.counted(moved_at, vec![sign]), [sign]);
        watch(
            &mut fixtures,
            moved_at,
            moved_at + 9 * MINUTE,
            &[sign],
            |_| false,
        );
        assert_eq!(fixtures.counted(moved_at + 9 * MINUTE, vec![sign]), [sign]);
        watch(
            &mut fixtures,
            moved_at + 9 * MINUTE,
            moved_at + 10 * MINUTE,
            &[sign],
            |_| false,
        );
        assert!(fixtures
            .counted(moved_at + 10 * MINUTE, vec![sign])
            .is_empty());
    }

    #[test]
    fn a_person_who_moves_now_and_then_is_never_a_fixture() {
        let mut fixtures = Fixtures::default();
        let reader = person(0.3);
        for minute in 0..30 {
            let at = minute * MINUTE;
            // A page turned every 5 minutes, still in between.
            let turned = minute % 5 == 0;
            watch(&mut fixtures, at, at + MINUTE - 2000, &[reader], |_| turned);
            assert_eq!(
                fixtures.counted(at + MINUTE, vec![reader]),
                [reader],
                "minute {minute}"
            );
        }
        assert_eq!(fixtures.count(30 * MINUTE), 0);
    }

    #[test]
    fn a_place_the_model_stops_finding_is_forgotten() {
        let mut fixtures = Fixtures::default();
        let passer = person(0.6);
        watch(&mut fixtures, 0, 0, &[passer], |_| false);
        // Nobody for a minute, however still the view.
        watch(&mut fixtures, 2000, MINUTE, &[], |_| false);
        assert!(fixtures.places.is_empty());

        // A fixture survives a gap shorter than ten minutes (at dusk the
        // model may not find it for a while), then is forgotten (the sign
        // was taken away).
        let sign = person(0.04);
        watch(&mut fixtures, 0, 10 * MINUTE, &[sign], |_| false);
        watch(&mut fixtures, 10 * MINUTE, 19 * MINUTE, &[], |_| false);
        assert!(fixtures.counted(19 * MINUTE, vec![sign]).is_empty());
        watch(&mut fixtures, 19 * MINUTE, 21 * MINUTE, &[], |_| false);
        assert_eq!(fixtures.counted(21 * MINUTE, vec![sign]), [sign]);
    }

    #[test]
    fn a_crowd_keeps_the_places_bounded_and_the_fixture() {
        let mut fixtures = Fixtures::default();
        let sign = person(0.9);
        watch(&mut fixtures, 0, 10 * MINUTE, &[sign], |_| false);
        let crowd: Vec<Detection> = (0..200).map(|i| person(i as f32 * 0.004)).collect();
        fixtures.found(10 * MINUTE + 2000, &crowd, Some(TEN_MINUTES));
        assert!(fixtures.places.len() <= MAX_PLACES);
        assert_eq!(fixtures.count(10 * MINUTE + 2000), 1);
    }
}
