use super::*;
use crate::pixels::mask::PrivacyMask;
use std::collections::HashMap;

struct FakeSecrets(HashMap<&'static str, &'static str>);

impl SecretSource for FakeSecrets {
    fn env(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|s| s.to_string())
    }
    fn file(&self, _: &Path) -> Option<String> {
        None
    }
    fn sealed(&self, _: &Path, name: &str) -> Result<String, String> {
        self.0
            .get(name)
            .map(|s| s.to_string())
            .ok_or_else(|| format!("no sealed secret {name}"))
    }
}

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    let secrets = FakeSecrets(HashMap::from([("LOBBY_PW", "hunter2")]));
    Config::parse(text, Path::new("/etc/headcount"), &secrets)
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

const GOOD: &str = r#"
[appliance]
site = "hq"
state_dir = "state"

[defaults]
analysis_fps = 2
transport = "udp"

[cameras.lobby]
url = "rtsp://10.0.0.21:554/stream2"
credentials = { user = "viewer", password_ref = "env:LOBBY_PW" }
purpose = "fire-safety occupancy"
analysis_fps = 1

[cameras.lobby.zones.waiting_area]
polygon = [[0.1, 0.55], [0.62, 0.55], [0.7, 0.98], [0.05, 0.98]]
capacity = 25

[cameras.yard]
url = "testsrc:ball"
"#;

#[test]
fn a_good_config_is_typed_and_merged_with_defaults() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.site, "hq");
    assert_eq!(c.state_dir, PathBuf::from("/etc/headcount/state"));
    assert_eq!(
        c.database,
        PathBuf::from("/etc/headcount/state/headcount.db")
    );
    assert_eq!(c.api.bind, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.api.tls, Tls::Off);
    let lobby = &c.cameras[0];
    assert_eq!(&*lobby.id, "lobby");
    assert_eq!(lobby.analysis_fps, 1.0);
    match &lobby.source {
        Source::Rtsp {
            transport,
            credentials: Some(creds),
            ..
        } => {
            assert_eq!(*transport, Transport::Udp);
            assert_eq!(creds.password.expose(), "hunter2");
        }
        other => panic!("unexpected source {other:?}"),
    }
    assert_eq!(lobby.zones[0].capacity, Some(25));
    assert_eq!(c.cameras[1].analysis_fps, 2.0);
    assert_eq!(
        c.cameras[1].source,
        Source::TestPattern {
            pattern: "ball".into()
        }
    );
    assert_eq!(lobby.zones[0].name, "waiting_area");
}

#[test]
fn secrets_never_show_in_debug_output() {
    let c = parse(GOOD).unwrap();
    let dump = format!("{c:?}");
    assert!(!dump.contains("hunter2"), "{dump}");
    assert!(dump.contains("Secret(***)"));
}

#[test]
fn every_error_is_reported_at_once_with_its_key_path() {
    let text = r#"
[api]
bind = "0.0.0.0:8080"
tls = false
lockout_failures = 0
token_burst = 0
token_rate = -1.0

[security]
syslog = "tcp:10.0.0.1:514"

[cameras.lobby]
url = "rtsp://admin:secret@10.0.0.5/live"
transport = "carrier-pigeon"

[cameras.lobby.zones.entrance]
polygon = [[0.1, 0.1], [0.5, 1.5]]
capacity = 0

[cameras.hall]
url = "rtsp://10.0.0.6/live"
credentials = { user = "v", password_ref = "env:MISSING_PW" }
analysis_fps = 0

[cameras.hall.zones.desk]
polygon = [[0.1, 0.1], [0.2, 0.1], [0.2]]

[privacy]
mask_scale = 9
detection_deadline_ms = 5
"#;
    let got = errors(text);
    let expected = [
        "api.tls: cannot be false: `0.0.0.0:8080` is beyond loopback, where the API is only served over TLS",
        "api.lockout_failures: must be at least 1",
        "api.token_burst: must be between 1 and 1000000",
        "api.token_rate: -1 is outside (0, 100000] requests a second",
        "security.syslog: `tcp:10.0.0.1:514` is not unix:/ABSOLUTE/PATH, udp:ADDRESS:PORT or none",
        "cameras.hall.analysis_fps: 0 is outside (0, 30]",
        "cameras.hall.credentials.password_ref: environment variable MISSING_PW is not set",
        "cameras.hall.zones.desk.polygon[2]: needs 2 coordinates [x, y], has 1",
        "cameras.lobby.transport: `carrier-pigeon` is not one of tcp, udp, auto",
        "cameras.lobby.zones.entrance.polygon: needs at least 3 points, has 2",
        "cameras.lobby.zones.entrance.polygon[1]: [0.5, 1.5] is outside the frame; coordinates are fractions in [0, 1]",
        "cameras.lobby.zones.entrance.capacity: must be at least 1 (leave it out for no capacity)",
        "cameras.lobby.url: must not contain credentials; use credentials = { user = ..., password_ref = \"env:NAME\" }",
        "privacy.mask_scale: 9 is outside [1, 3]",
        "privacy.detection_deadline_ms: 5 is outside [100, 60000]",
    ];
    for e in &expected {
        assert!(got.contains(&e.to_string()), "missing {e:?} in {got:#?}");
    }
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    assert!(
        !got.iter().any(|e| e.contains("secret")),
        "a password leaked into an error: {got:#?}"
    );
}

