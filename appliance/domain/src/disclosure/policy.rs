//! The disclosure policy: one table of every exit of the appliance (each
//! role's routes, the live stream, `/metrics`, the MQTT topics, NGSI-LD, the
//! webhook, the logs) against every data class, with the finest granularity
//! each may receive ([`TABLE`], rendered into `docs/privacy.md` by
//! [`markdown`] and checked there by a test), and the rules that hold it,
//! which every exit calls rather than deciding for itself:
//!
//! - published cells: a count below k, zero included, is one band
//!   ([`band`]); planners and every off-site feed read only such cells,
//!   per space, in buckets of [`PUBLISHED_MIN_BUCKET_MS`] or more;
//! - small zones (capacity below k, allowed only with a justified opt-in):
//!   history in buckets of [`SMALL_ZONE_MIN_BUCKET_MS`] or more
//!   ([`history_min_bucket_ms`]);
//! - dwell: median and p90 only for buckets with at least k visits, for
//!   every role ([`dwell_figures`]);
//! - anomalies leaving the box: [`super::push`].
//!
//! The API's route table names the classes each route serves
//! (`api::ROUTES`); a test fails when a route serves a class that the table
//! does not grant to every role that may call it.

use crate::analytics::DwellHistogram;
pub use crate::config::is_small_zone;
use crate::security::Role;

/// Where data leaves the appliance's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The API, as a token or session of this role reads it.
    Role(Role),
    /// `GET /api/v1/live`, the dashboard's Server-Sent Events.
    LiveStream,
    /// `GET /metrics`, OpenMetrics for Prometheus.
    Metrics,
    /// `{prefix}/{site}/{space}/aggregates/{width}` (and `/latest`).
    MqttAggregates,
    /// `{prefix}/{site}/{space}/ngsi-ld/{width}` (and `/latest`; with `mqtt.fiware`).
    NgsiLd,
    /// `{prefix}/{site}/anomalies` (with `mqtt.anomalies`).
    MqttAnomalies,
    /// `{prefix}/{site}/live/...` and Home Assistant discovery (with
    /// `mqtt.live`), `disclosure::live`.
    MqttLive,
    /// The read-only Modbus TCP server (`[modbus]`), `disclosure::modbus`.
    Modbus,
    /// The read-only BACnet/IP server (`[bacnet]`), `disclosure::bacnet`.
    Bacnet,
    /// `[anomalies.webhook]`.
    Webhook,
    /// The service log (journal) and the security events (syslog).
    Logs,
}

impl Exit {
    pub const ALL: [Exit; 14] = [
        Exit::Role(Role::Admin),
        Exit::Role(Role::Facilities),
        Exit::Role(Role::Planner),
        Exit::Role(Role::Dpo),
        Exit::LiveStream,
        Exit::Metrics,
        Exit::MqttAggregates,
        Exit::NgsiLd,
        Exit::MqttAnomalies,
        Exit::MqttLive,
        Exit::Modbus,
        Exit::Bacnet,
        Exit::Webhook,
        Exit::Logs,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Exit::Role(Role::Admin) => "admin (on site)",
            Exit::Role(Role::Facilities) => "facilities (on site)",
            Exit::Role(Role::Planner) => "planner (off site)",
            Exit::Role(Role::Dpo) => "dpo (on site)",
            Exit::LiveStream => "live stream (dashboard SSE)",
            Exit::Metrics => "/metrics (Prometheus)",
            Exit::MqttAggregates => "MQTT aggregates",
            Exit::NgsiLd => "MQTT NGSI-LD",
            Exit::MqttAnomalies => "MQTT anomalies (opt-in)",
            Exit::MqttLive => "MQTT live and Home Assistant (opt-in, the site's broker)",
            Exit::Modbus => "Modbus TCP (opt-in, read-only, the building's network)",
            Exit::Bacnet => "BACnet/IP (opt-in, read-only, the building's network)",
            Exit::Webhook => "anomaly webhook",
            Exit::Logs => "logs (journal, syslog)",
        }
    }
}

/// What leaves, by data class (the DPO's view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The current occupancy of zones and spaces.
    LiveCounts,
    /// Stored counts as counted: zones, lines, spaces, dwell.
    History,
    /// Cells decided once at publication (`storage::governance`).
    Published,
    /// Anomalies: person-related events (loitering, after hours, wrong
    /// way) and camera conditions.
    Events,
    /// Redacted calibration snapshots.
    Snapshots,
    /// The audit log, deletion receipts and security events.
    Audit,
    /// Camera health.
    Health,
    /// Zone, line and space names and shapes; the DPO's documents made from the config.
    Layout,
}

impl Class {
    pub const ALL: [Class; 8] = [
        Class::LiveCounts,
        Class::History,
        Class::Published,
        Class::Events,
        Class::Snapshots,
        Class::Audit,
        Class::Health,
        Class::Layout,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Class::LiveCounts => "live counts",
            Class::History => "count history",
            Class::Published => "published aggregates",
            Class::Events => "events (anomalies)",
            Class::Snapshots => "redacted snapshots",
            Class::Audit => "audit log, receipts, security events",
            Class::Health => "camera health",
            Class::Layout => "layout and records",
        }
    }
}

