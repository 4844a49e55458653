//! The live counts as BACnet objects (`[bacnet]`): the same facilities-level
//! view as the live MQTT feed and Modbus ([`super::live::LiveSnapshot`]),
//! read-only. Counts are Analog Values (present value a REAL, which holds
//! every whole count up to 2^24 exactly; COV increment 1), the type every
//! building management system reads. Instances, in name order (i from 0):
//!
//! | object | instance | present value |
//! |---|---|---|
//! | Analog Value | 1000 + i | space i: occupancy (out of service until counted) |
//! | Analog Value | 2000 + i | space i: capacity (0 when none) |
//! | Binary Value | 1000 + i | space i: above capacity (active) or not |
//! | Analog Value | 3000 + i | zone i: occupancy (small zones are not served) |
//! | Analog Value | 4000 + i | line i: entries today |
//! | Analog Value | 5000 + i | line i: exits today |
//!
//! Units are `no-units` (95): BACnet has no unit for people. Up to
//! [`MAX_OBJECTS`] of each kind.

use super::live::LiveSnapshot;

/// Objects of one kind served (instances up to the next kind's base).
pub const MAX_OBJECTS: usize = 1000;

/// The object types headcount serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    AnalogValue,
    BinaryValue,
}

/// One object as a BACnet client reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub kind: ObjectKind,
    pub instance: u32,
    pub name: String,
    pub value: PointValue,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PointValue {
    /// A count; None before it was first counted (served as 0, out of
    /// service).
    Count(Option<u32>),
    Binary(bool),
}

/// Every object of this snapshot, in instance order per kind.
pub fn points(snapshot: &LiveSnapshot) -> Vec<Point> {
    let mut points = Vec::new();
    let count = |instance: usize, name: String, value: Option<u32>| Point {
        kind: ObjectKind::AnalogValue,
        instance: instance as u32,
        name,
        value: PointValue::Count(value),
    };
    for (i, space) in snapshot.spaces.iter().take(MAX_OBJECTS).enumerate() {
        points.push(count(
            1000 + i,
            format!("{} occupancy", space.name),
            space.occupancy,
        ));
        points.push(count(
            2000 + i,
            format!("{} capacity", space.name),
            Some(space.capacity.unwrap_or(0)),
        ));
        points.push(Point {
            kind: ObjectKind::BinaryValue,
            instance: (1000 + i) as u32,
            name: format!("{} over capacity", space.name),
            value: PointValue::Binary(matches!(
                (space.occupancy, space.capacity),
                (Some(occupancy), Some(capacity)) if occupancy > capacity
            )),
        });
    }
    for (i, zone) in snapshot.zones.iter().take(MAX_OBJECTS).enumerate() {
        points.push(count(
            3000 + i,
            format!("{} occupancy", zone.name),
            zone.occupancy,
        ));
    }
    for (i, line) in snapshot.lines.iter().take(MAX_OBJECTS).enumerate() {
        points.push(count(
            4000 + i,
            format!("{} entries today", line.name),
            Some(u32::try_from(line.entries).unwrap_or(u32::MAX)),
        ));
        points.push(count(
            5000 + i,
            format!("{} exits today", line.name),
            Some(u32::try_from(line.exits).unwrap_or(u32::MAX)),
        ));
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disclosure::live::example_snapshot;

    #[test]
    fn each_space_zone_and_line_has_its_objects_at_documented_instances() {
        let snapshot = example_snapshot();
        let points = points(&snapshot);
        let find = |kind, instance| {
            points
                .iter()
                .find(|p| p.kind == kind && p.instance == instance)
                .unwrap_or_else(|| panic!("no {kind:?} {instance} in {points:?}"))
        };
        assert_eq!(points.len(), 2 * 3 + 1 + 2);
        assert_eq!(
            find(ObjectKind::AnalogValue, 1000).value,
            PointValue::Count(Some(41))
        );
        assert_eq!(
            find(ObjectKind::AnalogValue, 2000).value,
            PointValue::Count(Some(40))
        );
        assert_eq!(
            find(ObjectKind::BinaryValue, 1000).value,
            PointValue::Binary(true)
        );
        assert_eq!(
            find(ObjectKind::AnalogValue, 1001).value,
            PointValue::Count(None)
        );
        assert_eq!(
            find(ObjectKind::BinaryValue, 1001).value,
            PointValue::Binary(false)
        );
        assert_eq!(
            find(ObjectKind::AnalogValue, 3000).name,
            "lobby.queue occupancy"
        );
        assert_eq!(
            find(ObjectKind::AnalogValue, 4000).value,
            PointValue::Count(Some(70_000))
        );
        assert_eq!(
            find(ObjectKind::AnalogValue, 5000).value,
            PointValue::Count(Some(4))
        );
    }
}
