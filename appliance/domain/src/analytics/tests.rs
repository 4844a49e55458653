//! The counting engine end to end on synthetic detections: tracks, zones,
//! lines, dwell and spaces, as the appliance and `analyze` drive it.

use super::*;
use crate::config::{Side, SystemSecrets};
use crate::geometry::{BBox, Point, Polygon};
use std::path::Path;

/// Camera `cam` (5 fps): zone `left` is x < 0.5, zone `room` is y < 0.5,
/// line `door` runs along y = 0.5 with "in" up the screen.
const CONFIG: &str = r#"
[appliance]
timezone = "Europe/Berlin"
[cameras.cam]
url = "testsrc:ball"
analysis_fps = 5
[cameras.cam.zones.left]
polygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
capacity = 2
small_zone_justification = "a two-seat booth: its count is for its own occupancy light"
[cameras.cam.zones.room]
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 0.5], [0.0, 0.5]]
[cameras.cam.lines.door]
points = [[0.1, 0.5], [0.9, 0.5]]
in = "left"
[spaces.room]
entrances = ["cam.door"]
reset_at = "03:00"
[spaces.both]
zones = ["cam.room"]
entrances = ["cam.door"]
[spaces.sum]
zones = ["cam.left", "cam.room"]
[analytics]
smoothing_secs = 2
correction_secs = 10
"#;

/// 2025-11-24T16:00:00Z, 17:00 in Berlin.
const T0: UnixMs = 1_764_000_000_000;
const STEP: UnixMs = 200;