#[test]
fn unknown_keys_and_wrong_types_are_named() {
    let text = r#"
[apliance]
site = "x"

[cameras.lobby]
url = "testsrc:ball"
fps = 3

[cameras.hall]
url = "testsrc:ball"
[cameras.hall.zones.a]
polygon = [[0, 0], [1, 0], [1, 1]]
capacity = "twenty"
"#;
    let got = errors(text);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(got[0].starts_with("apliance: unknown section"), "{got:#?}");
    assert!(
        got.iter()
            .any(|e| e.starts_with("cameras.hall.zones.a.capacity: invalid type")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|e| e.starts_with("cameras.lobby") && e.contains("unknown field `fps`")),
        "{got:#?}"
    );
}

#[test]
fn syntax_errors_and_missing_cameras() {
    assert!(errors("[cameras.lobby\nurl=1")[0].starts_with("not valid TOML"));
    assert_eq!(
        errors("[appliance]\nsite = \"x\"\n"),
        ["cameras: at least one camera is needed"]
    );
    assert_eq!(
        errors("[cameras.Lobby]\nurl = \"ftp://x\"\n"),
        [
            "cameras.Lobby: name `Lobby` must be 1-64 characters of a-z, 0-9, _ and -",
            "cameras.Lobby.url: `ftp://x` is not an rtsp://, rtsps://, file: or testsrc: URL",
        ]
    );
}

#[test]
fn the_shipped_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    for name in ["demo.toml", "example.toml"] {
        let secrets = FakeSecrets(HashMap::from([("lobby", "x"), ("YARD_CAM_PASSWORD", "y")]));
        if let Err(e) = Config::load(&root.join(name), &secrets) {
            panic!("{name}:\n{e}");
        }
    }
}

#[test]
fn masks_and_exclusions_are_checked_as_outlines_all_at_once() {
    let found = errors(
        r#"
[cameras.lobby]
url = "testsrc:ball"
[cameras.lobby.masks.window]
polygon = [[0.7, 0.1], [1.3, 0.1], [0.9, 0.4]]
[cameras.lobby.masks.desk]
polygon = [[0.2, 0.2], [0.8, 0.8], [0.8, 0.2], [0.2, 0.8]]
[cameras.lobby.masks.line]
polygon = [[0.2, 0.2], [0.8, 0.8]]
[cameras.lobby.exclusions.poster]
polygon = [[0.1, 0.1], [0.3, 0.3], [0.3, 0.1], [0.1, 0.3]]
"#,
    );
    let expected = [
        "cameras.lobby.masks.window.polygon[1]: [1.3, 0.1] is outside the frame",
        "cameras.lobby.masks.desk.polygon: edges 0 and 2 cross",
        "cameras.lobby.masks.line.polygon: needs at least 3 points, has 2",
        "cameras.lobby.exclusions.poster.polygon: edges 0 and 2 cross",
    ];
    for e in expected {
        assert!(
            found.iter().any(|f| f.starts_with(e)),
            "missing {e:?} in {found:#?}"
        );
    }
    // Good ones parse, and the mask is the camera's.
    let config = Config::parse(
        r#"
[cameras.lobby]
url = "testsrc:ball"
[cameras.lobby.masks.window]
polygon = [[0.7, 0.1], [0.95, 0.1], [0.95, 0.4], [0.7, 0.4]]
[cameras.lobby.exclusions.poster]
polygon = [[0.1, 0.1], [0.3, 0.1], [0.3, 0.3]]
"#,
        Path::new("/"),
        &SystemSecrets,
    )
    .unwrap();
    let lobby = &config.cameras[0];
    assert_eq!((lobby.masks.len(), lobby.exclusions.len()), (1, 1));
    assert_eq!(lobby.masks[0].name, "window");
    assert_ne!(lobby.privacy_mask(), PrivacyMask::default());
}

