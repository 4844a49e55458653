//! The dashboard's edits, kept apart from the config file. A packaged
//! appliance runs with its config under `/etc` read-only
//! (`ProtectSystem=strict`), so the zone editor saves each camera's zones
//! and lines to `config-overlay.toml` in the state directory; every load
//! of the config file lays that overlay over it before validating the
//! whole. Invariants: the overlay holds nothing but `cameras.NAME.zones`
//! and `cameras.NAME.lines` (a camera's overlaid tables replace the file's
//! whole), so no edit from the dashboard can reach a security setting;
//! a camera no longer in the file keeps its saved shapes aside, unused.

use super::{ConfigError, ConfigErrors};
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, Item, Table};

pub const OVERLAY_FILE: &str = "config-overlay.toml";

/// The kinds of shapes a camera's overlay may replace.
const OVERLAID: [&str; 2] = ["zones", "lines"];

const HEADER: &str = "\
# Saved by headcount's zone editor (the dashboard). Each camera's zones and
# lines here replace that camera's zones and lines in the config file;
# `headcount check-config FILE --merged` shows the result and where each
# table came from. Remove a camera's tables to go back to the file's.
";

pub fn overlay_path(state_dir: &Path) -> PathBuf {
    state_dir.join(OVERLAY_FILE)
}

/// The config file's text with the overlay laid over it.
#[derive(Debug, Clone)]
pub struct Merged {
    pub text: String,
    /// Cameras whose zones and lines came from the overlay.
    pub overlaid: Vec<String>,
    /// Cameras the overlay names that the file no longer has (left aside).
    pub unused: Vec<String>,
}

/// Reads the overlay beside `state_dir`, if there is one. Absent: None;
/// present but unreadable: an error (a half-seen config is worse than none).
pub fn read(state_dir: &Path) -> Result<Option<(PathBuf, String)>, ConfigErrors> {
    let path = overlay_path(state_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((path, text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(one_error(
            "",
            format!(
                "cannot read the dashboard's edits in {}: {e}",
                path.display()
            ),
        )),
    }
}

fn one_error(path: &str, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        path: path.to_string(),
        message,
    }])
}

/// `base` with `overlay` laid over it; every misplaced key of the overlay
/// is an error naming it and the overlay's file.
pub fn merge(base: &str, overlay: &str, file: &Path) -> Result<Merged, ConfigErrors> {
    let mut doc: DocumentMut = base
        .parse()
        .map_err(|e| one_error("", format!("not valid TOML: {e}")))?;
    let cameras = shapes_by_camera(overlay, file)?;
    let mut merged = Merged {
        text: String::new(),
        overlaid: Vec::new(),
        unused: Vec::new(),
    };
    for (camera, tables) in cameras {
        let Some(entry) = doc
            .get_mut("cameras")
            .and_then(|c| c.get_mut(&camera))
            .and_then(Item::as_table_like_mut)
        else {
            merged.unused.push(camera);
            continue;
        };
        for (kind, mut table) in tables {
            // Shown with its header, so that its provenance is too, and
            // placed after its camera, not where it stood in the overlay.
            table.set_implicit(false);
            forget_positions(&mut table);
            table.decor_mut().set_prefix(format!(
                "# cameras.{camera}.{kind}: from {}\n",
                file.display()
            ));
            entry.insert(kind, Item::Table(table));
        }
        merged.overlaid.push(camera);
    }
    merged.text = doc.to_string();
    Ok(merged)
}

fn forget_positions(table: &mut Table) {
    table.set_position(None);
    for (_, item) in table.iter_mut() {
        if let Item::Table(inner) = item {
            forget_positions(inner);
        }
    }
}

