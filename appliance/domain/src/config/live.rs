//! The running config and the one edit the dashboard makes to it: a
//! camera's zones and lines. An edit is applied with `toml_edit` to the
//! config file's text with the earlier edits laid over it (comments and
//! every other key stay as written), validated whole like `check-config`,
//! written atomically to the overlay in the state directory (`overlay`;
//! the file itself is never written), and only then handed to the running
//! appliance, which swaps in the new geometry without a restart.

use super::{overlay, Config, ConfigError, ConfigErrors, Side, SystemSecrets};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use toml_edit::{Array, DocumentMut, Item, Table, Value};

/// A camera's zones and lines as the editor sends and receives them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Geometry {
    #[serde(default)]
    pub zones: Vec<ZoneShape>,
    #[serde(default)]
    pub lines: Vec<LineShape>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneShape {
    pub name: String,
    /// Normalised `[x, y]`, x right, y down.
    pub polygon: Vec<[f64; 2]>,
    #[serde(default)]
    pub capacity: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineShape {
    pub name: String,
    pub points: Vec<[f64; 2]>,
    /// `left` or `right`, checked by the config's validation.
    #[serde(rename = "in")]
    pub in_side: String,
}

impl Geometry {
    /// A camera's zones and lines as configured; None for an unknown camera.
    pub fn of(config: &Config, camera: &str) -> Option<Geometry> {
        let camera = config.cameras.iter().find(|c| &*c.id == camera)?;
        let xy =
            |p: &crate::geometry::Point| [coordinate(f64::from(p.x)), coordinate(f64::from(p.y))];
        Some(Geometry {
            zones: camera
                .zones
                .iter()
                .map(|z| ZoneShape {
                    name: z.name.clone(),
                    polygon: z.polygon.points().iter().map(xy).collect(),
                    capacity: z.capacity,
                })
                .collect(),
            lines: camera
                .lines
                .iter()
                .map(|l| LineShape {
                    name: l.name.clone(),
                    points: vec![xy(&l.start), xy(&l.end)],
                    in_side: match l.in_side {
                        Side::Left => "left",
                        Side::Right => "right",
                    }
                    .to_string(),
                })
                .collect(),
        })
    }
}

/// A coordinate as written to the file: three decimals, a thousandth of
/// the frame, is finer than any person's foot.
fn coordinate(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn points(points: &[[f64; 2]]) -> Value {
    let pairs: Array = points
        .iter()
        .map(|[x, y]| Value::Array(Array::from_iter([coordinate(*x), coordinate(*y)])))
        .collect();
    Value::Array(pairs)
}

fn error(path: impl Into<String>, message: impl Into<String>) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        path: path.into(),
        message: message.into(),
    }])
}

/// `text` with camera `camera`'s zones and lines replaced by `geometry`.
/// Zones and lines that stay keep their other keys (loitering limits,
/// one-way rules, comments); those left out are removed.
pub fn with_geometry(
    text: &str,
    camera: &str,
    geometry: &Geometry,
) -> Result<String, ConfigErrors> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| error("", format!("not valid TOML: {e}")))?;
    let base = format!("cameras.{camera}");
    let mut errors = Vec::new();
    for (kind, names) in [
        (
            "zones",
            geometry.zones.iter().map(|z| &z.name).collect::<Vec<_>>(),
        ),
        ("lines", geometry.lines.iter().map(|l| &l.name).collect()),
    ] {
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                errors.push(ConfigError {
                    path: format!("{base}.{kind}.{name}"),
                    message: format!("two {kind} are named `{name}`"),
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let table = doc
        .get_mut("cameras")
        .and_then(|c| c.get_mut(camera))
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| error(&base, "no such camera in the config file"))?;

    let zones =
        section(table, "zones").ok_or_else(|| error(format!("{base}.zones"), "must be a table"))?;
    keep_only(zones, geometry.zones.iter().map(|z| z.name.as_str()));
    for zone in &geometry.zones {
        let entry = entry_table(zones, &zone.name)
            .ok_or_else(|| error(format!("{base}.zones.{}", zone.name), "must be a table"))?;
        entry.insert("polygon", Item::Value(points(&zone.polygon)));
        match zone.capacity {
            Some(c) => {
                entry.insert("capacity", Item::Value(Value::from(i64::from(c))));
            }
            None => {
                entry.remove("capacity");
            }
        }
    }

    let lines =
        section(table, "lines").ok_or_else(|| error(format!("{base}.lines"), "must be a table"))?;
    keep_only(lines, geometry.lines.iter().map(|l| l.name.as_str()));
    for line in &geometry.lines {
        let entry = entry_table(lines, &line.name)
            .ok_or_else(|| error(format!("{base}.lines.{}", line.name), "must be a table"))?;
        entry.insert("points", Item::Value(points(&line.points)));
        entry.insert("in", Item::Value(Value::from(line.in_side.as_str())));
    }
    Ok(doc.to_string())
}

/// The `zones` or `lines` table of a camera, made when missing.
fn section<'a>(
    camera: &'a mut dyn toml_edit::TableLike,
    key: &str,
) -> Option<&'a mut dyn toml_edit::TableLike> {
    if camera.get(key).is_none() {
        let mut table = Table::new();
        table.set_implicit(true);
        camera.insert(key, Item::Table(table));
    }
    camera.get_mut(key).and_then(Item::as_table_like_mut)
}

