//! `disclosure::modbus::read`, the register map the Modbus server answers
//! from, on arbitrary snapshots and requests. Invariants: it never panics;
//! a read either returns exactly `count` registers or is refused; a read
//! is refused for its count exactly when the count is 0 or above 125; a
//! refused address range holds an address outside the map, an accepted one
//! holds only addresses whose single reads succeed with the same values.

#![no_main]

use headcount_domain::disclosure::live::{CameraStatus, LineToday, LiveCount, LiveSnapshot};
use headcount_domain::disclosure::modbus::{read, ReadError, MAX_READ};
use libfuzzer_sys::fuzz_target;

fn u16_at(data: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([
        data.get(i).copied().unwrap_or(0),
        data.get(i + 1).copied().unwrap_or(0),
    ])
}

fn count(i: usize, byte: u8) -> LiveCount {
    LiveCount {
        name: format!("o{i}"),
        occupancy: (byte % 3 != 0).then_some(u32::from(byte) * 1000),
        capacity: (byte % 2 == 0).then_some(u32::from(byte) * 700),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // Sizes up to 255 objects, beyond the 200 the map addresses.
    let snapshot = LiveSnapshot {
        spaces: (0..usize::from(data[0]))
            .map(|i| count(i, data[0] ^ i as u8))
            .collect(),
        zones: (0..usize::from(data[1] % 8))
            .map(|i| count(i, data[1]))
            .collect(),
        lines: (0..usize::from(data[2] % 8))
            .map(|i| LineToday {
                name: format!("l{i}"),
                day: jiff::civil::date(2026, 12, 2),
                entries: u64::from(data[2]) << (i * 8),
                exits: i as u64,
            })
            .collect(),
        cameras: (0..usize::from(data[3] % 8))
            .map(|i| {
                (
                    format!("c{i}"),
                    [
                        CameraStatus::Connecting,
                        CameraStatus::Streaming,
                        CameraStatus::Failing,
                    ][i % 3],
                )
            })
            .collect(),
    };
    for request in data[4..].chunks(4) {
        let (address, n) = (u16_at(request, 0), u16_at(request, 2) % 300);
        match read(&snapshot, address, n) {
            Ok(words) => {
                assert_eq!(words.len(), usize::from(n));
                for (i, word) in words.iter().enumerate() {
                    assert_eq!(read(&snapshot, address + i as u16, 1), Ok(vec![*word]));
                }
            }
            Err(ReadError::IllegalCount) => assert!(n == 0 || n > MAX_READ),
            Err(ReadError::IllegalAddress) => {
                assert!(n >= 1 && n <= MAX_READ);
                let outside = (0..n).any(|i| {
                    address
                        .checked_add(i)
                        .is_none_or(|a| read(&snapshot, a, 1).is_err())
                });
                assert!(outside, "{address} x {n} refused with every address inside");
            }
        }
    }
});
