//! The live counts as Modbus registers (`[modbus]`): the same
//! facilities-level view as the live MQTT feed ([`super::live::LiveSnapshot`]:
//! spaces, zones that are not small, lines on the local day, camera states),
//! read-only. The map (version [`MAP_VERSION`]), in 16-bit registers read
//! with function 04 (input registers) or 03 (holding registers, the same
//! map, for clients that read only those):
//!
//! | address | register |
//! |---|---|
//! | 0 | map version |
//! | 1, 2, 3, 4 | number of spaces, zones, lines, cameras |
//! | 1000 + 10 i | space i: occupancy (65535 = not counted yet) |
//! | 1001 + 10 i | space i: capacity (0 = none) |
//! | 1002 + 10 i | space i: over capacity (1) or not (0) |
//! | 3000 + 10 i, 3001 + 10 i | zone i: occupancy, capacity |
//! | 5000 + 10 i, 5001 + 10 i | line i: entries today (32 bits, high word first) |
//! | 5002 + 10 i, 5003 + 10 i | line i: exits today (32 bits, high word first) |
//! | 7000 + 10 i | camera i: 0 connecting, 1 streaming, 2 failing |
//!
//! Objects are numbered from 0 in name order; the unused registers of a
//! header or an object's block read 0. An address outside them is an
//! illegal data address, a read of more than 125 registers an illegal data
//! value: nothing else is answered. [`describe`] lists the map of a
//! running config.

use super::live::{CameraStatus, LiveSnapshot};

pub const MAP_VERSION: u16 = 1;
/// Registers in the header and in each object's block.
pub const BLOCK: u16 = 10;
pub const SPACES_AT: u16 = 1000;
pub const ZONES_AT: u16 = 3000;
pub const LINES_AT: u16 = 5000;
pub const CAMERAS_AT: u16 = 7000;
/// Objects of one kind the map can address (blocks up to the next kind).
pub const MAX_OBJECTS: usize = 200;
/// An occupancy not counted yet.
pub const UNKNOWN: u16 = u16::MAX;
/// The most registers one request may read (Modbus application protocol).
pub const MAX_READ: u16 = 125;

/// Why a read is refused (a Modbus exception).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Exception 02: an address outside the map.
    IllegalAddress,
    /// Exception 03: no register or more than [`MAX_READ`].
    IllegalCount,
}

/// `count` registers from `address`.
pub fn read(snapshot: &LiveSnapshot, address: u16, count: u16) -> Result<Vec<u16>, ReadError> {
    if count == 0 || count > MAX_READ {
        return Err(ReadError::IllegalCount);
    }
    (0..count)
        .map(|i| {
            address
                .checked_add(i)
                .and_then(|a| register(snapshot, a))
                .ok_or(ReadError::IllegalAddress)
        })
        .collect()
}

/// One register, or None outside the map.
fn register(snapshot: &LiveSnapshot, address: u16) -> Option<u16> {
    if address < BLOCK {
        let header = [
            MAP_VERSION,
            objects(snapshot.spaces.len()),
            objects(snapshot.zones.len()),
            objects(snapshot.lines.len()),
            objects(snapshot.cameras.len()),
        ];
        return Some(header.get(usize::from(address)).copied().unwrap_or(0));
    }
    let (kind, index, offset) = locate(address)?;
    let word = match kind {
        Kind::Space => {
            let space = addressable(&snapshot.spaces, index)?;
            match offset {
                0 => occupancy(space.occupancy),
                1 => capacity(space.capacity),
                2 => match (space.occupancy, space.capacity) {
                    (Some(occupancy), Some(capacity)) => u16::from(occupancy > capacity),
                    _ => 0,
                },
                _ => 0,
            }
        }
        Kind::Zone => {
            let zone = addressable(&snapshot.zones, index)?;
            match offset {
                0 => occupancy(zone.occupancy),
                1 => capacity(zone.capacity),
                _ => 0,
            }
        }
        Kind::Line => {
            let line = addressable(&snapshot.lines, index)?;
            let entries = u32::try_from(line.entries).unwrap_or(u32::MAX);
            let exits = u32::try_from(line.exits).unwrap_or(u32::MAX);
            match offset {
                0 => (entries >> 16) as u16,
                1 => entries as u16,
                2 => (exits >> 16) as u16,
                3 => exits as u16,
                _ => 0,
            }
        }
        Kind::Camera => {
            let (_, status) = addressable(&snapshot.cameras, index)?;
            match offset {
                0 => match status {
                    CameraStatus::Connecting => 0,
                    CameraStatus::Streaming => 1,
                    CameraStatus::Failing => 2,
                },
                _ => 0,
            }
        }
    };
    Some(word)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Space,
    Zone,
    Line,
    Camera,
}