/// One cell of the table: an exit may carry a class at this granularity.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    pub exit: Exit,
    pub class: Class,
    pub finest: &'static str,
}

const fn grant(exit: Exit, class: Class, finest: &'static str) -> Grant {
    Grant {
        exit,
        class,
        finest,
    }
}

const ADMIN: Exit = Exit::Role(Role::Admin);
const FACILITIES: Exit = Exit::Role(Role::Facilities);
const PLANNER: Exit = Exit::Role(Role::Planner);
const DPO: Exit = Exit::Role(Role::Dpo);

const ON_SITE_LIVE: &str = "per zone and space, as counted (a zone below k only when opted in)";
const ON_SITE_HISTORY: &str = "per zone, line and space in 1 min buckets (small zones: 15 min); dwell median and p90 only with >= k visits";
const PUBLISHED: &str = "per space, buckets of 15 min or more, cells decided once: below k (zero included) one band, optional noise drawn once per cell";
const PUSHED_EVENTS: &str = "kind, subject, severity, threshold, times to the minute; counts of people and thresholds that count people below k banded; no explanation, no acknowledger; wrong way as counts per bucket unless set to each";

/// Every exit against every class it may carry; anything absent is refused.
pub const TABLE: &[Grant] = &[
    grant(ADMIN, Class::LiveCounts, ON_SITE_LIVE),
    grant(ADMIN, Class::History, ON_SITE_HISTORY),
    grant(ADMIN, Class::Published, PUBLISHED),
    grant(ADMIN, Class::Events, "each anomaly to the millisecond, with its explanation and who acknowledged it; kept 72 h after it ends"),
    grant(ADMIN, Class::Snapshots, "the latest frame per camera, faces and heads redacted (opt-in `privacy.snapshots`)"),
    grant(ADMIN, Class::Audit, "every entry (pseudonymous token ids), deletion receipts"),
    grant(ADMIN, Class::Health, "per camera"),
    grant(ADMIN, Class::Layout, "zones, lines, spaces; the processing record, sign texts, the draft impact assessment"),
    grant(FACILITIES, Class::LiveCounts, ON_SITE_LIVE),
    grant(FACILITIES, Class::History, ON_SITE_HISTORY),
    grant(FACILITIES, Class::Published, PUBLISHED),
    grant(FACILITIES, Class::Events, "each anomaly to the millisecond, with its explanation and who acknowledged it; kept 72 h after it ends"),
    grant(FACILITIES, Class::Health, "per camera"),
    grant(FACILITIES, Class::Layout, "zones, lines, spaces"),
    grant(PLANNER, Class::Published, PUBLISHED),
    grant(PLANNER, Class::Health, "per camera (through /metrics)"),
    grant(DPO, Class::Audit, "every entry (pseudonymous token ids), deletion receipts, retention state"),
    grant(DPO, Class::Layout, "the processing record, sign texts, the draft impact assessment"),
    grant(Exit::LiveStream, Class::LiveCounts, ON_SITE_LIVE),
    grant(Exit::LiveStream, Class::Events, "open anomalies, as the API serves them"),
    grant(Exit::LiveStream, Class::Health, "per camera"),
    grant(Exit::Metrics, Class::Published, "the newest published cell per space and width; withheld values absent"),
    grant(Exit::Metrics, Class::Health, "per camera counters"),
    grant(Exit::MqttAggregates, Class::Published, "every published bucket (per space; 15 min, 1 h, 1 d; below k, zero included, one band; noise as stored), once per broker from the outbox, not retained; the newest of each space and width also retained under `.../latest` (the same cell, not another)"),
    grant(Exit::MqttAggregates, Class::Layout, "the site descriptor: space names and capacities, time zone, location, k (retained)"),
    grant(Exit::NgsiLd, Class::Published, "the same cells as CrowdFlowObserved entities; a sum with a withheld part left out"),
    grant(Exit::MqttAnomalies, Class::Events, PUSHED_EVENTS),
    grant(Exit::MqttLive, Class::LiveCounts, "per space (none that counts a small zone), and per zone unless small (below k), as counted; entries and exits per line on the local day; retained, on change, at most once a second per topic, no times"),
    grant(Exit::MqttLive, Class::Health, "per camera: streaming, connecting or failing, never the reason"),
    grant(Exit::MqttLive, Class::Layout, "space, zone, line and camera names (Home Assistant discovery)"),
    grant(Exit::Modbus, Class::LiveCounts, "per space (none that counts a small zone), and per zone unless small (below k), as counted; entries and exits per line on the local day; as registers, on request, no times"),
    grant(Exit::Modbus, Class::Health, "per camera: a state code (connecting, streaming, failing)"),
    grant(Exit::Bacnet, Class::LiveCounts, "per space (occupancy, capacity, over capacity; none that counts a small zone), and per zone unless small (below k), as counted; entries and exits per line on the local day; read, or pushed on change to subscribers (COV), no times"),
    grant(Exit::Bacnet, Class::Layout, "space, zone and line names (object names)"),
    grant(Exit::Webhook, Class::Events, PUSHED_EVENTS),
    grant(Exit::Logs, Class::Events, "the anomaly id and kind, never the explanation"),
    grant(Exit::Logs, Class::Audit, "security events: pseudonymous token id, client address, route"),
    grant(Exit::Logs, Class::Health, "camera state changes and their reasons"),
];