fn parsed(extra: &str) -> Config {
    Config::parse(&format!("{CONFIG}{extra}"), Path::new("/"), &SystemSecrets)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn engine(extra: &str) -> (Analytics, OccupancyBoard) {
    let config = parsed(extra);
    let board = OccupancyBoard::new(&config);
    (Analytics::new(&config, board.clone()), board)
}

/// A person standing with feet at (x, y), detected with `score`.
pub(super) fn person_scored(x: f32, y: f32, score: f32) -> Detection {
    Detection {
        bbox: BBox {
            x1: x - 0.03,
            y1: y - 0.2,
            x2: x + 0.03,
            y2: y,
        },
        score,
    }
}

fn person_at(x: f32, y: f32) -> Detection {
    person_scored(x, y, 0.9)
}

/// Feeds frames from `from` at 5 fps: `people(i)` gives frame i's feet.
fn run(
    analytics: &mut Analytics,
    from: UnixMs,
    frames: i64,
    people: impl Fn(i64) -> Vec<(f32, f32)>,
) -> UnixMs {
    for i in 0..frames {
        let persons: Vec<_> = people(i)
            .into_iter()
            .map(|(x, y)| person_at(x, y))
            .collect();
        analytics.observe(&"cam".into(), from + i * STEP, &persons);
    }
    from + frames * STEP
}

fn zone_now(board: &OccupancyBoard, key: &str) -> Option<u32> {
    board.snapshot().zones[key].occupancy
}

fn space_now(board: &OccupancyBoard, name: &str) -> Option<u32> {
    board.snapshot().spaces[name].occupancy
}

#[test]
fn zones_count_tracked_feet_not_boxes() {
    let (mut a, board) = engine("");
    // The third person's box reaches into `left`, but the feet are right of it.
    run(&mut a, T0, 5, |_| vec![(0.1, 0.9), (0.3, 0.7), (0.52, 0.8)]);
    assert_eq!(zone_now(&board, "cam.left"), Some(2));
    assert_eq!(zone_now(&board, "cam.room"), Some(0));
    assert_eq!(space_now(&board, "sum"), Some(2));
}

#[test]
fn persons_standing_in_an_exclusion_are_not_counted_and_others_are() {
    // A poster in the left zone (x 0.05-0.25, y 0.6-0.95) "detected" as a person.
    let (mut a, board) = engine(
        "[cameras.cam.exclusions.poster]\npolygon = [[0.05, 0.6], [0.25, 0.6], [0.25, 0.95], [0.05, 0.95]]\n",
    );
    run(&mut a, T0, 10, |_| vec![(0.15, 0.9), (0.35, 0.7)]);
    assert_eq!(zone_now(&board, "cam.left"), Some(1));
    // Without the exclusion both count.
    let (mut a, board) = engine("");
    run(&mut a, T0, 10, |_| vec![(0.15, 0.9), (0.35, 0.7)]);
    assert_eq!(zone_now(&board, "cam.left"), Some(2));
}

/// An audit log that holds every correction.
fn recorded(_: super::adjust::Adjusted) -> Result<(), super::adjust::AdjustError> {
    Ok(())
}

#[test]
fn an_entrance_count_is_corrected_by_hand_within_its_bounds() {
    use super::adjust::{AdjustError, Adjusted, Adjustment};
    let (mut a, board) = engine("");
    // Two walk in through the door.
    run(&mut a, T0, 20, |i| {
        let y = 0.9 - 0.04 * i as f32;
        vec![(0.3, y), (0.6, y)]
    });
    assert_eq!(space_now(&board, "room"), Some(2));
    let at = T0 + 10_000;
    assert_eq!(
        a.adjust_space("room", Adjustment::Set(5), at, recorded),
        Ok(Adjusted {
            before: 2,
            after: 5
        })
    );
    assert_eq!(
        space_now(&board, "room"),
        Some(5),
        "the board shows it at once"
    );
    // Five counted means at least five came in today: the drift rule's
    // entries follow a count corrected up, not one corrected down. `both`
    // has no daily reset, so no day's entries.
    let entries = |a: &Analytics, name: &str| {
        a.signals()
            .spaces
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.entrances)
            .map(|e| e.entries)
    };
    assert_eq!(entries(&a, "room"), Some(5));
    assert_eq!(entries(&a, "both"), Some(0));
    assert_eq!(
        a.adjust_space("room", Adjustment::Add(-2), at, recorded),
        Ok(Adjusted {
            before: 5,
            after: 3
        })
    );
    assert_eq!(entries(&a, "room"), Some(5));
    assert!(matches!(
        a.adjust_space("room", Adjustment::Add(-4), at, recorded),
        Err(AdjustError::BelowZero {
            count: 3,
            by: -4,
            ..
        })
    ));
    assert_eq!(
        a.adjust_space("sum", Adjustment::Set(1), at, recorded),
        Err(AdjustError::NotCountedAtEntrances("sum".into()))
    );
    assert_eq!(
        a.adjust_space("attic", Adjustment::Set(1), at, recorded),
        Err(AdjustError::UnknownSpace("attic".into()))
    );
    // A correction the audit log cannot hold is not made: the recorder
    // is asked with the planned change, and its error is the answer.
    let mut asked = None;
    assert_eq!(
        a.adjust_space("room", Adjustment::Set(9), at, |planned| {
            asked = Some(planned);
            Err(AdjustError::NotRecorded("disk full".into()))
        }),
        Err(AdjustError::NotRecorded("disk full".into()))
    );
    assert_eq!(
        asked,
        Some(Adjusted {
            before: 3,
            after: 9
        })
    );
    assert_eq!(space_now(&board, "room"), Some(3), "nothing changed");
    // Counting goes on from the corrected count.
    let t = T0 + 10_200;
    run(&mut a, t, 20, |i| vec![(0.3, 0.1 + 0.04 * i as f32)]);
    assert_eq!(space_now(&board, "room"), Some(2), "one walked out");
}

#[test]
fn a_person_standing_still_stays_counted_through_missed_frames() {
    let (mut a, board) = engine("");
    // Detected on 2 frames of 3 for a minute.
    run(&mut a, T0, 300, |i| {
        if i % 3 == 2 {
            vec![]
        } else {
            vec![(0.2, 0.3)]
        }
    });
    assert_eq!(zone_now(&board, "cam.left"), Some(1));
    let deltas = a.drain();
    let left: Vec<_> = deltas
        .occupancy
        .iter()
        .filter(|d| {
            d.scope
                == Scope::Zone {
                    camera: "cam".into(),
                    zone: "left".into(),
                }
        })
        .collect();
    // The median over 2 s carries every missed frame: each sample counts one.
    let samples: u32 = left.iter().map(|d| d.samples).sum();
    let sum: u64 = left.iter().map(|d| d.occupancy_sum).sum();
    assert_eq!(samples, 300);
    assert_eq!(sum, 300);
}