fn keep_only<'a>(section: &mut dyn toml_edit::TableLike, names: impl Iterator<Item = &'a str>) {
    let names: Vec<&str> = names.collect();
    let gone: Vec<String> = section
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| !names.contains(&k.as_str()))
        .collect();
    for key in gone {
        section.remove(&key);
    }
}

fn entry_table<'a>(
    section: &'a mut dyn toml_edit::TableLike,
    name: &str,
) -> Option<&'a mut dyn toml_edit::TableLike> {
    if section.get(name).is_none() {
        section.insert(name, Item::Table(Table::new()));
    }
    section.get_mut(name).and_then(Item::as_table_like_mut)
}

/// The config the appliance runs with, shared by the API and the counting
/// stage. Only an edit through `save_geometry` replaces it, and then only
/// the cameras' zones and lines change: every other setting stays as it
/// was at start, whatever the file now says.
#[derive(Clone)]
pub struct LiveConfig {
    current: Arc<RwLock<Arc<Config>>>,
    /// A new geometry not yet taken up by the counting stage.
    pending: Arc<Mutex<Option<Arc<Config>>>>,
    /// The file the appliance was started from; None: no file to edit.
    file: Option<PathBuf>,
    /// Where edits are saved: the overlay in the state directory.
    overlay: PathBuf,
    /// One edit at a time: each reads the file the previous one wrote.
    editing: Arc<Mutex<()>>,
}

/// Why a geometry edit was not saved.
#[derive(Debug)]
pub enum EditError {
    /// The edited config does not validate: nothing was written.
    Invalid(ConfigErrors),
    /// The file could not be read or written.
    File(String),
    NoFile,
}

impl LiveConfig {
    pub fn new(config: Config, file: Option<PathBuf>) -> Self {
        Self {
            overlay: overlay::overlay_path(&config.state_dir),
            current: Arc::new(RwLock::new(Arc::new(config))),
            pending: Arc::default(),
            file,
            editing: Arc::default(),
        }
    }

    pub fn get(&self) -> Arc<Config> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The new geometry to count with, once per save.
    pub fn take_geometry(&self) -> Option<Arc<Config>> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Saves `geometry` for `camera` in the overlay beside the config file
    /// (the file itself may be read-only, as a packaged service's is) and,
    /// once it is durably there, makes it the running geometry. The file
    /// with every saved edit laid over it is validated whole first.
    /// Blocking (file I/O).
    pub fn save_geometry(
        &self,
        camera: &str,
        geometry: &Geometry,
    ) -> Result<Arc<Config>, EditError> {
        let path = self.file.as_deref().ok_or(EditError::NoFile)?;
        let _one_at_a_time = self.editing.lock().unwrap_or_else(|e| e.into_inner());
        let running = self.get();
        let merged =
            Config::merged_file(path, Some(&running.state_dir)).map_err(EditError::Invalid)?;
        let edited = with_geometry(&merged.text, camera, geometry).map_err(EditError::Invalid)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let parsed =
            Config::parse_with_state_dir(&edited, base, &SystemSecrets, Some(&running.state_dir))
                .map_err(EditError::Invalid)?;
        let saved = match std::fs::read_to_string(&self.overlay) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(EditError::File(format!(
                    "cannot read {}: {e}",
                    self.overlay.display()
                )))
            }
        };
        let overlay = overlay::with_camera(&saved, &edited, camera).map_err(EditError::Invalid)?;
        crate::files::write_atomically(&self.overlay, overlay.as_bytes(), 0o600).map_err(|e| {
            EditError::File(format!("cannot write {}: {e}", self.overlay.display()))
        })?;
        let mut next = (*running).clone();
        for camera in &mut next.cameras {
            if let Some(edited) = parsed.cameras.iter().find(|c| c.id == camera.id) {
                camera.zones = edited.zones.clone();
                camera.lines = edited.lines.clone();
            }
        }
        let next = Arc::new(next);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(next.clone());
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# site config
[appliance]
site = "t"

[cameras.lobby]
url = "rtsp://127.0.0.1:8554/demo"

# the waiting area
[cameras.lobby.zones.waiting]
polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]
loiter_minutes = 10   # keep me