/// The finest granularity `exit` may receive of `class`; None: refused.
pub fn granted(exit: Exit, class: Class) -> Option<&'static str> {
    TABLE
        .iter()
        .find(|g| g.exit == exit && g.class == class)
        .map(|g| g.finest)
}

/// The table as Markdown, one row per exit and one column per class.
pub fn markdown() -> String {
    let mut out = String::from("| exit |");
    for class in Class::ALL {
        out.push_str(&format!(" {} |", class.label()));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(Class::ALL.len()));
    out.push('\n');
    for exit in Exit::ALL {
        out.push_str(&format!("| {} |", exit.label()));
        for class in Class::ALL {
            out.push_str(&format!(" {} |", granted(exit, class).unwrap_or("-")));
        }
        out.push('\n');
    }
    out
}

const MINUTE_MS: i64 = 60_000;
/// Planners and every off-site feed read no finer buckets.
pub const PUBLISHED_MIN_BUCKET_MS: i64 = 15 * MINUTE_MS;
/// A small zone's history is served in buckets of at least this.
pub const SMALL_ZONE_MIN_BUCKET_MS: i64 = 15 * MINUTE_MS;

/// A published count: itself when at least `k`, else None (the band
/// "fewer than k", which holds zero too).
pub fn band(value: u64, k: u32) -> Option<u64> {
    (value >= u64::from(k)).then_some(value)
}

/// The finest history bucket for a zone of this capacity.
pub fn history_min_bucket_ms(capacity: Option<u32>, k: u32) -> i64 {
    if is_small_zone(capacity, k) {
        SMALL_ZONE_MIN_BUCKET_MS
    } else {
        MINUTE_MS
    }
}

/// Visits, and the median and p90 dwell in seconds, which are withheld
/// below k visits: the median of one visit is that person's stay.
pub fn dwell_figures(h: &DwellHistogram, k: u32) -> (u64, Option<f64>, Option<f64>) {
    let visits = h.visits();
    let seconds = |q| {
        (visits >= u64::from(k))
            .then(|| h.quantile(q))
            .flatten()
            .map(|s| (s * 10.0).round() / 10.0)
    };
    (visits, seconds(0.5), seconds(0.9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exit_and_class_appears_and_no_grant_is_listed_twice() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert!(
                    !(a.exit == b.exit && a.class == b.class),
                    "{:?} {:?} twice",
                    a.exit,
                    a.class
                );
            }
        }
        for exit in Exit::ALL {
            assert!(TABLE.iter().any(|g| g.exit == exit), "{exit:?} has no row");
        }
        // Off-site exits carry published cells or minimised events only.
        for exit in [
            Exit::Role(Role::Planner),
            Exit::Metrics,
            Exit::MqttAggregates,
            Exit::NgsiLd,
        ] {
            for class in [Class::LiveCounts, Class::History, Class::Events] {
                assert_eq!(granted(exit, class), None, "{exit:?} {class:?}");
            }
        }
        for exit in [Exit::Webhook, Exit::MqttAnomalies, Exit::Logs] {
            for class in [Class::LiveCounts, Class::History, Class::Published] {
                assert_eq!(granted(exit, class), None, "{exit:?} {class:?}");
            }
        }
    }

    #[test]
    fn the_band_holds_zero_and_small_counts() {
        let check = |value, k, expected| assert_eq!(band(value, k), expected, "{value} {k}");
        check(0, 5, None);
        check(1, 5, None);
        check(4, 5, None);
        check(5, 5, Some(5));
        check(120, 5, Some(120));
        check(1, 2, None);
        check(2, 2, Some(2));
    }

    #[test]
    fn small_zones_and_their_history() {
        assert!(is_small_zone(Some(1), 5) && is_small_zone(Some(4), 5));
        assert!(!is_small_zone(Some(5), 5) && !is_small_zone(None, 5));
        assert_eq!(history_min_bucket_ms(Some(1), 5), 900_000);
        assert_eq!(history_min_bucket_ms(Some(25), 5), 60_000);
    }

    #[test]
    fn dwell_medians_need_k_visits() {
        let mut h = DwellHistogram::default();
        h.add(600.0);
        assert_eq!(dwell_figures(&h, 5), (1, None, None));
        for s in [30.0, 60.0, 90.0, 120.0] {
            h.add(s);
        }
        let (visits, median, p90) = dwell_figures(&h, 5);
        assert_eq!(visits, 5);
        assert!(median.is_some() && p90.is_some());
    }

    #[test]
    fn the_markdown_table_has_a_row_per_exit() {
        let table = markdown();
        assert_eq!(table.lines().count(), 2 + Exit::ALL.len());
        assert!(table.contains("| planner (off site) | - | - | per space, buckets of 15 min"));
    }
}