#[test]
fn geometry_and_space_errors_are_reported_together() {
    let found = errors(
        r#"
[appliance]
timezone = "Mars/Olympus"
[cameras.lobby]
url = "testsrc:ball"
[cameras.lobby.zones.bow_tie]
polygon = [[0.2, 0.2], [0.8, 0.8], [0.8, 0.2], [0.2, 0.8]]
[cameras.lobby.zones.offscreen]
polygon = [[0.2, 0.2], [1.2, 0.2], [0.5, 0.9]]
[cameras.lobby.lines.door]
points = [[0.5, 0.5], [0.5, 0.5]]
in = "left"
[cameras.lobby.lines.gate]
points = [[0.1, 0.5], [0.9, 0.5]]
in = "inside"
[cameras.lobby.lines.stub]
points = [[0.1, 0.5]]
in = "right"
[spaces.hall]
zones = ["lobby.waiting", "attic.room"]
entrances = ["lobby.gate"]
reset_at = "25:00"
[spaces.empty]
capacity = 0
"#,
    );
    let expected = [
        "appliance.timezone: `Mars/Olympus` is not a time zone",
        "cameras.lobby.zones.bow_tie.polygon: edges 0 and 2 cross",
        "cameras.lobby.zones.offscreen.polygon[1]: [1.2, 0.2] is outside the frame",
        "cameras.lobby.lines.door.points: the two points are (almost) the same",
        "cameras.lobby.lines.gate.in: `inside` is not left or right",
        "cameras.lobby.lines.stub.points: a line has 2 points",
        "spaces.empty: needs zones",
        "spaces.empty.capacity: must be at least 1",
        "spaces.hall.zones[0]: `lobby.waiting` is not a zone of any camera",
        "spaces.hall.zones[1]: `attic.room` is not a zone of any camera",
        "spaces.hall.entrances[0]: `lobby.gate` is not a line of any camera",
        "spaces.hall.reset_at: `25:00` is not a time of day",
    ];
    for e in expected {
        assert!(
            found.iter().any(|f| f.starts_with(e)),
            "missing {e:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn lines_spaces_and_the_time_zone_are_typed() {
    let c = parse(
        r#"
[appliance]
timezone = "Europe/Berlin"
[cameras.lobby]
url = "testsrc:ball"
[cameras.lobby.zones.hall]
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 0.5], [0.0, 0.5]]
[cameras.lobby.lines.door]
points = [[0.1, 0.5], [0.9, 0.5]]
in = "left"
[spaces.building]
zones = ["lobby.hall"]
entrances = ["lobby.door"]
capacity = 80
reset_at = "03:30"
"#,
    )
    .unwrap();
    let line = &c.cameras[0].lines[0];
    assert_eq!((line.name.as_str(), line.in_side), ("door", Side::Left));
    assert_eq!(line.end, Point { x: 0.9, y: 0.5 });
    let space = &c.spaces[0];
    assert_eq!(space.entrances, ["lobby.door"]);
    assert_eq!(space.reset_at, Some(jiff::civil::time(3, 30, 0, 0)));
    assert_eq!(
        c.timezone,
        jiff::tz::TimeZone::get("Europe/Berlin").unwrap()
    );
    assert_eq!(c.detection.person_low_threshold, 0.3);
}

#[test]
fn tls_is_on_beyond_loopback_and_off_only_on_loopback() {
    let with_api = |api: &str| {
        let text = format!("[api]\n{api}\n[cameras.a]\nurl = \"testsrc:ball\"\n");
        parse(&text).map(|c| c.api.tls)
    };
    assert_eq!(with_api("bind = \"127.0.0.1:8080\""), Ok(Tls::Off));
    assert_eq!(with_api("bind = \"[::1]:8080\""), Ok(Tls::Off));
    assert_eq!(with_api("bind = \"0.0.0.0:8443\""), Ok(Tls::SelfSigned));
    assert_eq!(
        with_api("bind = \"192.168.1.10:8443\""),
        Ok(Tls::SelfSigned)
    );
    assert_eq!(
        with_api("bind = \"127.0.0.1:8443\"\ntls = true"),
        Ok(Tls::SelfSigned)
    );
    assert_eq!(
        with_api("bind = \"0.0.0.0:8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\""),
        Ok(Tls::Supplied {
            cert: "/etc/headcount/c.pem".into(),
            key: "/etc/headcount/k.pem".into()
        })
    );
    let errs = with_api("bind = \"0.0.0.0:8443\"\ntls_cert = \"c.pem\"").unwrap_err();
    assert_eq!(
        errs.0[0].to_string(),
        "api.tls_key: is needed with api.tls_cert"
    );
}