/// One camera's overlaid tables: `zones`, `lines` or both.
type CameraShapes = Vec<(&'static str, Table)>;

/// The overlay's tables per camera, in file order; any other key is an error.
fn shapes_by_camera(
    overlay: &str,
    file: &Path,
) -> Result<Vec<(String, CameraShapes)>, ConfigErrors> {
    let shown = file.display();
    let doc: DocumentMut = overlay
        .parse()
        .map_err(|e| one_error("", format!("{shown} is not valid TOML: {e}")))?;
    let mut errors = Vec::new();
    let misplaced = |path: String| ConfigError {
        path,
        message: format!("{shown} may hold only cameras' zones and lines"),
    };
    let mut cameras = Vec::new();
    for (key, item) in doc.iter() {
        let Some(entries) = (key == "cameras").then(|| item.as_table()).flatten() else {
            errors.push(misplaced(key.to_string()));
            continue;
        };
        for (camera, item) in entries.iter() {
            let Some(entry) = item.as_table() else {
                errors.push(misplaced(format!("cameras.{camera}")));
                continue;
            };
            let mut tables = Vec::new();
            for (kind, item) in entry.iter() {
                match (OVERLAID.iter().find(|k| **k == kind), item.as_table()) {
                    (Some(kind), Some(table)) => tables.push((*kind, table.clone())),
                    _ => errors.push(misplaced(format!("cameras.{camera}.{kind}"))),
                }
            }
            cameras.push((camera.to_string(), tables));
        }
    }
    if errors.is_empty() {
        Ok(cameras)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The overlay `previous` with `camera`'s zones and lines taken from the
/// merged and edited config `edited` (both tables, even when empty, so
/// that removing every zone is kept).
pub fn with_camera(previous: &str, edited: &str, camera: &str) -> Result<String, ConfigErrors> {
    let edited: DocumentMut = edited
        .parse()
        .map_err(|e| one_error("", format!("not valid TOML: {e}")))?;
    let mut doc: DocumentMut = if previous.trim().is_empty() {
        DocumentMut::new()
    } else {
        previous
            .parse()
            .map_err(|e| one_error("", format!("the saved edits are not valid TOML: {e}")))?
    };
    if doc.get("cameras").is_none() {
        let mut cameras = Table::new();
        cameras.set_implicit(true);
        doc.insert("cameras", Item::Table(cameras));
    }
    let mut entry = Table::new();
    entry.set_implicit(true);
    for kind in OVERLAID {
        let mut table = edited
            .get("cameras")
            .and_then(|c| c.get(camera))
            .and_then(|c| c.get(kind))
            .and_then(Item::as_table_like)
            .map(to_table)
            .unwrap_or_default();
        // Our own provenance comment is not part of the saved edit.
        table.decor_mut().clear();
        table.set_implicit(false);
        entry.insert(kind, Item::Table(table));
    }
    let cameras = doc
        .get_mut("cameras")
        .and_then(Item::as_table_mut)
        .ok_or_else(|| one_error("cameras", "must be a table".into()))?;
    cameras.insert(camera, Item::Table(entry));
    doc.decor_mut().set_prefix(HEADER);
    Ok(doc.to_string())
}

/// A table-like item (a `[table]` or an inline `{ ... }`) as a `[table]`.
fn to_table(table: &dyn toml_edit::TableLike) -> Table {
    let mut out = Table::new();
    for (key, item) in table.iter() {
        let item = match item {
            Item::Value(toml_edit::Value::InlineTable(inline)) => {
                Item::Table(inline.clone().into_table())
            }
            other => other.clone(),
        };
        out.insert(key, item);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"[appliance]
site = "t"

[cameras.lobby]
url = "rtsp://127.0.0.1:8554/demo"

[cameras.lobby.zones.old]
polygon = [[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]

[cameras.yard]
url = "rtsp://127.0.0.1:8554/yard"
zones = { gate = { polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]] } }
"#;

    #[test]
    fn overlaid_tables_replace_the_files_and_say_where_they_came_from() {
        let overlay = "[cameras.lobby.zones.new]\npolygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]\n\
                       [cameras.lobby.lines]\n\
                       [cameras.attic.zones.x]\npolygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]\n";
        let merged = merge(BASE, overlay, Path::new("/s/config-overlay.toml")).unwrap();
        assert_eq!(merged.overlaid, ["lobby"]);
        assert_eq!(merged.unused, ["attic"]);
        let table: toml::Table = merged.text.parse().unwrap();
        let lobby = &table["cameras"]["lobby"];
        assert!(lobby["zones"].get("old").is_none(), "{}", merged.text);
        assert!(lobby["zones"].get("new").is_some());
        assert!(table["cameras"]["yard"]["zones"].get("gate").is_some());
        assert!(
            merged
                .text
                .contains("# cameras.lobby.zones: from /s/config-overlay.toml"),
            "{}",
            merged.text
        );
        let lobby_at = merged.text.find("[cameras.lobby]").unwrap();
        assert!(merged.text.find("[cameras.lobby.zones.new]").unwrap() > lobby_at);
    }

    #[test]
    fn anything_but_zones_and_lines_is_refused_with_every_key() {
        let overlay = "[api]\nbind = \"0.0.0.0:80\"\n[cameras.lobby]\nurl = \"rtsp://evil\"\n\
                       [cameras.lobby.zones.a]\npolygon = []\n";
        let errors = merge(BASE, overlay, Path::new("o.toml")).unwrap_err();
        let paths: Vec<_> = errors.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["api", "cameras.lobby.url"]);
        assert!(errors.0[0].message.contains("o.toml may hold only"));
    }

    #[test]
    fn a_saved_camera_keeps_empty_tables_and_the_other_cameras() {
        let first = with_camera("", BASE, "yard").unwrap();
        let edited = BASE.replace(
            "[cameras.lobby.zones.old]\npolygon = [[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]\n",
            "",
        );
        let second = with_camera(&first, &edited, "lobby").unwrap();
        assert!(second.starts_with("# Saved by headcount's zone editor"));
        let table: toml::Table = second.parse().unwrap();
        assert!(table["cameras"]["yard"]["zones"]["gate"]["polygon"].is_array());
        let lobby = table["cameras"]["lobby"].as_table().unwrap();
        assert!(lobby["zones"].as_table().unwrap().is_empty());
        assert!(lobby["lines"].as_table().unwrap().is_empty());
        // Laid over the file, the lobby's zone is gone, the yard's kept.
        let merged = merge(BASE, &second, Path::new("o.toml")).unwrap();
        let table: toml::Table = merged.text.parse().unwrap();
        assert!(table["cameras"]["lobby"]["zones"]
            .as_table()
            .unwrap()
            .is_empty());
        assert_eq!(merged.overlaid, ["yard", "lobby"]);
    }
}
