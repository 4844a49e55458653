//! The crates' boundaries, as ARCHITECTURE.md states them: each crate
//! depends only on the crates below it, the domain links neither SQLite nor
//! an HTTP server nor an async runtime, only `media` links GStreamer and only
//! `vision` links ONNX Runtime; and no crate's modules import each other in a
//! circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Each workspace crate: the workspace crates it may depend on, and the
/// outside crates it must not.
const CRATES: &[(&str, &[&str], &[&str])] = &[
    (
        "headcount-domain",
        &[],
        &[
            "rusqlite",
            "axum",
            "hyper",
            "tokio",
            "gstreamer",
            "ort",
            "rumqttc",
            "tokio-modbus",
            "rustbac-client",
        ],
    ),
    (
        "headcount-store",
        &["headcount-domain"],
        &[
            "axum",
            "hyper",
            "gstreamer",
            "ort",
            "rumqttc",
            "tokio-modbus",
            "rustbac-client",
        ],
    ),
    (
        "headcount-api",
        &["headcount-domain", "headcount-store"],
        &[
            "gstreamer",
            "ort",
            "rumqttc",
            "tokio-modbus",
            "rustbac-client",
        ],
    ),
    (
        "headcount-media",
        &["headcount-domain"],
        &["rusqlite", "axum", "hyper", "ort"],
    ),
    (
        "headcount-vision",
        &["headcount-domain"],
        &["rusqlite", "axum", "hyper", "gstreamer"],
    ),
    (
        "headcount",
        &[
            "headcount-domain",
            "headcount-store",
            "headcount-api",
            "headcount-media",
            "headcount-vision",
        ],
        &[],
    ),
];

/// The normal (not dev, not build) dependencies of each workspace crate,
/// from `cargo metadata`.
fn declared_dependencies() -> BTreeMap<String, (BTreeSet<String>, std::path::PathBuf)> {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let name = package["name"].as_str().unwrap().to_string();
            let dependencies = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            let manifest = Path::new(package["manifest_path"].as_str().unwrap());
            (
                name,
                (dependencies, manifest.parent().unwrap().to_path_buf()),
            )
        })
        .collect()
}

#[test]
fn crates_depend_one_way_and_link_only_what_their_job_needs() {
    let declared = declared_dependencies();
    let known: BTreeSet<&str> = CRATES.iter().map(|(name, _, _)| *name).collect();
    let mut problems = Vec::new();
    for name in declared.keys() {
        if name != "headcount" && !known.contains(name.as_str()) {
            problems.push(format!("{name} is not in the architecture's table"));
        }
    }
    for (name, allowed, forbidden) in CRATES {
        let Some((dependencies, _)) = declared.get(*name) else {
            problems.push(format!("{name} is not a workspace crate"));
            continue;
        };
        for dependency in dependencies {
            if dependency.starts_with("headcount") && !allowed.contains(&dependency.as_str()) {
                problems.push(format!("{name} depends on {dependency}"));
            }
            if forbidden
                .iter()
                .any(|f| dependency == f || dependency.starts_with(&format!("{f}-")))
            {
                problems.push(format!("{name} links {dependency}"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The top-level modules a crate's module refers to (`crate::x`), outside
/// comments and test modules.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.to_path_buf()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".rs") || name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let relative = path.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap()
            .lines()
            .map(|line| line.split("//").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let uses = graph.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let target: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !target.is_empty() && target != module {
                uses.insert(target);
            }
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|m| modules.contains(m));
    }
    graph
}

/// A circle through `start`, if one exists.
fn circle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![start.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in &graph[last] {
            if next == start {
                let mut circle = path.clone();
                circle.push(start.to_string());
                return Some(circle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn no_crate_has_modules_that_import_each_other_in_a_circle() {
    let mut circles = Vec::new();
    for (name, (_, dir)) in declared_dependencies() {
        let src = if name == "headcount" {
            dir.join("appliance/app")
        } else {
            dir.join("src")
        };
        let graph = module_graph(&src);
        assert!(
            graph.len() > 1,
            "{name}: no modules found in {}",
            src.display()
        );
        for module in graph.keys() {
            if let Some(circle) = circle_through(&graph, module) {
                circles.push(format!("{name}: {}", circle.join(" -> ")));
            }
        }
    }
    assert!(circles.is_empty(), "{circles:#?}");
}

#[test]
fn the_cycle_check_finds_a_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(m, uses)| (m.to_string(), uses.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(circle_through(&graph, "a").unwrap(), ["a", "b", "c", "a"]);
    assert_eq!(circle_through(&graph, "d"), None);
}