#[test]
fn a_sealed_secret_is_looked_up_in_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    crate::security::SecretsFile::in_state_dir(dir.path())
        .set("lobby", "sealed-pw")
        .unwrap();
    let text = format!(
        "[appliance]\nstate_dir = {:?}\n[cameras.a]\nurl = \"rtsp://10.0.0.5/live\"\n\
         credentials = {{ user = \"u\", password_ref = \"secret:lobby\" }}\n\
         [cameras.b]\nurl = \"rtsp://10.0.0.6/live\"\n\
         credentials = {{ user = \"u\", password_ref = \"secret:nobody\" }}\n",
        dir.path()
    );
    let errs = Config::parse(&text, Path::new("/"), &SystemSecrets).unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    assert_eq!(errs.0[0].path, "cameras.b.credentials.password_ref");
    assert!(errs.0[0].message.contains("secrets set nobody"), "{errs}");
    let text = text.replace("secret:nobody", "secret:lobby");
    let config = Config::parse(&text, Path::new("/"), &SystemSecrets).unwrap();
    match &config.cameras[0].source {
        Source::Rtsp {
            credentials: Some(c),
            ..
        } => assert_eq!(c.password.expose(), "sealed-pw"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_controller_and_legal_bases_are_checked_and_optional() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.controller, None);
    assert_eq!(c.cameras[0].legal_basis, DEFAULT_LEGAL_BASIS);
    let found = errors(
        r#"
[controller]
name = "  "
dpo_contact = ""
recipients = ["Fire safety officer", "", "Fire safety officer"]
[cameras.lobby]
url = "testsrc:ball"
legal_basis = ""
"#,
    );
    assert_eq!(
        found,
        [
            "cameras.lobby.legal_basis: must not be empty (leave it out instead)",
            "controller.name: must not be empty",
            "controller.contact: is required",
            "controller.dpo_contact: must not be empty (leave it out instead)",
            "controller.recipients[1]: must not be empty",
            "controller.recipients[2]: `Fire safety officer` is listed twice",
        ]
    );
    let c = parse(&format!(
        "{GOOD}\n[controller]\nname = \"ACME\"\ncontact = \"Main St 1\\n12345 Town\"\n"
    ))
    .unwrap();
    let controller = c.controller.unwrap();
    assert_eq!(controller.contact, "Main St 1\n12345 Town");
    assert!(controller.recipients.is_empty());
}

#[test]
fn governance_sections_are_checked_all_at_once() {
    let text = r#"
[cameras.lobby]
url = "testsrc:ball"

[retention]
audit_log = "6y"
aggregates_1m = "10m"
aggregates_15m = "1d"
events = "forever"
recordings = "30d"
aggregates_1d = "12y"
[retention.justification]
aggregates_1d = "municipal statistics law keeps daily counts 12 years"
snapshots = "no reason"

[aggregates]
k = 1
epsilon = 0.5

[mqtt]
broker = "mqtt://broker.example.net:1883"
topic_prefix = "city/#"
"#;
    let got = errors(text);
    for want in [
        "retention.audit_log: 6y exceeds the maximum of 3y for audit_log; keeping it longer needs retention.justification.audit_log",
        "retention.aggregates_1m: 10m is shorter than the 1h this class needs",
        "retention.aggregates_15m: 1d is shorter than the 25h this class needs",
        "retention.events: `forever` is not a lifetime",
        "retention.recordings: unknown data class",
        "retention.justification.snapshots: justifies no lifetime",
        "aggregates.k: 1 is outside [2, 100]",
        "aggregates.differential_privacy: is off, yet epsilon or daily_epsilon is set",
        "mqtt.broker: `broker.example.net` is beyond loopback: use mqtts://",
        "mqtt.topic_prefix: must be non-empty, without +, # or a trailing /",
    ] {
        assert!(got.iter().any(|e| e.starts_with(want)), "missing `{want}` in {got:#?}");
    }
    assert_eq!(got.len(), 10, "{got:#?}");
}

#[test]
fn a_client_certificate_needs_its_key_and_tls() {
    let mqtt = |broker: &str, auth: &str| {
        format!("[cameras.lobby]\nurl = \"testsrc:ball\"\n[mqtt]\nbroker = {broker}\n{auth}")
    };
    let tls = "\"mqtts://broker.example.net\"\nca_file = \"ca.pem\"";
    assert_eq!(
        errors(&mqtt(tls, "client_cert = \"me.pem\"\n")),
        ["mqtt.client_key: is needed with mqtt.client_cert (the PEM private key of the appliance's certificate)"]
    );
    assert_eq!(
        errors(&mqtt(
            "\"mqtt://127.0.0.1\"",
            "client_cert = \"me.pem\"\nclient_key = \"me.key\"\n"
        )),
        ["mqtt.client_cert: is only used with mqtts://"]
    );
    let both = mqtt(tls, "client_cert = \"me.pem\"\nclient_key = \"me.key\"\n");
    assert_eq!(
        parse(&both).unwrap().mqtt.unwrap().client_auth,
        Some((
            PathBuf::from("/etc/headcount/me.pem"),
            PathBuf::from("/etc/headcount/me.key")
        ))
    );
}

#[test]
fn a_location_is_latitude_then_longitude_in_degrees() {
    let with = |location: &str| {
        format!("[appliance]\nlocation = {location}\n[cameras.lobby]\nurl = \"testsrc:ball\"\n")
    };
    assert_eq!(
        parse(&with("[52.52, 13.4]")).unwrap().location,
        Some((52.52, 13.4))
    );
    for bad in ["[13.4]", "[95.0, 13.4]", "[52.5, 200.0]", "[1.0, 2.0, 3.0]"] {
        let got = errors(&with(bad));
        assert_eq!(got.len(), 1, "{bad}: {got:?}");
        assert!(got[0].starts_with("appliance.location: "), "{got:?}");
    }
}