/// The object kind, index and offset in its block of an address.
fn locate(address: u16) -> Option<(Kind, usize, u16)> {
    [
        (Kind::Space, SPACES_AT),
        (Kind::Zone, ZONES_AT),
        (Kind::Line, LINES_AT),
        (Kind::Camera, CAMERAS_AT),
    ]
    .into_iter()
    .find_map(|(kind, at)| {
        let relative = address.checked_sub(at)?;
        let index = usize::from(relative / BLOCK);
        (index < MAX_OBJECTS).then_some((kind, index, relative % BLOCK))
    })
}

fn addressable<T>(objects: &[T], index: usize) -> Option<&T> {
    objects.iter().take(MAX_OBJECTS).nth(index)
}

fn objects(n: usize) -> u16 {
    n.min(MAX_OBJECTS) as u16
}

fn occupancy(value: Option<u32>) -> u16 {
    value.map_or(UNKNOWN, |v| v.min(u32::from(UNKNOWN - 1)) as u16)
}

fn capacity(value: Option<u32>) -> u16 {
    value.map_or(0, |v| v.min(u32::from(u16::MAX)) as u16)
}

/// The map of this snapshot, one line per object, for the log and for
/// integrators.
pub fn describe(snapshot: &LiveSnapshot) -> Vec<String> {
    let mut lines = vec![format!(
        "0-4: map version {MAP_VERSION}; numbers of spaces, zones, lines, cameras"
    )];
    let at = |base: u16, i: usize| base + BLOCK * i as u16;
    for (i, space) in snapshot.spaces.iter().take(MAX_OBJECTS).enumerate() {
        let a = at(SPACES_AT, i);
        lines.push(format!(
            "{a}-{}: space {}: occupancy, capacity, over capacity",
            a + 2,
            space.name
        ));
    }
    for (i, zone) in snapshot.zones.iter().take(MAX_OBJECTS).enumerate() {
        let a = at(ZONES_AT, i);
        lines.push(format!(
            "{a}-{}: zone {}: occupancy, capacity",
            a + 1,
            zone.name
        ));
    }
    for (i, line) in snapshot.lines.iter().take(MAX_OBJECTS).enumerate() {
        let a = at(LINES_AT, i);
        lines.push(format!(
            "{a}-{}: line {}: entries today (2 words), exits today (2 words)",
            a + 3,
            line.name
        ));
    }
    for (i, (camera, _)) in snapshot.cameras.iter().take(MAX_OBJECTS).enumerate() {
        lines.push(format!(
            "{}: camera {camera}: 0 connecting, 1 streaming, 2 failing",
            at(CAMERAS_AT, i)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disclosure::live::example_snapshot as snapshot;

    #[test]
    fn the_map_reads_as_documented() {
        let s = snapshot();
        assert_eq!(read(&s, 0, 10).unwrap(), [1, 2, 1, 1, 1, 0, 0, 0, 0, 0]);
        assert_eq!(read(&s, 1000, 3).unwrap(), [41, 40, 1]);
        // Not counted yet; no capacity.
        assert_eq!(read(&s, 1010, 3).unwrap(), [UNKNOWN, 0, 0]);
        assert_eq!(read(&s, 3000, 2).unwrap(), [3, 20]);
        // 70000 = 0x0001_1170, high word first.
        assert_eq!(read(&s, 5000, 4).unwrap(), [1, 0x1170, 0, 4]);
        assert_eq!(read(&s, 7000, 1).unwrap(), [2]);
        // A whole block, reserved registers included.
        assert_eq!(read(&s, 1000, 10).unwrap()[3..], [0; 7]);
    }

    #[test]
    fn reads_outside_the_map_or_too_long_are_refused() {
        let s = snapshot();
        for (address, count, want) in [
            (10, 1, ReadError::IllegalAddress),
            (1020, 1, ReadError::IllegalAddress),
            (1019, 2, ReadError::IllegalAddress),
            (3010, 1, ReadError::IllegalAddress),
            (9000, 1, ReadError::IllegalAddress),
            (u16::MAX, 2, ReadError::IllegalAddress),
            (0, 0, ReadError::IllegalCount),
            (1000, 126, ReadError::IllegalCount),
        ] {
            assert_eq!(read(&s, address, count), Err(want), "{address} x {count}");
        }
    }

    #[test]
    fn the_description_names_each_object_at_its_address() {
        let lines = describe(&snapshot());
        assert_eq!(lines.len(), 1 + 2 + 1 + 1 + 1);
        assert_eq!(
            lines[2],
            "1010-1012: space shop: occupancy, capacity, over capacity"
        );
        assert_eq!(
            lines[4],
            "5000-5003: line lobby.door: entries today (2 words), exits today (2 words)"
        );
    }
}
