//! The live feed as it may leave the box (`mqtt.live`), and its Home
//! Assistant discovery (`mqtt.home_assistant`): facilities-level data for
//! the site's own broker and its building automation. Under
//! `{prefix}/{site}/live`, every message retained:
//!
//! - `space/{space}`: `{"occupancy", "capacity"}`;
//! - `zone/{camera.zone}`: the same, except small zones (capacity below
//!   k): a small zone's live count is one person's presence at a desk or in
//!   an office, and a subscriber such as Home Assistant's recorder keeps
//!   it beyond the appliance's retention and its access rules; for the same
//!   reason a space that counts a small zone is left out (its count would
//!   be the zone's, alone or as a difference);
//! - `line/{camera.line}`: `{"day", "entries", "exits"}` on the local day;
//! - `camera/{camera}`: `{"state"}`: streaming, connecting or failing, never
//!   the reason (it may name a host).
//!
//! Nothing is published before it is known (a zone before its camera's
//! first analysed frame). Payloads carry no time: the publisher sends a
//! topic only when its payload changes (at most once a second), and a time
//! would change with every frame. Discovery configs go under
//! `{discovery_prefix}/sensor/headcount_{site}/{object}/config`, one per
//! sensor, with the appliance's status topic as their availability.

use crate::analytics::{local_day, BoardView};
use crate::clock::UnixMs;
use crate::config::{is_small_zone, zone_key, Config};
use crate::health::{CameraHealth, CameraState};
use crate::pixels::frame::CameraId;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// One retained message: topic and payload.
pub type Retained = (String, String);

/// What the live exits (MQTT, Modbus, BACnet) may see of the running counts.
#[derive(Debug, Clone)]
pub struct LiveView {
    k: u32,
    timezone: jiff::tz::TimeZone,
    /// Spaces that count a small zone: their occupancy would be that
    /// zone's count (alone, or minus the other zones'), so they stay in.
    hidden_spaces: BTreeSet<String>,
}

/// What the live feed publishes, decided from the running counts.
#[derive(Debug, Clone)]
pub struct LiveFeed {
    base: String,
    status: String,
    view: LiveView,
    discovery: Option<Discovery>,
}

#[derive(Debug, Clone)]
struct Discovery {
    prefix: String,
    node: String,
    device: Value,
}

/// One sensor: its state topic, what to read from it, and how Home
/// Assistant should treat it.
struct Sensor {
    object: String,
    name: String,
    state_topic: String,
    value_template: &'static str,
    /// `measurement` for a level, `total_increasing` for a count that only
    /// rises until its daily restart; None for a state text.
    state_class: Option<&'static str>,
    unit: Option<&'static str>,
    diagnostic: bool,
}

impl LiveFeed {
    /// `topic_prefix` and `site` as the fleet feed uses them;
    /// `home_assistant`: the discovery prefix, when discovery is on.
    pub fn new(
        topic_prefix: &str,
        site: &str,
        view: LiveView,
        home_assistant: Option<&str>,
        version: &str,
    ) -> LiveFeed {
        let node = format!("headcount_{}", object_id(site));
        LiveFeed {
            base: format!("{topic_prefix}/{site}/live"),
            status: format!("{topic_prefix}/{site}/status"),
            view,
            discovery: home_assistant.map(|prefix| Discovery {
                prefix: prefix.to_string(),
                device: json!({
                    "identifiers": [node],
                    "name": format!("headcount {site}"),
                    "manufacturer": "headcount",
                    "model": "people-counting appliance",
                    "sw_version": version,
                }),
                node,
            }),
        }
    }

    /// Every retained message the feed holds now, discovery configs first
    /// (Home Assistant should know a sensor before its state).
    pub fn messages(
        &self,
        view: &BoardView,
        cameras: &BTreeMap<CameraId, CameraHealth>,
        now: UnixMs,
    ) -> Vec<Retained> {
        let snapshot = self.view.snapshot(view, cameras, now);
        let mut states = Vec::new();
        let mut sensors = Vec::new();
        for (kind, counts) in [("space", &snapshot.spaces), ("zone", &snapshot.zones)] {
            for count in counts {
                let Some(occupancy) = count.occupancy else {
                    continue;
                };
                let topic = format!("{}/{kind}/{}", self.base, count.name);
                states.push((topic.clone(), occupancy_payload(occupancy, count.capacity)));
                sensors.push(occupancy_sensor(
                    &format!("{kind}_{}", object_id(&count.name)),
                    &count.name,
                    topic,
                ));
            }
        }
        for line in &snapshot.lines {
            let topic = format!("{}/line/{}", self.base, line.name);
            let payload = json!({
                "day": line.day.to_string(),
                "entries": line.entries,
                "exits": line.exits,
            });
            states.push((topic.clone(), payload.to_string()));
            for (what, template) in [
                ("entries", "{{ value_json.entries }}"),
                ("exits", "{{ value_json.exits }}"),
            ] {
                sensors.push(Sensor {
                    object: format!("line_{}_{what}", object_id(&line.name)),
                    name: format!("{} {what} today", line.name),
                    state_topic: topic.clone(),
                    value_template: template,
                    state_class: Some("total_increasing"),
                    unit: Some("people"),
                    diagnostic: false,
                });
            }
        }
        for (camera, status) in &snapshot.cameras {
            let topic = format!("{}/camera/{camera}", self.base);
            states.push((
                topic.clone(),
                json!({ "state": status.as_str() }).to_string(),
            ));
            sensors.push(Sensor {
                object: format!("camera_{}", object_id(camera)),
                name: format!("camera {camera}"),
                state_topic: topic,
                value_template: "{{ value_json.state }}",
                state_class: None,
                unit: None,
                diagnostic: true,
            });
        }
        let mut out: Vec<Retained> = match &self.discovery {
            Some(discovery) => sensors.iter().map(|s| self.config(discovery, s)).collect(),
            None => Vec::new(),
        };
        out.extend(states);
        out
    }