#[test]
fn crossings_are_counted_once_with_direction_into_minute_buckets() {
    let (mut a, board) = engine("");
    // Walks up through the door (in), stands on it shuffling, goes back down (out).
    let up = |i: i64| vec![(0.5, 0.9 - 0.04 * i as f32)];
    let mut t = run(&mut a, T0, 15, up);
    t = run(&mut a, t, 20, |i| {
        vec![(0.5, if i % 2 == 0 { 0.49 } else { 0.51 })]
    });
    t = run(&mut a, t, 5, |_| vec![(0.5, 0.35)]);
    assert_eq!(space_now(&board, "room"), Some(1));
    run(&mut a, t, 15, |i| vec![(0.5, 0.35 + 0.04 * i as f32)]);
    assert_eq!(a.totals().lines["cam.door"], (1, 1));
    assert_eq!(space_now(&board, "room"), Some(0));
    let flows = a.drain().flows;
    let entries: u32 = flows.iter().map(|f| f.entries).sum();
    let exits: u32 = flows.iter().map(|f| f.exits).sum();
    assert_eq!((entries, exits), (1, 1));
    assert!(flows
        .iter()
        .all(|f| f.bucket_start % BUCKET_MS == 0 && f.line == "door"));
}

#[test]
fn an_entrance_count_never_goes_below_zero() {
    let (mut a, board) = engine("");
    // Two leave a room the appliance thought empty, then one enters.
    let t = run(&mut a, T0, 15, |i| {
        vec![(0.3, 0.2 + 0.05 * i as f32), (0.7, 0.2 + 0.05 * i as f32)]
    });
    assert_eq!(a.totals().lines["cam.door"], (0, 2));
    assert_eq!(space_now(&board, "room"), Some(0));
    run(&mut a, t + 10_000, 15, |i| {
        vec![(0.5, 0.9 - 0.05 * i as f32)]
    });
    assert_eq!(space_now(&board, "room"), Some(1));
}

#[test]
fn the_entrance_count_resets_at_the_local_closing_time() {
    let (mut a, board) = engine("");
    // 17:00 Berlin: one enters and stays.
    run(&mut a, T0, 15, |i| vec![(0.5, 0.9 - 0.05 * i as f32)]);
    assert_eq!(space_now(&board, "room"), Some(1));
    // 02:59 Berlin the next day: still counted; 03:00: reset.
    let before = T0 + (9 * 60 + 59) * 60_000;
    a.tick(before);
    assert_eq!(space_now(&board, "room"), Some(1));
    a.tick(before + 60_000);
    assert_eq!(space_now(&board, "room"), Some(0));
}

#[test]
fn zones_correct_a_drifting_entrance_count() {
    let (mut a, board) = engine("");
    // One enters the room but the camera loses them at once: the entrance
    // count says 1, the room zone says 0.
    let t = run(&mut a, T0, 14, |i| vec![(0.5, 0.9 - 0.05 * i as f32)]);
    assert_eq!(space_now(&board, "both"), Some(1));
    let t = run(&mut a, t, 40, |_| vec![]);
    // 8 s later: not yet (correction after 10 s of steady disagreement).
    assert_eq!(space_now(&board, "both"), Some(1));
    run(&mut a, t, 25, |_| vec![]);
    assert_eq!(space_now(&board, "both"), Some(0));
}

#[test]
fn dwell_survives_a_track_break_and_counts_each_visit() {
    let (mut a, _) = engine("");
    // 30 s in the room, unseen for 2 s in the middle, then gone; later a
    // second visit of 10 s.
    let t = run(&mut a, T0, 75, |_| vec![(0.3, 0.3)]);
    let t = run(&mut a, t, 10, |_| vec![]);
    let t = run(&mut a, t, 75, |_| vec![(0.31, 0.3)]);
    let t = run(&mut a, t, 60, |_| vec![]);
    let t = run(&mut a, t, 50, |_| vec![(0.7, 0.2)]);
    run(&mut a, t, 60, |_| vec![]);
    let room = &a.totals().dwell["cam.room"];
    assert_eq!(room.visits(), 2);
    let longest = room.quantile(1.0).unwrap();
    assert!((longest / 32.0 - 1.0).abs() < 0.06, "{longest}");
    let shortest = room.quantile(0.0).unwrap();
    assert!((shortest / 10.0 - 1.0).abs() < 0.06, "{shortest}");
    let stored: u64 = a
        .drain()
        .dwell
        .iter()
        .filter(|d| d.zone == "room")
        .map(|d| d.histogram.visits())
        .sum();
    assert_eq!(stored, 2);
}