#[test]
fn bacnet_keys_are_checked_all_at_once() {
    let text = r#"
[cameras.lobby]
url = "testsrc:ball"
[bacnet]
bind = "building-network"
max_subscriptions = 2
"#;
    assert_eq!(
        errors(text),
        [
            "bacnet.bind: `building-network` is not an address (and port), such as 192.168.10.20 or 192.168.10.20:47808",
            "bacnet.device_instance: is needed: a number in [0, 4194302], unique on the BACnet network",
            "bacnet.max_subscriptions: 2 is outside [4, 1024]",
        ]
    );
    let good = "[cameras.lobby]\nurl = \"testsrc:ball\"\n[bacnet]\nbind = \"192.168.10.20\"\ndevice_instance = 4711\n";
    let bacnet = parse(good).unwrap().bacnet.unwrap();
    assert_eq!(
        (
            bacnet.bind.port(),
            bacnet.device_instance,
            bacnet.max_subscriptions
        ),
        (47808, 4711, 64)
    );
}

#[test]
fn modbus_keys_are_checked_all_at_once() {
    let text = r#"
[cameras.lobby]
url = "testsrc:ball"
[modbus]
bind = "building-network"
max_connections = 0
idle_secs = 1
"#;
    assert_eq!(
        errors(text),
        [
            "modbus.bind: `building-network` is not an address:port such as 192.168.1.20:502",
            "modbus.max_connections: 0 is outside [1, 64]",
            "modbus.idle_secs: 1 is outside [5, 3600] s",
        ]
    );
    let good = "[cameras.lobby]\nurl = \"testsrc:ball\"\n[modbus]\nbind = \"192.168.10.20:502\"\n";
    let modbus = parse(good).unwrap().modbus.unwrap();
    assert_eq!(
        (modbus.bind.port(), modbus.max_connections, modbus.idle_secs),
        (502, 8, 60)
    );
}

#[test]
fn home_assistant_discovery_needs_the_live_feed_and_a_clean_prefix() {
    let text = r#"
[cameras.lobby]
url = "testsrc:ball"
[mqtt]
broker = "mqtt://127.0.0.1:1883"
home_assistant = true
discovery_prefix = "ha/#"
"#;
    assert_eq!(
        errors(text),
        [
            "mqtt.discovery_prefix: must be non-empty, without +, # or a trailing /",
            "mqtt.home_assistant: needs mqtt.live = true: the sensors it announces read the live topics",
        ]
    );
    let stray = text.replace("home_assistant = true\n", "");
    assert_eq!(
        errors(&stray),
        ["mqtt.discovery_prefix: is only used with mqtt.home_assistant = true"]
    );
    let good = text
        .replace(
            "home_assistant = true",
            "live = true\nhome_assistant = true",
        )
        .replace("ha/#", "homeassistant");
    let mqtt = parse(&good).unwrap().mqtt.unwrap();
    assert!(mqtt.live);
    assert_eq!(mqtt.home_assistant.as_deref(), Some("homeassistant"));
}

#[test]
fn a_justified_lifetime_beyond_the_maximum_is_kept_with_its_reason() {
    let text = r#"
[cameras.lobby]
url = "testsrc:ball"
[retention]
aggregates_1d = "12y"
[retention.justification]
aggregates_1d = "municipal statistics law"
[aggregates]
differential_privacy = true
[mqtt]
broker = "mqtts://broker.example.net"
ca_file = "ca.pem"
"#;
    let c = parse(text).unwrap();
    let limit = c.retention.get(crate::retention::DataClass::Aggregates1d);
    assert_eq!(limit.limit_ms, 12 * 365 * 86_400_000);
    assert_eq!(
        limit.justification.as_deref(),
        Some("municipal statistics law")
    );
    assert_eq!(c.aggregates.k, 5);
    assert_eq!(
        c.aggregates.differential_privacy,
        // By default a day's budget holds every release of every space
        // (one space here: 96 quarter-hours, 24 hours and the day).
        Some(super::DpConfig {
            epsilon: 1.0,
            daily_epsilon: 121.0
        })
    );
    let mqtt = c.mqtt.unwrap();
    assert_eq!(
        (mqtt.host.as_str(), mqtt.port),
        ("broker.example.net", 8883)
    );
    assert_eq!(
        mqtt.tls_ca_file,
        Some(PathBuf::from("/etc/headcount/ca.pem"))
    );
    assert_eq!(mqtt.client_id, "headcount-headcount");
}

