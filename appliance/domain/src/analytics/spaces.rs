//! Occupancy of a space (a room, a floor, a building) made of zones and/or
//! entrance lines. Zones only: the sum of their occupancy. Entrances: entries
//! minus exits, never below zero, set to zero at the daily reset time. Both:
//! the entrance count, replaced by the zones' count once the two have
//! disagreed, with the zones steady, for the correction time: entrance
//! counts drift (a missed exit stays for ever), zone counts do not.

use super::lines::Direction;
use crate::clock::UnixMs;
use crate::config::SpaceConfig;
use crate::pixels::frame::CameraId;
use std::collections::HashMap;

pub(super) struct SpaceCounter {
    name: String,
    zones: Vec<String>,
    entrances: Vec<String>,
    cameras: Vec<String>,
    reset_at: Option<jiff::civil::Time>,
    correction_ms: i64,
    /// Entries minus exits, clamped at zero.
    count: u32,
    /// Entries counted at the entrances since the daily reset: what the
    /// count's drift is judged against. Never below `count` (a count
    /// corrected or restored up means at least that many came in); stays 0
    /// without a daily reset, where a day's entries cannot be told.
    entries: u64,
    last_reset: Option<jiff::civil::Date>,
    zones_value: Option<u32>,
    zones_steady_since: UnixMs,
    disagree_since: Option<UnixMs>,
}

impl SpaceCounter {
    pub fn new(space: &SpaceConfig, correction_secs: f64) -> Self {
        let mut cameras: Vec<String> = space
            .zones
            .iter()
            .chain(&space.entrances)
            .filter_map(|key| key.split_once('.').map(|(camera, _)| camera.to_string()))
            .collect();
        cameras.sort();
        cameras.dedup();
        Self {
            name: space.name.clone(),
            zones: space.zones.clone(),
            entrances: space.entrances.clone(),
            cameras,
            reset_at: space.reset_at,
            correction_ms: (correction_secs * 1000.0) as i64,
            count: 0,
            entries: 0,
            last_reset: None,
            zones_value: None,
            zones_steady_since: 0,
            disagree_since: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether frames of this camera can change the space.
    pub fn watches(&self, camera: &CameraId) -> bool {
        self.cameras.iter().any(|c| c.as_str() == &**camera)
    }

    pub fn on_crossing(&mut self, line: &str, direction: Direction) {
        if !self.entrances.iter().any(|e| e == line) {
            return;
        }
        self.count = match direction {
            Direction::In => {
                if self.resets() {
                    self.entries += 1;
                }
                self.count + 1
            }
            Direction::Out => self.count.saturating_sub(1),
        };
    }

    /// Whether it has a daily reset (and so needs the local time).
    pub fn resets(&self) -> bool {
        self.reset_at.is_some()
    }

    /// Whether entries and exits are counted (and so worth saving).
    pub fn counts_entrances(&self) -> bool {
        !self.entrances.is_empty()
    }

    /// The entrance count, as saved across restarts.
    pub fn entrance_count(&self) -> u32 {
        self.count
    }

    /// Entries since the last reset, as saved across restarts.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Sets the entrance count by hand (a manual correction).
    pub fn set_count(&mut self, count: u32) {
        self.count = count;
        self.disagree_since = None;
        self.entries_at_least_count();
    }

    /// Whether it is counted at its entrances and has no zones.
    pub fn entrances_only(&self) -> bool {
        !self.entrances.is_empty() && self.zones.is_empty()
    }

    fn entries_at_least_count(&mut self) {
        if self.resets() {
            self.entries = self.entries.max(u64::from(self.count));
        }
    }

    /// The day of the most recent reset moment at or before `local`.
    fn last_reset_day(&self, local: jiff::civil::DateTime) -> Option<jiff::civil::Date> {
        let reset_at = self.reset_at?;
        if local.time() >= reset_at {
            Some(local.date())
        } else {
            local.date().yesterday().ok()
        }
    }

    /// Takes up the entrance count and entries saved at `saved` (local
    /// time) before a restart, unless a reset has fallen due since.
    pub fn restore(
        &mut self,
        count: u32,
        entries: u64,
        saved: jiff::civil::DateTime,
        now: jiff::civil::DateTime,
    ) {
        let reset_between = match (self.last_reset_day(saved), self.last_reset_day(now)) {
            (Some(before), Some(since)) => since > before,
            _ => false,
        };
        if !reset_between {
            self.count = count;
            // Saved by a version that counted entries without a reset too.
            self.entries = if self.resets() { entries } else { 0 };
            self.entries_at_least_count();
        }
    }

    /// Sets the entrance count to zero once a day at `reset_at` (local
    /// time); true when it did.
    pub fn reset_if_due(&mut self, local: jiff::civil::DateTime) -> bool {
        let Some(due) = self.last_reset_day(local) else {
            return false;
        };
        match self.last_reset {
            None => {
                // Starting up: the reset that was due has happened already.
                self.last_reset = Some(due);
                false
            }
            Some(last) if last < due => {
                self.last_reset = Some(due);
                self.count = 0;
                self.entries = 0;
                self.disagree_since = None;
                true
            }
            Some(_) => false,
        }
    }

    /// The space's occupancy now, given the latest zone occupancies.
    pub fn update(&mut self, at: UnixMs, zone_values: &HashMap<String, u32>) -> u32 {
        let zones_sum = (!self.zones.is_empty()).then(|| {
            self.zones
                .iter()
                .filter_map(|z| zone_values.get(z))
                .sum::<u32>()
        });
        if self.entrances.is_empty() {
            return zones_sum.unwrap_or(0);
        }
        let Some(zones_sum) = zones_sum else {
            return self.count;
        };
        if self.zones_value != Some(zones_sum) {
            self.zones_value = Some(zones_sum);
            self.zones_steady_since = at;
        }
        if self.count == zones_sum {
            self.disagree_since = None;
            return self.count;
        }
        // After the wall clock stepped back, the disagreement starts anew.
        if self.disagree_since.is_some_and(|since| since > at) || self.zones_steady_since > at {
            self.disagree_since = None;
            self.zones_steady_since = at;
        }
        let since = *self.disagree_since.get_or_insert(at);
        if at - since.max(self.zones_steady_since) >= self.correction_ms {
            // The journal carries no counts (docs/privacy.md): only that it happened.
            tracing::info!(space = %self.name, "entrance count corrected from the zones");
            self.count = zones_sum;
            self.disagree_since = None;
            self.entries_at_least_count();
        }
        self.count
    }
}