#[test]
fn an_open_visit_is_closed_at_the_end_of_a_recording() {
    let (mut a, _) = engine("");
    run(&mut a, T0, 50, |_| vec![(0.3, 0.3)]);
    assert!(a.totals().dwell.is_empty());
    a.finish();
    let visit = a.totals().dwell["cam.room"].quantile(0.5).unwrap();
    assert!((visit / 10.0 - 1.0).abs() < 0.06, "{visit}");
}

#[test]
fn a_track_reborn_while_the_old_one_coasts_keeps_the_visit() {
    let (mut a, _) = engine("");
    // 20 s in the room; after 10 s only the lower part of the person is
    // detected (someone stands in front): the box is too different for the
    // tracker, so a new track starts while the old one still coasts.
    let t = run(&mut a, T0, 50, |_| vec![(0.3, 0.3)]);
    for i in 0..50 {
        let legs = Detection {
            bbox: BBox {
                x1: 0.27,
                y1: 0.22,
                x2: 0.33,
                y2: 0.3,
            },
            score: 0.9,
        };
        a.observe(&"cam".into(), t + i * STEP, &[legs]);
    }
    run(&mut a, t + 50 * STEP, 60, |_| vec![]);
    let room = &a.totals().dwell["cam.room"];
    assert_eq!(room.visits(), 1);
    let visit = room.quantile(0.5).unwrap();
    assert!((visit / 20.0 - 1.0).abs() < 0.06, "{visit}");
}

#[test]
fn a_frame_that_arrives_late_is_left_out() {
    let (mut a, _) = engine("");
    // Up through the door at 5 fps; frame 8 (just beyond the line) arrives
    // after frame 9, as it can with parallel workers.
    let feet = |i: i64| vec![person_at(0.5, 0.9 - 0.05 * i as f32)];
    for i in (0..8).chain([9, 8]).chain(10..15) {
        a.observe(&"cam".into(), T0 + i * STEP, &feet(i));
    }
    assert_eq!(a.totals().lines["cam.door"], (1, 0));
    // The late frame was left out: 14 samples, not 15.
    assert_eq!(a.totals().occupancy["cam.room"].0, 14);
}

#[test]
fn an_entrance_count_survives_a_restart_but_not_a_reset() {
    let (mut a, _) = engine("");
    // Two enter (17:00 Berlin).
    run(&mut a, T0, 15, |i| {
        vec![(0.3, 0.9 - 0.05 * i as f32), (0.7, 0.9 - 0.05 * i as f32)]
    });
    let saved = a.drain().entrance_counts;
    let room: Vec<_> = saved.iter().filter(|c| c.space == "room").collect();
    assert_eq!((room[0].count, room[0].entries), (2, 2));
    // What the drift rule sees of the room: its count and its day's entries.
    let entrances = |a: &Analytics| {
        a.signals()
            .spaces
            .iter()
            .find(|s| s.name == "room")
            .and_then(|s| s.entrances)
            .map(|e| (e.count, e.entries))
    };
    // Restarted ten minutes later: the building is not empty, and its day
    // has seen two entries.
    let (mut restarted, board) = engine("");
    restarted.restore(&saved, T0 + 600_000);
    assert_eq!(space_now(&board, "room"), Some(2));
    assert_eq!(entrances(&restarted), Some((2, 2)));
    // Only the space counted at its doors alone is judged before a frame:
    // `both` waits for its zone to correct its door count.
    let judged: Vec<String> = restarted
        .signals()
        .spaces
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(judged, ["room"]);
    // Entries saved for a space without a daily reset (by a version that
    // counted them) are not taken up: it has no day's entries.
    let (mut upgraded, _) = engine("");
    let old = EntranceCount {
        space: "both".into(),
        count: 2,
        entries: 40,
        at: T0,
    };
    upgraded.restore(&[old], T0 + 600_000);
    run(&mut upgraded, T0 + 600_000, 1, |_| Vec::new());
    let saved = upgraded.drain().entrance_counts;
    let both: Vec<_> = saved.iter().filter(|c| c.space == "both").collect();
    assert_eq!(both.len(), 1);
    assert_eq!((both[0].count, both[0].entries), (2, 0));
    // Restarted after the 03:00 reset: it is, and the day starts afresh.
    let (mut next_day, board) = engine("");
    next_day.restore(&saved, T0 + 11 * 3_600_000);
    assert_eq!(space_now(&board, "room"), Some(0));
    assert_eq!(entrances(&next_day), Some((0, 0)));
}