#[test]
fn anomaly_keys_are_checked_all_at_once() {
    let text = r#"
[anomalies]
capacity_hold_secs = -1
[anomalies.webhook]
url = "http://hooks.example.net/anomalies"

[cameras.lobby]
url = "testsrc:ball"
[cameras.lobby.tamper]
sensitivity = "extreme"
[cameras.lobby.zones.door]
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
capacity = 10
capacity_clear = 10
[cameras.lobby.zones.desk]
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
loiter_minutes = 0
[cameras.lobby.zones.hall]
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
[cameras.lobby.lines.gate]
points = [[0.1, 0.5], [0.9, 0.5]]
in = "left"
one_way = "both"

[spaces.floor]
zones = ["lobby.hall"]
capacity_clear = 5
[spaces.floor.schedule]
timezone = "Mars/Olympus"
mon = "18:00-08:00"
[spaces.floor.unusual]
min_weeks = 0
"#;
    let got = errors(text);
    let expected = [
        "anomalies.capacity_hold_secs: -1 is outside [0, 3600] seconds",
        "anomalies.webhook.url: `hooks.example.net` is beyond loopback: use https://",
        "cameras.lobby.tamper.sensitivity: `extreme` is not one of low, medium, high, off",
        "cameras.lobby.zones.door.capacity_clear: 10 must be below the capacity (10)",
        "cameras.lobby.zones.desk.loiter_minutes: 0 is outside (0, 1440] minutes",
        "cameras.lobby.lines.gate.one_way: `both` is not in or out",
        "spaces.floor.capacity_clear: needs a capacity to clear below",
        "spaces.floor.schedule.timezone: `Mars/Olympus` is not a time zone",
        "spaces.floor.schedule.mon: range 18:00-08:00 ends before it starts",
        "spaces.floor.unusual.min_weeks: 0 is outside [1, 8]",
    ];
    for want in expected {
        assert!(
            got.iter().any(|e| e.starts_with(want)),
            "missing `{want}` in {got:#?}"
        );
    }
    assert_eq!(got.len(), expected.len(), "{got:#?}");
}

#[test]
fn more_anomaly_key_errors_name_their_keys() {
    let text = r#"
[anomalies]
after_hours_hold_secs = 7200
[anomalies.webhook]
url = "http://alice:pw@127.0.0.1:9000/in"
retries = 21
timeout_secs = 0

[cameras.lobby]
url = "testsrc:ball"
[cameras.lobby.tamper]
learning_secs = 1
frozen_secs = 1
stream_loss_secs = 1
fps = 3
"#;
    let got = errors(text);
    for want in [
        "anomalies.after_hours_hold_secs: 7200 is outside [0, 3600] seconds",
        "anomalies.webhook.url: must not contain credentials",
        "cameras.lobby.tamper",
    ] {
        assert!(
            got.iter().any(|e| e.starts_with(want)),
            "missing `{want}` in {got:#?}"
        );
    }
    assert!(
        !got.iter()
            .any(|e| e.contains("alice") || e.contains(":pw@")),
        "the webhook's credentials leaked into an error: {got:#?}"
    );
    let text = r#"
[anomalies.webhook]
url = "http://localhost:9000/in"
ca_file = "ca.pem"
retries = 21
timeout_secs = 0
[cameras.lobby]
url = "testsrc:ball"
[cameras.lobby.tamper]
learning_secs = 1
frozen_secs = 1
stream_loss_secs = 1
[cameras.lobby.zones.door]
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
loiter_minutes = 1441
[spaces.floor]
zones = ["lobby.door"]
[spaces.floor.schedule]
mon = "8-18"
after_hours_min = 0
drift_tolerance = -1
drift_miss_rate = 0.5
[spaces.floor.unusual]
threshold = 0.5
min_difference = -1
"#;
    let got = errors(text);
    let expected = [
        "anomalies.webhook.ca_file: is only used with https://",
        "anomalies.webhook.retries: 21 is more than 20",
        "anomalies.webhook.timeout_secs: 0 is outside [0.1, 120] seconds",
        "cameras.lobby.tamper.learning_secs: 1 is outside [5, 3600] seconds",
        "cameras.lobby.tamper.frozen_secs: 1 is outside [2, 3600] seconds",
        "cameras.lobby.tamper.stream_loss_secs: 1 is outside [2, 3600] seconds",
        "cameras.lobby.zones.door.loiter_minutes: 1441 is outside (0, 1440] minutes",
        "spaces.floor.schedule.mon: `8-18` is not HH:MM-HH:MM ranges",
        "spaces.floor.schedule.after_hours_min: 0 is not a whole number in [1, 10000]",
        "spaces.floor.schedule.drift_tolerance: -1 is not a whole number in [0, 10000]",
        "spaces.floor.schedule.drift_miss_rate: 0.5 is not a share in [0, 0.1]",
        "spaces.floor.unusual.threshold: 0.5 is outside [1, 50]",
        "spaces.floor.unusual.min_difference: -1 is outside [0, 100000]",
    ];
    for want in expected {
        assert!(
            got.iter().any(|e| e.starts_with(want)),
            "missing `{want}` in {got:#?}"
        );
    }
    // The zone with a bad loiter limit is dropped, so the space naming it
    // reports that too.
    assert!(
        got.iter()
            .any(|e| e.starts_with("spaces.floor.zones[0]: `lobby.door` is not a zone")),
        "{got:#?}"
    );
    assert_eq!(got.len(), expected.len() + 1, "{got:#?}");
}