[cameras.lobby.zones.old]
polygon = [[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]

[cameras.lobby.lines.door]
points = [[0.2, 0.9], [0.8, 0.9]]
in = "left"
one_way = "in"
"#;

    fn geometry() -> Geometry {
        Geometry {
            zones: vec![
                ZoneShape {
                    name: "waiting".into(),
                    polygon: vec![[0.1, 0.2], [0.6, 0.2], [0.6, 0.7], [0.123456, 0.7]],
                    capacity: Some(12),
                },
                ZoneShape {
                    name: "desk".into(),
                    polygon: vec![[0.7, 0.1], [0.9, 0.1], [0.9, 0.3]],
                    capacity: None,
                },
            ],
            lines: vec![LineShape {
                name: "door".into(),
                points: vec![[0.2, 0.8], [0.8, 0.8]],
                in_side: "right".into(),
            }],
        }
    }

    #[test]
    fn an_edit_replaces_shapes_and_keeps_comments_and_other_keys() {
        let edited = with_geometry(TEXT, "lobby", &geometry()).unwrap();
        let table: toml::Table = edited.parse().unwrap();
        let zones = table["cameras"]["lobby"]["zones"].as_table().unwrap();
        assert_eq!(zones.keys().collect::<Vec<_>>(), ["desk", "waiting"]);
        assert_eq!(zones["waiting"]["capacity"].as_integer(), Some(12));
        assert_eq!(zones["waiting"]["loiter_minutes"].as_integer(), Some(10));
        assert_eq!(zones["waiting"]["polygon"][3][0].as_float(), Some(0.123));
        assert!(zones["desk"].get("capacity").is_none());
        let door = &table["cameras"]["lobby"]["lines"]["door"];
        assert_eq!(door["in"].as_str(), Some("right"));
        assert_eq!(door["one_way"].as_str(), Some("in"));
        assert!(edited.contains("# site config") && edited.contains("# keep me"));
    }

    #[test]
    fn duplicate_names_and_unknown_cameras_are_errors_with_their_keys() {
        let mut twice = geometry();
        twice.zones[1].name = "waiting".into();
        let errors = with_geometry(TEXT, "lobby", &twice).unwrap_err();
        assert_eq!(errors.0[0].path, "cameras.lobby.zones.waiting");
        let errors = with_geometry(TEXT, "yard", &geometry()).unwrap_err();
        assert_eq!(errors.0[0].path, "cameras.yard");
    }

    #[test]
    fn a_save_validates_before_writing_and_swaps_only_the_geometry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("headcount.toml");
        let text = TEXT.replace(
            "site = \"t\"",
            &format!("site = \"t\"\nstate_dir = {:?}", dir.path().join("state")),
        );
        std::fs::write(&path, &text).unwrap();
        let running = Config::load(&path, &SystemSecrets).unwrap();
        let live = LiveConfig::new(running, Some(path.clone()));

        let mut broken = geometry();
        broken.zones[1].polygon.truncate(2);
        broken.lines[0].in_side = "up".into();
        let Err(EditError::Invalid(errors)) = live.save_geometry("lobby", &broken) else {
            panic!("an invalid geometry was saved");
        };
        let paths: Vec<_> = errors.0.iter().map(|e| e.path.as_str()).collect();
        assert!(
            paths
                .iter()
                .any(|p| p.starts_with("cameras.lobby.zones.desk")),
            "{paths:?}"
        );
        assert!(
            paths
                .iter()
                .any(|p| p.starts_with("cameras.lobby.lines.door")),
            "{paths:?}"
        );
        let overlay = dir.path().join("state").join(overlay::OVERLAY_FILE);
        assert!(!overlay.exists(), "nothing written");
        assert!(live.take_geometry().is_none());

        // Another setting changed on disk meanwhile is written back as found
        // but not taken up by the running appliance.
        std::fs::write(&path, text.replace("site = \"t\"", "site = \"other\"")).unwrap();
        let saved = live.save_geometry("lobby", &geometry()).unwrap();
        assert_eq!(saved.site, "t");
        let zones: Vec<_> = saved.cameras[0]
            .zones
            .iter()
            .map(|z| z.name.as_str())
            .collect();
        assert_eq!(zones, ["desk", "waiting"]);
        assert_eq!(live.get().cameras[0].lines[0].in_side, Side::Right);
        assert!(live.take_geometry().is_some());
        assert!(live.take_geometry().is_none(), "taken once");
        // The file is never written; loaded, it has the edit laid over it.
        assert!(!std::fs::read_to_string(&path).unwrap().contains("desk"));
        let on_disk = Config::load(&path, &SystemSecrets).unwrap();
        assert_eq!(on_disk.cameras[0].zones, saved.cameras[0].zones);
        assert_eq!(on_disk.site, "other");
        // The zone's other keys, taken from the file, were kept.
        let waiting = on_disk.cameras[0]
            .zones
            .iter()
            .find(|z| z.name == "waiting");
        assert!(std::fs::read_to_string(&overlay)
            .unwrap()
            .contains("loiter_minutes = 10"));
        assert!(waiting.is_some());
    }
}