/// A third zone, `right` (x > 0.5), for the reconfigure tests.
const RIGHT: &str = r#"
[cameras.cam.zones.right]
polygon = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]
"#;

fn pt(x: f32, y: f32) -> Point {
    Point { x, y }
}

/// RIGHT's config edited: `left` only gets a new capacity, `room` moves
/// to the upper right quarter, `right` goes and line `aisle` (x = 0.5 in
/// the upper half) comes.
fn edited() -> Config {
    let mut config = parsed(RIGHT);
    let cam = &mut config.cameras[0];
    cam.zones.retain(|z| z.name != "right");
    for zone in &mut cam.zones {
        match zone.name.as_str() {
            "left" => zone.capacity = Some(4),
            "room" => {
                zone.polygon =
                    Polygon::new(vec![pt(0.5, 0.0), pt(1.0, 0.0), pt(1.0, 0.5), pt(0.5, 0.5)])
            }
            _ => {}
        }
    }
    cam.lines.push(LineConfig {
        name: "aisle".into(),
        start: pt(0.5, 0.05),
        end: pt(0.5, 0.45),
        in_side: Side::Left,
        one_way: None,
    });
    config
}

fn zone_signal(a: &Analytics, key: &str) -> Option<ZoneSignal> {
    a.signals().zones.into_iter().find(|z| z.key == key)
}

#[test]
fn counts_survive_a_reconfigure() {
    let (mut a, board) = engine(RIGHT);
    // Two walk in through the door and stay in the room, one each side.
    let t = run(&mut a, T0, 30, |i| {
        let y = 0.9 - 0.05 * i.min(14) as f32;
        vec![(0.3, y), (0.7, y)]
    });
    assert_eq!(a.totals().lines["cam.door"], (2, 0));
    assert_eq!(space_now(&board, "room"), Some(2));
    assert_eq!(zone_now(&board, "cam.room"), Some(2));
    let left_visit = zone_signal(&a, "cam.left").unwrap().longest_visit_ms;
    assert!(left_visit > 0);

    a.reconfigure(&edited(), t);
    // Kept: `left`'s occupancy and visit (a capacity does not shape a
    // zone), the door's totals and the room's entrance count.
    let left = zone_signal(&a, "cam.left").unwrap();
    assert_eq!((left.occupancy, left.longest_visit_ms), (1, left_visit));
    assert_eq!(zone_now(&board, "cam.left"), Some(1));
    assert_eq!(board.snapshot().zones["cam.left"].capacity, Some(4));
    assert!(!a.totals().dwell.contains_key("cam.left"));
    // Moved and removed zones: their visits ended as dwell; the removed
    // one is gone from the signals and the board.
    assert_eq!(a.totals().dwell["cam.room"].visits(), 2);
    assert_eq!(a.totals().dwell["cam.right"].visits(), 1);
    assert_eq!(zone_signal(&a, "cam.room").unwrap().longest_visit_ms, 0);
    assert_eq!(zone_signal(&a, "cam.right"), None);
    let zones: Vec<_> = board.snapshot().zones.into_keys().collect();
    assert_eq!(zones, ["cam.left", "cam.room"]);
    let lines: Vec<_> = a
        .signals()
        .lines
        .into_iter()
        .map(|l| (l.key, l.entries, l.exits))
        .collect();
    assert_eq!(
        lines,
        [("cam.aisle".into(), 0, 0), ("cam.door".into(), 2, 0)]
    );
    assert_eq!(space_now(&board, "room"), Some(2));

    // The next frame: the moved room holds the person on the right only.
    let t = run(&mut a, t, 1, |_| vec![(0.3, 0.2), (0.7, 0.2)]);
    assert_eq!(zone_now(&board, "cam.room"), Some(1));
    assert_eq!(zone_now(&board, "cam.left"), Some(1));
    // The person on the left crosses the new line on their surviving track.
    run(&mut a, t, 20, |i| {
        vec![(0.3 + 0.04 * i.min(8) as f32, 0.2), (0.7, 0.2)]
    });
    assert_eq!(a.totals().lines["cam.aisle"], (1, 0));
    assert_eq!(a.totals().lines["cam.door"], (2, 0));
    assert_eq!(zone_now(&board, "cam.room"), Some(2));
    assert_eq!(zone_now(&board, "cam.left"), Some(0));
    assert_eq!(space_now(&board, "room"), Some(2));

    // What the removed zone counted before the edit is still stored.
    let deltas = a.drain();
    let right = Scope::Zone {
        camera: "cam".into(),
        zone: "right".into(),
    };
    let samples: u32 = deltas
        .occupancy
        .iter()
        .filter(|d| d.scope == right)
        .map(|d| d.samples)
        .sum();
    assert_eq!(samples, 30);
    assert!(deltas.dwell.iter().any(|d| d.zone == "right"));
    let room: Vec<_> = deltas
        .entrance_counts
        .iter()
        .filter(|c| c.space == "room")
        .map(|c| c.count)
        .collect();
    assert_eq!(room, [2]);
}

