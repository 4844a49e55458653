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
//! fixture was learned counts at once.
//!
//! A change that someone passing by explains does not end the stillness:
//! a sign beside a walkway is crossed in front of every minute or two, and
//! would otherwise never be learned (vtest's sign post, passed at 16 s of
//! every 79.5 s loop, was counted for good). A passer-by is a box the
//! model found, at this look or the one before, that overlaps the place
//! (grown by a quarter of its size on each side: the grid samples around
//! a box too) and stands at no settled place: none found at every look
//! for `PASSING_MS` or more overlaps it by `SETTLED_OVERLAP` (the place
//! judged aside). People walking are at a new place at nearly every look;
//! a neighbour sitting or standing beside the place, or someone who
//! stopped in front of it, is settled within seconds and excuses nothing.
//!
//! What it gets wrong: a person who makes no change the grid sees (under
//! about 20 grey levels at every sample, 4 px apart at 640 px) for that
//! long, asleep in a chair, is no longer counted until they move (a care
//! home may want it longer, or off); and a still person's own movement is
//! not seen on the looks where someone walks in front of them. It needs
//! the motion gate: with the gate off, nothing is learned and everything
//! counts.

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
/// A box found at its place for under this long belongs to someone passing
/// by (at 2 fps a walker is at a new place at nearly every look).
const PASSING_MS: i64 = 5 * 1000;
/// A box overlapping a place found there for `PASSING_MS` or more at least
/// this much is someone who stays there (a neighbour, a person who stopped,
/// a box that jitters), not someone passing by.
const SETTLED_OVERLAP: f32 = 0.5;

#[derive(Debug, Clone, Copy)]
struct Place {
    /// The box first found here (not moved with later ones: a person who
    /// creeps along is at a new place before long).
    bbox: BBox,
    /// Nothing inside the box has changed since then.
    still_since: UnixMs,
    /// The model last found a box here.
    seen_at: UnixMs,
    /// The model has found a box here at every look since (gaps under
    /// `PASSING_MS`): how long someone has stayed.
    staying_since: UnixMs,
    /// Something inside the box changed at this look; whether it ends the
    /// stillness waits for what the model finds there (`Fixtures::found`).
    changed_at: Option<UnixMs>,
    /// Someone passing by overlapped the box at the latest look.
    passed: bool,
}

