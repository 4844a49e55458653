//! Operating an installed appliance: `headcount backup` while it runs and
//! `headcount restore` into another state directory (as on a new disk),
//! where the audit chain verifies, the tokens still open the API and the
//! counts are those of the backup; and every bad backup refused with a
//! clear error and nothing changed.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const PASSPHRASE: &str = "correct horse battery staple";

fn restore(backup: &Path, state_dir: &Path, passphrase: &str) -> (bool, String, String) {
    let (code, out, err) = run_with_stdin(
        &[
            "restore",
            "--in",
            backup.to_str().unwrap(),
            "--state-dir",
            state_dir.to_str().unwrap(),
        ],
        &format!("{passphrase}\n"),
    );
    (code == 0, out, err)
}

/// `headcount backup` of `state_dir` into `out`, under `PASSPHRASE`.
fn take_backup(state_dir: &Path, out: &Path) -> (i32, String, String) {
    run_with_stdin(
        &[
            "backup",
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &format!("{PASSPHRASE}\n"),
    )
}

/// Every file under `dir` with its digest: what "nothing changed" compares
/// (the lock file aside: whoever takes the lock writes its pid there).
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.file_name().unwrap() != "run.lock" {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                let digest = headcount_domain::models::sha256_file(&path).unwrap();
                files.insert(name, digest);
            }
        }
    }
    files
}