    /// One sensor's discovery config, as Home Assistant documents it.
    fn config(&self, discovery: &Discovery, sensor: &Sensor) -> Retained {
        let topic = format!(
            "{}/sensor/{}/{}/config",
            discovery.prefix, discovery.node, sensor.object
        );
        let mut config = json!({
            "name": sensor.name,
            "unique_id": format!("{}_{}", discovery.node, sensor.object),
            "state_topic": sensor.state_topic,
            "value_template": sensor.value_template,
            "availability_topic": self.status,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": discovery.device,
        });
        if let Some(class) = sensor.state_class {
            config["state_class"] = json!(class);
        }
        if let Some(unit) = sensor.unit {
            config["unit_of_measurement"] = json!(unit);
        }
        if sensor.diagnostic {
            config["entity_category"] = json!("diagnostic");
        }
        (topic, config.to_string())
    }
}

impl LiveView {
    /// k: the disclosure threshold (small zones); the local day's zone.
    pub fn new(k: u32, timezone: jiff::tz::TimeZone) -> LiveView {
        LiveView {
            k,
            timezone,
            hidden_spaces: BTreeSet::new(),
        }
    }

    /// The view of this config: its k, its time zone, and its spaces that
    /// count a small zone, which the live exits leave out.
    pub fn from_config(config: &Config) -> LiveView {
        let small: BTreeSet<String> = config
            .cameras
            .iter()
            .flat_map(|c| {
                c.zones
                    .iter()
                    .filter(|z| is_small_zone(z.capacity, config.aggregates.k))
                    .map(|z| zone_key(&c.id, &z.name))
            })
            .collect();
        LiveView {
            hidden_spaces: config
                .spaces
                .iter()
                .filter(|s| s.zones.iter().any(|z| small.contains(z)))
                .map(|s| s.name.clone())
                .collect(),
            ..LiveView::new(config.aggregates.k, config.timezone.clone())
        }
    }