#[test]
fn anomaly_settings_are_typed_with_their_defaults() {
    use super::anomaly::{AnomalyConfig, TamperSettings};
    use crate::anomaly::baseline::BaselineSettings;
    use crate::anomaly::tamper::Sensitivity;

    // Without any anomaly keys: tamper on at medium, stream loss after
    // 30 s, 90 % of the capacity to clear, 30 s and 60 s holds, no webhook.
    let c = parse(GOOD).unwrap();
    assert_eq!(c.anomalies, AnomalyConfig::default());
    assert_eq!(c.anomalies.capacity_hold_ms, 30_000);
    assert_eq!(c.anomalies.after_hours_hold_ms, 60_000);
    assert_eq!(c.anomalies.webhook, None);
    let lobby = &c.cameras[0];
    assert_eq!(
        lobby.tamper,
        Some(TamperSettings {
            sensitivity: Sensitivity::Medium,
            learning_ms: 60_000,
            frozen_ms: 20_000,
        })
    );
    assert_eq!(lobby.stream_loss_ms, 30_000);
    assert_eq!(lobby.zones[0].capacity, Some(25));
    assert_eq!(lobby.zones[0].capacity_clear, Some(22));
    assert_eq!(lobby.zones[0].loiter_ms, None);

    let text = r#"
[appliance]
timezone = "Europe/Berlin"
[anomalies]
capacity_hold_secs = 10
after_hours_hold_secs = 0
[anomalies.webhook]
url = "https://hooks.example.net:8443/in?site=hq"
secret_ref = "env:LOBBY_PW"
ca_file = "ca.pem"
retries = 3
timeout_secs = 2.5

[cameras.lobby]
url = "testsrc:ball"
[cameras.lobby.tamper]
sensitivity = "high"
learning_secs = 120
frozen_secs = 10
stream_loss_secs = 5
[cameras.lobby.zones.door]
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
capacity = 10
capacity_clear = 6
loiter_minutes = 2.5
[cameras.lobby.lines.entrance]
points = [[0.1, 0.5], [0.9, 0.5]]
in = "left"
one_way = "in"
[cameras.lobby.lines.exit]
points = [[0.1, 0.8], [0.9, 0.8]]
in = "left"
one_way = "out"
[cameras.lobby.lines.side]
points = [[0.1, 0.2], [0.9, 0.2]]
in = "left"

[cameras.yard]
url = "testsrc:ball"
[cameras.yard.tamper]
sensitivity = "off"
stream_loss_secs = 90

[spaces.shop]
zones = ["lobby.door"]
capacity = 7
[spaces.shop.schedule]
mon = "08:00-12:00, 13:00-18:00"
exceptions = { "2025-12-24" = "closed" }
after_hours_min = 3
drift_tolerance = 0
drift_miss_rate = 0.02
[spaces.shop.unusual]
threshold = 6
min_difference = 2.5
min_weeks = 4

[spaces.building]
entrances = ["lobby.entrance", "lobby.exit"]
capacity = 50
capacity_clear = 40
[spaces.building.schedule]
timezone = "America/New_York"
sun = "24h"
[spaces.building.unusual]
enabled = false

[spaces.plain]
zones = ["lobby.door"]
"#;
    let c = parse(text).unwrap();
    assert_eq!(c.anomalies.capacity_hold_ms, 10_000);
    assert_eq!(c.anomalies.after_hours_hold_ms, 0);
    let hook = c.anomalies.webhook.as_ref().unwrap();
    // The query may hold the receiver's token: messages leave it out.
    assert_eq!(hook.url, "https://hooks.example.net:8443/in");
    assert_eq!(
        (hook.host.as_str(), hook.port, hook.path.as_str(), hook.tls),
        ("hooks.example.net", 8443, "/in?site=hq", true)
    );
    assert_eq!(hook.ca_file, Some(PathBuf::from("/etc/headcount/ca.pem")));
    assert_eq!(hook.secret.as_ref().unwrap().expose(), "hunter2");
    assert_eq!((hook.retries, hook.timeout_ms), (3, 2500));
    assert!(!format!("{hook:?}").contains("hunter2"));

    let lobby = &c.cameras[0];
    assert_eq!(
        lobby.tamper,
        Some(TamperSettings {
            sensitivity: Sensitivity::High,
            learning_ms: 120_000,
            frozen_ms: 10_000,
        })
    );
    assert_eq!(lobby.stream_loss_ms, 5_000);
    let door = &lobby.zones[0];
    assert_eq!(
        (door.capacity, door.capacity_clear, door.loiter_ms),
        (Some(10), Some(6), Some(150_000))
    );
    let way = |name: &str| lobby.lines.iter().find(|l| l.name == name).unwrap().one_way;
    assert_eq!(way("entrance"), Some(Way::In));
    assert_eq!(way("exit"), Some(Way::Out));
    assert_eq!(way("side"), None);
    let yard = &c.cameras[1];
    assert_eq!((yard.tamper, yard.stream_loss_ms), (None, 90_000));

    let space = |name: &str| c.spaces.iter().find(|s| s.name == name).unwrap();
    let shop = space("shop");
    // 90 % of 7 is 6.3: rounded down.
    assert_eq!(shop.capacity_clear, Some(6));
    let hours = shop.schedule.as_ref().unwrap();
    assert_eq!(
        (
            hours.after_hours_min,
            hours.drift_tolerance,
            hours.drift_miss_rate
        ),
        (3, 0, 0.02)
    );
    // In the appliance's zone: Monday 2025-11-24 09:00 in Berlin is 08:00 UTC.
    let monday_0800_utc: i64 = 1_763_971_200_000;
    assert_eq!(
        hours.schedule.time_zone(),
        &jiff::tz::TimeZone::get("Europe/Berlin").unwrap()
    );
    assert!(hours.schedule.is_open(monday_0800_utc));
    // 12:30 Berlin: the lunch break; Tuesday: closed (left out).
    assert!(!hours
        .schedule
        .is_open(monday_0800_utc + 3 * 3_600_000 + 1_800_000));
    assert!(!hours.schedule.is_open(monday_0800_utc + 24 * 3_600_000));
    assert_eq!(
        shop.unusual.as_ref().unwrap().settings,
        BaselineSettings {
            threshold: 6.0,
            min_difference: 2.5,
            min_weeks: 4,
        }
    );

    let building = space("building");
    assert_eq!(building.capacity_clear, Some(40));
    let hours = building.schedule.as_ref().unwrap();
    assert_eq!(
        (
            hours.after_hours_min,
            hours.drift_tolerance,
            hours.drift_miss_rate
        ),
        (1, 2, 0.01)
    );
    assert_eq!(
        hours.schedule.time_zone(),
        &jiff::tz::TimeZone::get("America/New_York").unwrap()
    );
    assert_eq!(building.unusual, None);

    let plain = space("plain");
    assert_eq!((plain.capacity, plain.capacity_clear), (None, None));
    assert_eq!(plain.schedule, None);
    assert_eq!(
        plain.unusual.as_ref().unwrap().settings,
        BaselineSettings::default()
    );
}