fn rows(db: &Path, sql: &str) -> Vec<Vec<String>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut statement = conn.prepare(sql).unwrap();
    let width = statement.column_count();
    statement
        .query_map([], |row| {
            (0..width)
                .map(|i| {
                    row.get_ref(i).map(|v| match v {
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                        rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                        rusqlite::types::ValueRef::Blob(b) => format!("{b:02x?}"),
                        other => format!("{other:?}"),
                    })
                })
                .collect()
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The entries beside `dir` in its parent (staging folders, kept state).
fn neighbours(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_backup_taken_while_running_restores_elsewhere_and_bad_backups_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rtsp = free_port();
    let api = free_port();
    let _camera = start_camera(rtsp);
    let url = format!("rtsp://127.0.0.1:{rtsp}/vtest");
    let config = config(dir.path(), api, &[("door", url.clone(), "")]);
    let state = state_dir_of(&config);
    let mut appliance = start_appliance(&config, api);
    let planner = issue_token(&state, "city-planning", "planner");
    seal_secret(&state, "spare-camera", "s3cret-camera-password");
    let db = state.join("headcount.db");
    assert!(
        wait_until(Duration::from_secs(60), || {
            rows(&db, "SELECT count(*) FROM occupancy_minute")[0][0] != "0"
        }),
        "no occupancy was written"
    );

    // Taken while the appliance writes.
    let backup = dir.path().join("site.hcbackup");
    let (code, _, err) = take_backup(&state, &backup);
    assert_eq!(code, 0, "backup failed: {err}");
    assert!(err.contains("backup of"), "{err}");
    let sealed = std::fs::read(&backup).unwrap();
    for secret in [
        "s3cret-camera-password",
        "city-planning",
        "occupancy_minute",
    ] {
        assert!(
            !sealed.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is readable in the backup file"
        );
    }

    // Not over the running appliance: refused, its state untouched.
    let before = neighbours(&state);
    let (ok, _, err) = restore(&backup, &state, PASSPHRASE);
    assert!(!ok);
    assert!(err.contains("is running on"), "{err}");
    assert_eq!(neighbours(&state), before, "something was left beside it");

    appliance.0.kill().unwrap();
    appliance.0.wait().unwrap();

    // Onto another disk: a state directory that does not exist yet.
    let elsewhere = dir.path().join("new-disk").join("state");
    let (ok, out, err) = restore(&backup, &elsewhere, PASSPHRASE);
    assert!(ok, "restore failed: {out}{err}");
    assert!(out.contains("the audit log verifies"), "{out}");
    let (code, out, err) = run(
        &[
            "audit",
            "verify",
            "--state-dir",
            elsewhere.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("the audit log is intact"), "{out}");

    // The restored audit log is the original's, up to and including the
    // backup's own entry.
    let restored_db = elsewhere.join("headcount.db");
    let audit = "SELECT seq, actor, action, target, hash FROM audit_log ORDER BY seq";
    let restored_audit = rows(&restored_db, audit);
    let original_audit = rows(&db, audit);
    assert!(original_audit.starts_with(&restored_audit));
    assert!(
        restored_audit
            .iter()
            .any(|r| r[2] == "export" && r[3] == "backup of the state directory"),
        "{restored_audit:?}"
    );
    // The tokens, and every minute that had ended 10 s before the backup:
    // a minute's last samples reach the database up to two flushes and an
    // analysed frame's latency after it ends.
    let tokens = "SELECT id, name, role, digest, created_ms, expires_ms, revoked_ms FROM api_token ORDER BY id";
    assert_eq!(rows(&restored_db, tokens), rows(&db, tokens));
    let backup_minute = rows(
        &restored_db,
        "SELECT (max(at_ms) - 10000) / 60000 * 60000 FROM audit_log",
    )[0][0]
        .clone();
    let ended = format!(
        "SELECT camera, zone, bucket_start, samples, occupancy_sum FROM occupancy_minute \
         WHERE bucket_start < {backup_minute} ORDER BY 1, 2, 3"
    );
    assert_eq!(rows(&restored_db, &ended), rows(&db, &ended));
    // Keys and the sealed secret, byte for byte; the first admin token's
    // file is not carried.
    let original_files = tree(&state);
    let restored_files = tree(&elsewhere);
    for name in [
        "audit-signing.pk8",
        "audit-signing.pub",
        "token.key",
        "receipt.key",
        "secrets.key",
        "secrets.json",
    ] {
        assert!(
            original_files.contains_key(name),
            "no {name} in the original"
        );
        assert!(
            restored_files.get(name) == original_files.get(name),
            "{name} differs"
        );
    }
    assert!(!restored_files.contains_key("initial-admin-token"));
    let mode = |name: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(elsewhere.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("."), 0o700);
    assert_eq!(mode("audit-signing.pk8"), 0o600);

    // The restored appliance serves the old tokens.
    let api2 = free_port();
    let config2 = dir.path().join("restored.toml");
    std::fs::write(
        &config2,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace(&format!("127.0.0.1:{api}"), &format!("127.0.0.1:{api2}"))
            .replace(&format!("{:?}", state), &format!("{:?}", elsewhere)),
    )
    .unwrap();
    let mut restored = Proc::spawn(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config2)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(
        wait_until(Duration::from_secs(20), || get_raw_as(
            api2,
            "/api/v1/whoami",
            Some(&planner)
        )
        .is_some_and(|(status, _, body)| status == 200
            && String::from_utf8_lossy(&body).contains("city-planning"))),
        "the restored appliance does not accept the planner's token"
    );
    restored.0.kill().unwrap();
    restored.0.wait().unwrap();

    // Bad backups over the restored state: each refused, nothing changed.
    let untouched = tree(&elsewhere);
    let around = neighbours(&elsewhere);
    let truncated = dir.path().join("truncated.hcbackup");
    std::fs::write(&truncated, &sealed[..sealed.len() - 1000]).unwrap();
    let altered = dir.path().join("altered.hcbackup");
    let mut flipped = sealed.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    std::fs::write(&altered, &flipped).unwrap();
    for (file, passphrase, expected) in [
        (&truncated, PASSPHRASE, "cut short"),
        (&altered, PASSPHRASE, "altered"),
        (
            &backup,
            "another passphrase entirely",
            "another passphrase, or",
        ),
    ] {
        let (ok, out, err) = restore(file, &elsewhere, passphrase);
        assert!(!ok, "{} was restored", file.display());
        assert!(
            err.contains(expected) && err.contains("nothing was changed"),
            "{}: {err}{out}",
            file.display()
        );
        assert!(
            tree(&elsewhere) == untouched,
            "{} changed the state",
            file.display()
        );
        assert_eq!(
            neighbours(&elsewhere),
            around,
            "{} left files",
            file.display()
        );
    }

    // A good one over it: the state it replaces is kept beside it.
    let (ok, out, err) = restore(&backup, &elsewhere, PASSPHRASE);
    assert!(ok, "{out}{err}");
    assert!(out.contains("the state it replaced is kept in"), "{out}");
    let kept: Vec<String> = neighbours(&elsewhere)
        .into_iter()
        .filter(|n| n.starts_with("state.before-restore-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
}

/// The newest fixture of tests/fixtures/upgrade: a state directory made by
/// an earlier version (scripts/make-upgrade-fixture.sh), rebuilt into `state`;
/// its description.
fn rebuild_fixture(state: &Path) -> toml::Table {
    let fixtures = repo().join("tests/fixtures/upgrade");
    let newest = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| {
            p.file_name().unwrap().to_string_lossy()["schema-".len()..]
                .parse::<u32>()
                .unwrap()
        })
        .unwrap();
    std::fs::create_dir_all(state).unwrap();
    for entry in std::fs::read_dir(&newest).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if name != "headcount.sql" && name != "fixture.toml" {
            std::fs::copy(&path, state.join(name)).unwrap();
        }
    }
    let sql = std::fs::read_to_string(newest.join("headcount.sql")).unwrap();
    rusqlite::Connection::open(state.join("headcount.db"))
        .unwrap()
        .execute_batch(&sql)
        .unwrap();
    std::fs::read_to_string(newest.join("fixture.toml"))
        .unwrap()
        .parse()
        .unwrap()
}

const COUNTS: &[&str] = &[
    "SELECT * FROM occupancy_minute ORDER BY 1, 2, 3",
    "SELECT * FROM space_minute ORDER BY 1, 2",
    "SELECT * FROM flow_minute ORDER BY 1, 2, 3",
    "SELECT * FROM dwell_minute ORDER BY 1, 2, 3",
    "SELECT space, count, saved_at FROM entrance_count ORDER BY 1",
    "SELECT id, name, role, digest, created_ms, expires_ms, revoked_ms FROM api_token ORDER BY 1",
];

#[test]
fn a_database_of_the_previous_schema_upgrades_keeping_every_count_token_and_the_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let fixture = rebuild_fixture(&state);
    let db = state.join("headcount.db");
    let before: Vec<_> = COUNTS.iter().map(|sql| rows(&db, sql)).collect();
    assert!(
        !before[0].is_empty() && !before[5].is_empty(),
        "the fixture holds no counts or tokens"
    );
    let audit = "SELECT seq, at_ms, actor, action, target, hash FROM audit_log ORDER BY seq";
    let audit_before = rows(&db, audit);

    // The new binary, the appliance stopped: it migrates at its start. Its
    // clock is set to just after the fixture was made, so that retention
    // keeps what the test compares.
    let made_at = fixture["made_at_ms"].as_integer().unwrap();
    let offset = dir.path().join("clock-offset");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    std::fs::write(&offset, format!("{}\n", made_at + 600_000 - now_ms)).unwrap();
    let api = free_port();
    let config = dir.path().join("headcount.toml");
    std::fs::write(
        &config,
        format!(
            "[appliance]\nsite = \"upgrade\"\nstate_dir = {state:?}\nmodels_dir = {:?}\n\
             [api]\nbind = \"127.0.0.1:{api}\"\n[cameras.other]\nurl = \"testsrc:ball\"\n\
             [cameras.other.zones.all]\npolygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]\n",
            repo().join("models")
        ),
    )
    .unwrap();
    let mut appliance = Proc::spawn(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .env("HEADCOUNT_FAULT_CLOCK_OFFSET_FILE", &offset)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let tokens = fixture["tokens"].as_table().unwrap();
    for (name, token) in tokens {
        assert!(
            wait_until(Duration::from_secs(20), || get_raw_as(
                api,
                "/api/v1/whoami",
                token.as_str()
            )
            .is_some_and(|(status, _, body)| status == 200
                && String::from_utf8_lossy(&body).contains(name.as_str()))),
            "{name}'s token does not open the upgraded appliance"
        );
    }
    appliance.0.kill().unwrap();
    appliance.0.wait().unwrap();

    assert_eq!(
        rows(&db, "PRAGMA user_version")[0][0],
        headcount_store::schema_version().to_string()
    );
    for (sql, old) in COUNTS.iter().zip(&before) {
        let now = rows(&db, sql);
        let lost: Vec<_> = old.iter().filter(|row| !now.contains(row)).collect();
        assert!(
            lost.is_empty(),
            "{sql}: {} rows changed or lost: {lost:?}",
            lost.len()
        );
    }
    assert!(
        rows(&db, audit).starts_with(&audit_before),
        "the audit log was rewritten"
    );
    let (code, out, err) = run(
        &["audit", "verify", "--state-dir", state.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("the audit log is intact"), "{out}");
}

#[test]
fn a_database_newer_than_the_binary_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    rebuild_fixture(&state);
    let db = state.join("headcount.db");
    let newer = headcount_store::schema_version() + 1;
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let untouched = tree(&state);
    let config = dir.path().join("headcount.toml");
    std::fs::write(
        &config,
        format!(
            "[appliance]\nsite = \"downgrade\"\nstate_dir = {state:?}\nmodels_dir = {:?}\n\
             [api]\nbind = \"127.0.0.1:{}\"\n[cameras.other]\nurl = \"testsrc:ball\"\n",
            repo().join("models"),
            free_port()
        ),
    )
    .unwrap();
    let (code, out, err) = run(&["run", "--config", config.to_str().unwrap()], &[]);
    assert_ne!(code, 0, "the appliance ran on a newer database: {out}");
    assert!(
        err.contains(&format!(
            "schema version {newer}, newer than this headcount"
        )),
        "{err}"
    );
    let now = tree(&state);
    for (name, digest) in &untouched {
        assert!(now.get(name) == Some(digest), "{name} was changed");
    }
    assert!(
        !now.contains_key("headcount.db-wal") && !now.contains_key("headcount.db-journal"),
        "the database was opened for writing: {:?}",
        now.keys()
    );
}

#[test]
fn a_backup_of_an_older_schema_is_migrated_by_restore() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    rebuild_fixture(&state);
    // One schema step back: migration 0009's indexes gone, version 8.
    let db = state.join("headcount.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let indexes =
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '%_time' ORDER BY 1";
    let time_indexes = rows(&db, indexes);
    assert_eq!(time_indexes.len(), 8, "{time_indexes:?}");
    for index in &time_indexes {
        conn.execute_batch(&format!("DROP INDEX {}", index[0]))
            .unwrap();
    }
    conn.pragma_update(None, "user_version", 8).unwrap();
    drop(conn);
    let backup = dir.path().join("old.hcbackup");
    // Taken by this binary from an old database: `backup` does not migrate.
    let (code, _, err) = take_backup(&state, &backup);
    assert_eq!(code, 0, "{err}");
    assert_eq!(rows(&db, "PRAGMA user_version")[0][0], "8");

    let restored = dir.path().join("restored");
    let (ok, out, err) = restore(&backup, &restored, PASSPHRASE);
    assert!(ok, "{out}{err}");
    let newest = headcount_store::schema_version();
    assert!(
        out.contains(&format!("database schema 8 -> {newest}")),
        "{out}"
    );
    let restored_db = restored.join("headcount.db");
    assert_eq!(
        rows(&restored_db, "PRAGMA user_version")[0][0],
        newest.to_string()
    );
    assert_eq!(rows(&restored_db, indexes), time_indexes);
    for sql in COUNTS {
        assert_eq!(rows(&restored_db, sql), rows(&db, sql), "{sql}");
    }
}