    /// What the live exits may carry now: every space, every zone that
    /// is not small, every line's crossings on the local day, every
    /// camera's state; each in name order.
    pub fn snapshot(
        &self,
        view: &BoardView,
        cameras: &BTreeMap<CameraId, CameraHealth>,
        now: UnixMs,
    ) -> LiveSnapshot {
        let count = |(name, live): (&String, &crate::analytics::LiveOccupancy)| LiveCount {
            name: name.clone(),
            occupancy: live.occupancy,
            capacity: live.capacity,
        };
        let today = local_day(now, &self.timezone);
        LiveSnapshot {
            spaces: view
                .spaces
                .iter()
                .filter(|(name, _)| !self.hidden_spaces.contains(*name))
                .map(count)
                .collect(),
            zones: view
                .zones
                .iter()
                .filter(|(_, zone)| !is_small_zone(zone.capacity, self.k))
                .map(count)
                .collect(),
            lines: today
                .map(|today| {
                    view.lines_today
                        .iter()
                        .map(|(name, counted)| {
                            let (entries, exits) = counted.on(today);
                            LineToday {
                                name: name.clone(),
                                day: today,
                                entries,
                                exits,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default(),
            cameras: cameras
                .iter()
                .map(|(camera, health)| (camera.to_string(), CameraStatus::of(&health.state)))
                .collect(),
        }
    }
}

/// The live exits' view of the counts (`LiveView::snapshot`).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSnapshot {
    pub spaces: Vec<LiveCount>,
    /// Zones that are not small.
    pub zones: Vec<LiveCount>,
    pub lines: Vec<LineToday>,
    pub cameras: Vec<(String, CameraStatus)>,
}

/// A space's or a zone's occupancy; None before it was first counted.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveCount {
    pub name: String,
    pub occupancy: Option<u32>,
    pub capacity: Option<u32>,
}

/// A line's crossings on the local day.
#[derive(Debug, Clone, PartialEq)]
pub struct LineToday {
    pub name: String,
    pub day: jiff::civil::Date,
    pub entries: u64,
    pub exits: u64,
}

/// A camera's state without its reason (which may name a host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraStatus {
    Connecting,
    Streaming,
    Failing,
}

impl CameraStatus {
    fn of(state: &CameraState) -> CameraStatus {
        match state {
            CameraState::Connecting => CameraStatus::Connecting,
            CameraState::Streaming => CameraStatus::Streaming,
            CameraState::Failing { .. } => CameraStatus::Failing,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CameraStatus::Connecting => "connecting",
            CameraStatus::Streaming => "streaming",
            CameraStatus::Failing => "failing",
        }
    }
}

/// Two spaces (one over capacity, one not counted yet), a zone, a line
/// with more entries than a 16-bit register holds, a failing camera: the
/// exits' tests read it.
#[cfg(test)]
pub(crate) fn example_snapshot() -> LiveSnapshot {
    LiveSnapshot {
        spaces: vec![
            LiveCount {
                name: "hall".into(),
                occupancy: Some(41),
                capacity: Some(40),
            },
            LiveCount {
                name: "shop".into(),
                occupancy: None,
                capacity: None,
            },
        ],
        zones: vec![LiveCount {
            name: "lobby.queue".into(),
            occupancy: Some(3),
            capacity: Some(20),
        }],
        lines: vec![LineToday {
            name: "lobby.door".into(),
            day: jiff::civil::date(2026, 12, 2),
            entries: 70_000,
            exits: 4,
        }],
        cameras: vec![("lobby".into(), CameraStatus::Failing)],
    }
}

fn occupancy_payload(occupancy: u32, capacity: Option<u32>) -> String {
    json!({ "occupancy": occupancy, "capacity": capacity }).to_string()
}

fn occupancy_sensor(object: &str, name: &str, state_topic: String) -> Sensor {
    Sensor {
        object: format!("{object}_occupancy"),
        name: format!("{name} occupancy"),
        state_topic,
        value_template: "{{ value_json.occupancy }}",
        state_class: Some("measurement"),
        unit: Some("people"),
        diagnostic: false,
    }
}

/// A name as a discovery object id (`[a-zA-Z0-9_-]`): config names are
/// already `a-z0-9_-`, and the `.` of `camera.zone` becomes `__`.
fn object_id(name: &str) -> String {
    name.replace('.', "__")
}

/// The topic filters under which this appliance alone retains live
/// messages (its live topics, and its Home Assistant discovery configs
/// under `discovery_prefix`, the configured one or Home Assistant's
/// default): whatever the broker retains there that the feed no longer
/// holds is stale (a zone removed while the appliance was stopped, the
/// live feed turned off) and is cleared.
pub fn owned_filters(
    topic_prefix: &str,
    site: &str,
    discovery_prefix: Option<&str>,
) -> [String; 2] {
    [
        format!("{topic_prefix}/{site}/live/#"),
        format!(
            "{}/sensor/headcount_{}/#",
            discovery_prefix.unwrap_or("homeassistant"),
            object_id(site)
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::{LineDay, LiveOccupancy};
    use crate::health::HealthBoard;

    fn live(occupancy: u32, capacity: Option<u32>, camera: Option<&str>) -> LiveOccupancy {
        LiveOccupancy {
            camera: camera.map(CameraId::from),
            capacity,
            occupancy: Some(occupancy),
            updated_at: Some(1),
            method: None,
        }
    }

    fn view() -> BoardView {
        let mut view = BoardView::default();
        view.spaces.insert("hall".into(), live(12, Some(40), None));
        view.zones
            .insert("lobby.queue".into(), live(3, Some(20), Some("lobby")));
        view.zones
            .insert("lobby.desk".into(), live(1, Some(2), Some("lobby")));
        let mut unseen = live(0, Some(20), Some("lobby"));
        unseen.occupancy = None;
        view.zones.insert("lobby.stairs".into(), unseen);
        view.lines_today.insert(
            "lobby.door".into(),
            LineDay {
                day: jiff::civil::date(2026, 12, 2),
                entries: 7,
                exits: 4,
            },
        );
        view
    }

    // 2026-12-02 10:00 UTC, and the next day.
    const NOW: UnixMs = 1_796_205_600_000;
    const TOMORROW: UnixMs = NOW + 86_400_000;

    fn feed(discovery: bool) -> LiveFeed {
        LiveFeed::new(
            "headcount",
            "hq",
            LiveView::new(5, jiff::tz::TimeZone::UTC),
            discovery.then_some("homeassistant"),
            "1.0",
        )
    }

    fn cameras() -> BTreeMap<CameraId, CameraHealth> {
        let board = HealthBoard::new(&[CameraId::from("lobby")]);
        board.update(&CameraId::from("lobby"), |h| {
            h.state = CameraState::Failing {
                reason: "cannot reach rtsp://10.0.0.9".into(),
            }
        });
        board.snapshot()
    }

    fn payload(messages: &[Retained], topic: &str) -> Option<Value> {
        messages
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, p)| serde_json::from_str(p).unwrap())
    }

    #[test]
    fn spaces_zones_lines_and_cameras_are_published_small_and_unseen_zones_are_not() {
        let messages = feed(false).messages(&view(), &cameras(), NOW);
        assert_eq!(
            payload(&messages, "headcount/hq/live/space/hall"),
            Some(json!({"occupancy": 12, "capacity": 40}))
        );
        assert_eq!(
            payload(&messages, "headcount/hq/live/zone/lobby.queue"),
            Some(json!({"occupancy": 3, "capacity": 20}))
        );
        assert_eq!(
            payload(&messages, "headcount/hq/live/line/lobby.door"),
            Some(json!({"day": "2026-12-02", "entries": 7, "exits": 4}))
        );
        // The state, never the reason, which names a host.
        assert_eq!(
            payload(&messages, "headcount/hq/live/camera/lobby"),
            Some(json!({"state": "failing"}))
        );
        let topics: Vec<&str> = messages.iter().map(|(t, _)| t.as_str()).collect();
        assert!(
            !topics
                .iter()
                .any(|t| t.contains("desk") || t.contains("stairs")),
            "{topics:?}"
        );
        assert_eq!(messages.len(), 4, "{topics:?}");
    }

    struct NoSecrets;

    impl crate::config::SecretSource for NoSecrets {
        fn env(&self, _: &str) -> Option<String> {
            None
        }
        fn file(&self, _: &std::path::Path) -> Option<String> {
            None
        }
    }

    #[test]
    fn a_space_that_counts_a_small_zone_is_left_out() {
        let text = "[cameras.lobby]\nurl = \"testsrc:ball\"\n\
            [cameras.lobby.zones.desk]\npolygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]]\n\
            capacity = 2\nsmall_zone_justification = \"the reception desk\"\n\
            [cameras.lobby.zones.queue]\npolygon = [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0]]\n\
            [spaces.front]\nzones = [\"lobby.desk\", \"lobby.queue\"]\n\
            [spaces.waiting]\nzones = [\"lobby.queue\"]\n";
        let config = Config::parse(text, std::path::Path::new("/etc/headcount"), &NoSecrets)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut board = BoardView::default();
        board.spaces.insert("front".into(), live(3, None, None));
        board.spaces.insert("waiting".into(), live(2, None, None));
        let snapshot = LiveView::from_config(&config).snapshot(&board, &BTreeMap::new(), NOW);
        let spaces: Vec<&str> = snapshot.spaces.iter().map(|s| s.name.as_str()).collect();
        // front = desk + queue: with the queue's count, the desk's follows.
        assert_eq!(spaces, ["waiting"]);
    }

    #[test]
    fn a_new_day_reads_zero_until_its_first_crossing() {
        let messages = feed(false).messages(&view(), &cameras(), TOMORROW);
        assert_eq!(
            payload(&messages, "headcount/hq/live/line/lobby.door"),
            Some(json!({"day": "2026-12-03", "entries": 0, "exits": 0}))
        );
    }

    #[test]
    fn discovery_announces_each_sensor_first_with_the_status_as_availability() {
        let messages = feed(true).messages(&view(), &cameras(), NOW);
        let configs: Vec<&Retained> = messages
            .iter()
            .take_while(|(t, _)| t.starts_with("homeassistant/"))
            .collect();
        // space, zone, line in and out, camera.
        assert_eq!(configs.len(), 5, "{messages:?}");
        assert_eq!(messages.len(), 9);
        let door = payload(
            &messages,
            "homeassistant/sensor/headcount_hq/line_lobby__door_entries/config",
        )
        .unwrap();
        assert_eq!(door["state_topic"], "headcount/hq/live/line/lobby.door");
        assert_eq!(door["value_template"], "{{ value_json.entries }}");
        assert_eq!(door["state_class"], "total_increasing");
        assert_eq!(door["availability_topic"], "headcount/hq/status");
        assert_eq!(door["unique_id"], "headcount_hq_line_lobby__door_entries");
        assert_eq!(door["device"]["identifiers"], json!(["headcount_hq"]));
        let camera = payload(
            &messages,
            "homeassistant/sensor/headcount_hq/camera_lobby/config",
        )
        .unwrap();
        assert_eq!(camera["entity_category"], "diagnostic");
        assert!(camera.get("state_class").is_none());
    }
}