#[test]
fn the_redaction_hold_is_in_milliseconds_and_the_frame_count_key_is_refused() {
    // The default is the old 5 frames at the default 2 fps.
    assert_eq!(parse(GOOD).unwrap().privacy.hold_ms, 2500);
    let c = parse(&format!("{GOOD}\n[privacy]\nhold_ms = 400\n")).unwrap();
    assert_eq!(c.privacy.hold_ms, 400);
    assert_eq!(c.privacy.policy().hold_ms, 400);
    assert_eq!(
        errors(&format!("{GOOD}\n[privacy]\nhold_ms = 60000\n")),
        ["privacy.hold_ms: 60000 is more than 30000"]
    );
    assert_eq!(
        errors(&format!("{GOOD}\n[privacy]\nhold_frames = 5\n")),
        ["privacy.hold_frames: is replaced by privacy.hold_ms, the hold in milliseconds (5 frames at 2 fps = 2500)"]
    );
}

#[test]
fn outlines_and_capacities_are_bounded() {
    let corners: Vec<String> = (0..65)
        .map(|i| {
            let a = f64::from(i) / 65.0 * std::f64::consts::TAU;
            format!("[{:.4}, {:.4}]", 0.5 + 0.4 * a.cos(), 0.5 + 0.4 * a.sin())
        })
        .collect();
    let text = format!(
        "[cameras.lobby]\nurl = \"testsrc:ball\"\n[cameras.lobby.zones.round]\npolygon = [{}]\n\
         [cameras.lobby.zones.stadium]\npolygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]\ncapacity = 4294967295\n\
         [cameras.lobby.zones.hall]\npolygon = [[0.6, 0.6], [0.9, 0.6], [0.9, 0.9]]\n\
         [spaces.city]\nzones = [\"lobby.hall\"]\ncapacity = 100001\n",
        corners.join(", ")
    );
    assert_eq!(
        errors(&text),
        [
            "cameras.lobby.zones.round.polygon: has 65 points; at most 64 describe any outline",
            "cameras.lobby.zones.stadium.capacity: 4294967295 is more than 100000",
            "spaces.city.capacity: 100001 is more than 100000",
        ]
    );
    // 64 corners are fine.
    let text = text.replace(&format!(", {}]", corners[64]), "]");
    assert!(!errors(&text)
        .iter()
        .any(|e| e.starts_with("cameras.lobby.zones.round")));
}

#[test]
fn fixtures_default_to_ten_minutes_can_be_turned_off_and_reject_a_short_time() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.detection.fixture_after_ms, Some(600_000));
    assert_eq!(c.detection.plan_rules().fixture_after_ms, Some(600_000));
    let off = parse(&format!("{GOOD}\n[detection]\nfixture_after_secs = 0\n")).unwrap();
    assert_eq!(off.detection.fixture_after_ms, None);
    assert_eq!(
        errors(&format!("{GOOD}\n[detection]\nfixture_after_secs = 5\n")),
        ["detection.fixture_after_secs: 5 is outside [30, 86400] (0 turns fixtures off)"]
    );
}
