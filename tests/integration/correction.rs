//! Manual correction of a space's entrance count (`POST
//! /api/v1/spaces/{space}/adjust`) on the running appliance: applied by its
//! analytics thread at once, shown by `/api/v1/occupancy`, recorded in the
//! audit log with who, why, before and after; a correction below zero, of a
//! space counted by its zones or of no space changes nothing and says why.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn a_space_count_is_corrected_by_hand_audited_and_kept_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let config = config(
        dir.path(),
        api_port,
        &[(
            "desk",
            "testsrc:ball".into(),
            "lines.door = { points = [[0.2, 0.5], [0.8, 0.5]], in = \"left\" }",
        )],
    );
    let text = std::fs::read_to_string(&config).unwrap()
        + "[spaces.hall]\nentrances = [\"desk.door\"]\n[spaces.floor]\nzones = [\"desk.path\"]\n";
    std::fs::write(&config, text).unwrap();
    let _appliance = start_appliance(&config, api_port);
    let token = admin_token(api_port).unwrap();
    let facilities = issue_token(&state_dir_of(&config), "frontdesk", "facilities");
    let adjust = |space: &str, body: Value| {
        post_json(
            api_port,
            &format!("/api/v1/spaces/{space}/adjust"),
            &facilities,
            &body,
        )
    };

    let (status, answer) = adjust(
        "hall",
        json!({"set": 12, "reason": "opened with the morning shift inside"}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"space": "hall", "before": 0, "occupancy": 12})
    );
    assert!(
        wait_until(Duration::from_secs(5), || space_count(api_port, "hall")
            == Some(12)),
        "the occupancy does not show 12: {:?}",
        get(api_port, "/api/v1/occupancy")
    );
    let (status, answer) = adjust(
        "hall",
        json!({"add": -5, "reason": "a group left by the fire door"}),
    );
    assert_eq!((status, &answer["occupancy"]), (200, &json!(7)), "{answer}");

    // Nothing changes on a mistake, and each says why.
    for (space, body, want, says) in [
        (
            "hall",
            json!({"add": -8, "reason": "too many"}),
            409,
            "below zero",
        ),
        (
            "floor",
            json!({"set": 3, "reason": "zones"}),
            409,
            "has no entrances",
        ),
        (
            "attic",
            json!({"set": 3, "reason": "nowhere"}),
            404,
            "no space `attic`",
        ),
        (
            "hall",
            json!({"set": 3, "add": 1, "reason": "both"}),
            400,
            "exactly one of",
        ),
        (
            "hall",
            json!({"set": 3, "reason": " "}),
            400,
            "`reason` must be",
        ),
        ("hall", json!({"set": 3}), 400, "reason"),
        (
            "hall",
            json!({"set": 200000, "reason": "a typo"}),
            400,
            "more than any space",
        ),
    ] {
        let (status, answer) = adjust(space, body.clone());
        assert_eq!(status, want, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap_or("").contains(says),
            "{body}: {answer}"
        );
    }
    assert_eq!(space_count(api_port, "hall"), Some(7));
    // A planner may not correct counts.
    let planner = issue_token(&state_dir_of(&config), "city", "planner");
    let (status, _) = post_json(
        api_port,
        "/api/v1/spaces/hall/adjust",
        &planner,
        &json!({"set": 1, "reason": "no"}),
    );
    assert_eq!(status, 403);

    // Both corrections in the audit log, with the caller and the reason.
    let (status, audit) = get_with(api_port, "/api/v1/dpo/audit?limit=1000", &token);
    assert_eq!(status, 200, "{audit}");
    let corrections: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == "count of space hall")
        .collect();
    assert_eq!(corrections.len(), 2, "{audit}");
    assert_eq!(corrections[0]["role"], "facilities");
    assert_eq!(corrections[0]["actor_name"], "frontdesk");
    assert_eq!(
        corrections[1]["detail"],
        json!({"before": 12, "after": 7, "reason": "a group left by the fire door"})
    );
}

fn get_with(port: u16, path: &str, token: &str) -> (u16, Value) {
    let (status, _, body) = request_raw(port, "GET", path, Some(token)).unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}