#[test]
fn the_board_keeps_the_values_of_kept_keys_and_takes_new_capacities() {
    let board = OccupancyBoard::new(&parsed(RIGHT));
    board.record_zone("cam.left", 2, T0);
    board.record_zone("cam.right", 1, T0);
    board.record_space("sum", 3, T0);
    let mut config = edited();
    let mut gate = config.cameras[0].zones[0].clone();
    gate.name = "gate".into();
    gate.capacity = Some(6);
    config.cameras[0].zones.push(gate);
    for space in &mut config.spaces {
        if space.name == "sum" {
            space.capacity = Some(10);
        }
    }
    board.reconfigure(&config);
    let view = board.snapshot();
    let zones: Vec<_> = view.zones.keys().map(String::as_str).collect();
    assert_eq!(zones, ["cam.gate", "cam.left", "cam.room"]);
    let left = &view.zones["cam.left"];
    assert_eq!(
        (left.occupancy, left.updated_at, left.capacity),
        (Some(2), Some(T0), Some(4))
    );
    let gate = &view.zones["cam.gate"];
    assert_eq!((gate.occupancy, gate.capacity), (None, Some(6)));
    assert_eq!(view.zones["cam.room"].occupancy, None);
    let sum = &view.spaces["sum"];
    assert_eq!(
        (sum.occupancy, sum.updated_at, sum.capacity, sum.method),
        (Some(3), Some(T0), Some(10), Some("zones"))
    );
    assert_eq!(view.spaces.len(), 3);
}

#[test]
fn a_clock_stepped_back_keeps_counting_in_the_minutes_it_shows() {
    let (mut a, board) = engine("");
    // A person stands in `left` for 30 s; then the wall clock steps back 2 h.
    let t = run(&mut a, T0, 150, |_| vec![(0.2, 0.3)]);
    let before = a.drain();
    let back = t - 2 * 3_600_000;
    run(&mut a, back, 150, |_| vec![(0.2, 0.3)]);
    let after = a.drain();
    // Every frame after the step is counted, in the minutes the clock shows.
    let left = |d: &Deltas| -> Vec<(UnixMs, u32)> {
        d.occupancy
            .iter()
            .filter(|o| matches!(&o.scope, Scope::Zone { zone, .. } if zone == "left"))
            .map(|o| (o.bucket_start, o.samples))
            .collect()
    };
    let samples: u32 = left(&after).iter().map(|(_, s)| s).sum();
    assert_eq!(samples, 150);
    assert!(left(&after)
        .iter()
        .all(|(start, _)| *start >= bucket_start(back) && *start < back + 30_000));
    assert_eq!(zone_now(&board, "cam.left"), Some(1));
    // The visit before the step ends there: no dwell spans the two hours.
    let mut dwell = DwellHistogram::default();
    for d in before.dwell.iter().chain(&after.dwell) {
        if d.zone == "left" {
            dwell.merge(&d.histogram);
        }
    }
    assert_eq!(dwell.visits(), 1);
    assert!(dwell.bins().all(|(bin, _)| bin <= dwell::bin_of(31.0)));
}