impl Place {
    fn end_stillness_at(&mut self, changed_at: Option<UnixMs>) {
        if let Some(at) = changed_at {
            self.still_since = self.still_since.max(at);
        }
    }

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
    /// `at`: a place where `changed` says something moved is not still,
    /// unless what the model finds in this frame shows someone passing by
    /// (`found`).
    pub fn compared(&mut self, at: UnixMs, changed: impl Fn(BBox) -> bool) {
        for place in &mut self.places {
            // A change whose look found nothing (the model failed) ends it.
            let unresolved = place.changed_at.take();
            place.end_stillness_at(unresolved);
            if changed(place.bbox) {
                place.changed_at = Some(at);
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
        let mut own_places = Vec::with_capacity(persons.len());
        for person in persons {
            own_places.push(match self.place_of(&person.bbox) {
                Some(i) => {
                    let place = &mut self.places[i];
                    if at - place.seen_at >= PASSING_MS {
                        // Back after a while: someone passing again.
                        place.staying_since = at;
                    }
                    place.seen_at = place.seen_at.max(at);
                    i
                }
                None => {
                    self.places.push(Place {
                        bbox: person.bbox,
                        still_since: at,
                        seen_at: at,
                        staying_since: at,
                        changed_at: None,
                        passed: false,
                    });
                    self.places.len() - 1
                }
            });
        }
        // Each person's reach (the box grown to the motion grid's reach),
        // own place, and the settled places they stand at.
        let people: Vec<(BBox, usize, Vec<usize>)> = persons
            .iter()
            .zip(own_places)
            .map(|(person, own)| {
                let settled = (0..self.places.len())
                    .filter(|&k| {
                        let place = &self.places[k];
                        at - place.staying_since >= PASSING_MS
                            && place.bbox.iou(&person.bbox) >= SETTLED_OVERLAP
                    })
                    .collect();
                (person.bbox.scaled(1.5), own, settled)
            })
            .collect();
        for (i, place) in self.places.iter_mut().enumerate() {
            // Someone passing by: not at this place, settled at no other.
            let passed = people.iter().any(|(reach, own, settled)| {
                *own != i && settled.iter().all(|&k| k == i) && reach.overlaps(&place.bbox)
            });
            let changed_at = place.changed_at.take();
            if !(passed || place.passed) {
                place.end_stillness_at(changed_at);
            }
            place.passed = passed;
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

    fn boxed(x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
        Detection {
            bbox: BBox { x1, y1, x2, y2 },
            score: 0.7,
        }
    }

    /// One look a second from `from` to `to` (ms): the sign is found unless
    /// `walker(at)` hides it, and the view changes wherever the walker is
    /// now or was at the look before (what the motion grid sees).
    fn watch_with_walker(
        fixtures: &mut Fixtures,
        sign: Detection,
        from: i64,
        to: i64,
        walker: impl Fn(i64) -> Option<Detection>,
    ) {
        for at in (from..=to).step_by(1000) {
            let (now, before) = (walker(at), walker(at - 1000));
            fixtures.compared(at, |place| {
                [now, before]
                    .iter()
                    .flatten()
                    .any(|w| w.bbox.overlaps(&place))
            });
            let mut found = Vec::new();
            if now.is_none_or(|w| w.bbox.iou(&sign.bbox) < 0.5) {
                found.push(sign);
            }
            found.extend(now);
            fixtures.found(at, &found, Some(TEN_MINUTES));
        }
    }

    #[test]
    fn a_sign_someone_walks_past_every_minute_is_still_learned() {
        let mut fixtures = Fixtures::default();
        let sign = person(0.04);
        // Each minute someone walks across it, left to right, in 8 s: a
        // box a little taller than the sign's, 0.015 further at each look.
        let walker = |at: i64| {
            let t = at % MINUTE;
            (t <= 8000).then(|| {
                let x = -0.02 + 0.015 * (t / 1000) as f32;
                boxed(x, 0.17, x + 0.03, 0.26)
            })
        };
        watch_with_walker(&mut fixtures, sign, 0, 9 * MINUTE, walker);
        assert_eq!(fixtures.counted(9 * MINUTE, vec![sign]), [sign]);
        watch_with_walker(&mut fixtures, sign, 9 * MINUTE + 1000, 10 * MINUTE, walker);
        assert!(
            fixtures.counted(10 * MINUTE, vec![sign]).is_empty(),
            "the changes were the walker's"
        );
        // The walker counts, in front of it too.
        let passing = walker(10 * MINUTE + 4000).unwrap();
        assert_eq!(fixtures.counted(10 * MINUTE, vec![passing]), [passing]);
    }

    #[test]
    fn someone_who_stops_in_front_of_the_sign_ends_its_stillness() {
        let mut fixtures = Fixtures::default();
        let sign = person(0.04);
        // At 3 minutes someone stops in front of it for a minute, reading
        // it, moving all the while: after a few seconds they are settled.
        let reader = |at: i64| {
            (3 * MINUTE..4 * MINUTE)
                .contains(&at)
                .then(|| boxed(0.045, 0.17, 0.075, 0.26))
        };
        watch_with_walker(&mut fixtures, sign, 0, 13 * MINUTE, reader);
        assert_eq!(
            fixtures.counted(13 * MINUTE, vec![sign]),
            [sign],
            "still since the reader left, under ten minutes ago"
        );
        watch_with_walker(
            &mut fixtures,
            sign,
            13 * MINUTE + 1000,
            14 * MINUTE + 1000,
            reader,
        );
        assert!(fixtures.counted(14 * MINUTE + 1000, vec![sign]).is_empty());
    }

    #[test]
    fn a_neighbour_excuses_nothing_even_when_their_box_jitters() {
        let mut fixtures = Fixtures::default();
        let reader = person(0.3);
        // Beside the reader, overlapping them, someone whose box changes
        // width from look to look (IoU 0.7 with their first box: a new place
        // each time, each overlapping the first by more than half).
        let neighbour = |at: i64| {
            let wide = (at / 1000) % 2 == 1;
            boxed(0.32, 0.2, if wide { 0.36 } else { 0.348 }, 0.26)
        };
        for at in (0..=30 * MINUTE).step_by(1000) {
            // The reader turns a page every 5 minutes, the neighbour moves
            // all the time.
            let turned = at % (5 * MINUTE) == 0;
            let n = neighbour(at);
            fixtures.compared(at, |place| {
                (turned && place.iou(&reader.bbox) > 0.8) || place.overlaps(&n.bbox)
            });
            fixtures.found(at, &[reader, n], Some(TEN_MINUTES));
            assert_eq!(fixtures.counted(at, vec![reader]), [reader], "at {at} ms");
        }
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
