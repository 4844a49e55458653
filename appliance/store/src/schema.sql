-- headcount database schema. This file is the schema a fresh database gets;
-- an existing database reaches the same schema through the numbered steps in
-- migrations/ (a test checks that both agree). PRAGMA user_version holds the
-- number of the last step applied. All times are Unix milliseconds, UTC.

-- Zone occupancy per minute: an aggregate, never per person.
CREATE TABLE occupancy_minute (
    camera TEXT NOT NULL,             -- camera name from the config
    zone TEXT NOT NULL,               -- zone name within that camera
    bucket_start INTEGER NOT NULL,    -- start of the minute
    samples INTEGER NOT NULL,         -- analysed frames that fell in the minute
    occupancy_sum INTEGER NOT NULL,   -- sum of smoothed occupancy; mean = sum / samples
    occupancy_max INTEGER NOT NULL,   -- highest smoothed occupancy in the minute
    PRIMARY KEY (camera, zone, bucket_start)
) WITHOUT ROWID;

-- Space occupancy per minute (spaces are made of zones and entrance lines).
CREATE TABLE space_minute (
    space TEXT NOT NULL,              -- space name from the config
    bucket_start INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    occupancy_sum INTEGER NOT NULL,
    occupancy_max INTEGER NOT NULL,
    PRIMARY KEY (space, bucket_start)
) WITHOUT ROWID;

-- Line crossings per minute. A row with zeros: watched, nobody crossed.
CREATE TABLE flow_minute (
    camera TEXT NOT NULL,
    line TEXT NOT NULL,               -- line name within that camera
    bucket_start INTEGER NOT NULL,
    entries INTEGER NOT NULL,         -- crossings onto the line's "in" side
    exits INTEGER NOT NULL,
    PRIMARY KEY (camera, line, bucket_start)
) WITHOUT ROWID;

-- Dwell: how many visits to a zone ended in the minute, per duration bin.
CREATE TABLE dwell_minute (
    camera TEXT NOT NULL,
    zone TEXT NOT NULL,
    bucket_start INTEGER NOT NULL,    -- the minute in which the visits ended
    bin INTEGER NOT NULL,             -- durations in [1.05^bin, 1.05^(bin+1)) seconds
    visits INTEGER NOT NULL,
    PRIMARY KEY (camera, zone, bucket_start, bin)
) WITHOUT ROWID;

-- The latest entries-minus-exits count of each entrance-counted space, so
-- that a restart does not empty a building that is not empty.
CREATE TABLE entrance_count (
    space TEXT PRIMARY KEY,           -- space name from the config
    count INTEGER NOT NULL,
    saved_at INTEGER NOT NULL         -- time of the latest frame counted
    -- entries since the last reset; added by step 10, and written as
    -- SQLite writes an added column, so that both schemas read the same
    , entries INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;

-- API tokens. Only a keyed digest of each token's secret half is kept; a
-- token is found by its public id and checked in constant time.
CREATE TABLE api_token (
    id TEXT PRIMARY KEY,              -- public half of the token (hex)
    name TEXT NOT NULL,               -- who or what holds it
    role TEXT NOT NULL,               -- admin, facilities, planner or dpo
    digest BLOB NOT NULL,             -- HMAC-SHA256 of the secret half under the device's token key
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,               -- NULL: never
    revoked_ms INTEGER                -- NULL: in force
) WITHOUT ROWID;

-- One token in force per name: rotation revokes the old row in the same transaction.
CREATE UNIQUE INDEX api_token_name_in_force ON api_token (name) WHERE revoked_ms IS NULL;

-- The audit log, for the data-protection officer: who read, changed, exported
-- or deleted what, and when (token pseudonyms `token:<id>` and roles, never a
-- token holder's name, which only api_token keeps, nor a counted person's
-- data). Each entry's hash covers the previous entry's hash and every field,
-- so an entry changed or removed by hand breaks the chain.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,          -- 1, 2, 3, ... without gaps
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,              -- token pseudonym, or the appliance part that acted ("retention")
    role TEXT NOT NULL,               -- the actor's role: admin, facilities, planner, dpo or system
    action TEXT NOT NULL,             -- api_access, token_change, config_change, export or deletion
    target TEXT NOT NULL,             -- route, token pseudonym or data class acted on
    rows INTEGER NOT NULL,            -- rows read, changed or deleted
    detail TEXT NOT NULL,             -- JSON; never personal data
    prev_hash BLOB NOT NULL,          -- the previous entry's hash; 32 zero bytes before the first
    hash BLOB NOT NULL                -- SHA-256 over prev_hash and every field above
);

CREATE INDEX audit_log_at ON audit_log (at_ms);

-- Checkpoints: the device's audit key (state_dir/audit-signing.pk8, Ed25519)
-- signs an entry's seq and hash, vouching for the whole chain up to it, so a
-- rewritten chain or a log cut short is caught too.
CREATE TABLE audit_checkpoint (
    seq INTEGER PRIMARY KEY,          -- the entry it seals
    at_ms INTEGER NOT NULL,           -- when it was signed
    hash BLOB NOT NULL,               -- that entry's hash
    signature BLOB NOT NULL           -- Ed25519 over (seq, at_ms, hash)
) WITHOUT ROWID;

-- Where the kept log starts once retention has removed older entries: the
-- last removed entry, whose hash the oldest kept entry links to. A deletion
-- receipt in the log records the same seq and hash.
CREATE TABLE audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1), -- one row, replaced on each sweep
    seq INTEGER NOT NULL,             -- the last entry removed
    hash BLOB NOT NULL,               -- its hash
    cutoff_ms INTEGER NOT NULL        -- entries older than this were removed
) WITHOUT ROWID;

-- Rollups: coarser buckets rolled up from finer ones (15 min from the minutes,
-- 1 h from 15 min, 1 d from 1 h), each width kept as long as its data class.
CREATE TABLE occupancy_rollup (
    width_ms INTEGER NOT NULL,        -- bucket width: 900000, 3600000 or 86400000
    camera TEXT NOT NULL,
    zone TEXT NOT NULL,
    bucket_start INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    occupancy_sum INTEGER NOT NULL,
    occupancy_max INTEGER NOT NULL,
    PRIMARY KEY (width_ms, camera, zone, bucket_start)
) WITHOUT ROWID;

CREATE TABLE space_rollup (
    width_ms INTEGER NOT NULL,
    space TEXT NOT NULL,
    bucket_start INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    occupancy_sum INTEGER NOT NULL,
    occupancy_max INTEGER NOT NULL,
    PRIMARY KEY (width_ms, space, bucket_start)
) WITHOUT ROWID;

CREATE TABLE flow_rollup (
    width_ms INTEGER NOT NULL,
    camera TEXT NOT NULL,
    line TEXT NOT NULL,
    bucket_start INTEGER NOT NULL,
    entries INTEGER NOT NULL,
    exits INTEGER NOT NULL,
    PRIMARY KEY (width_ms, camera, line, bucket_start)
) WITHOUT ROWID;

CREATE TABLE dwell_rollup (
    width_ms INTEGER NOT NULL,
    camera TEXT NOT NULL,
    zone TEXT NOT NULL,
    bucket_start INTEGER NOT NULL,
    bin INTEGER NOT NULL,
    visits INTEGER NOT NULL,
    PRIMARY KEY (width_ms, camera, zone, bucket_start, bin)
) WITHOUT ROWID;

-- How far each width is rolled up: every bucket that ends at or before
-- done_until is complete.
CREATE TABLE rollup_mark (
    width_ms INTEGER PRIMARY KEY,
    done_until INTEGER NOT NULL
) WITHOUT ROWID;

-- The last retention sweep of each data class (receipts are in audit_log).
CREATE TABLE retention_sweep (
    class TEXT PRIMARY KEY,
    swept_at INTEGER NOT NULL,
    cutoff INTEGER NOT NULL,          -- rows that started before this were deleted
    rows INTEGER NOT NULL             -- rows deleted by that sweep
) WITHOUT ROWID;

-- What external consumers (planners, MQTT, Prometheus) may see of each
-- space, decided once per bucket after it is rolled up and never revised
-- (crate::disclosure): a count below k, zero included, and the cells that
-- would reveal one are withheld (NULL, named in `withheld`); with
-- differential privacy each published value holds its noise, drawn once.
CREATE TABLE published_aggregate (
    width_ms INTEGER NOT NULL,        -- 900000, 3600000 or 86400000
    space TEXT NOT NULL,
    bucket_start INTEGER NOT NULL,
    entries INTEGER,                  -- NULL: withheld, or the space has no entrances
    exits INTEGER,
    occupancy_mean REAL,
    occupancy_peak INTEGER,
    withheld TEXT NOT NULL,           -- comma-separated measures withheld, '' for none
    epsilon REAL,                     -- the noise's epsilon; NULL: exact values
    published_ms INTEGER NOT NULL,    -- when it was decided
    PRIMARY KEY (width_ms, space, bucket_start)
) WITHOUT ROWID;

-- How far each width is published: every bucket ending at or before
-- done_until is decided.
CREATE TABLE publish_mark (
    width_ms INTEGER PRIMARY KEY,
    done_until INTEGER NOT NULL
) WITHOUT ROWID;

-- The differential-privacy ledger: epsilon spent per UTC day of the data. A
-- release is one published bucket of one space, noised once; spent is
-- releases x epsilon, capped by aggregates.daily_epsilon.
CREATE TABLE privacy_ledger (
    day INTEGER PRIMARY KEY,          -- start of the UTC day the buckets belong to
    releases INTEGER NOT NULL,
    spent REAL NOT NULL
) WITHOUT ROWID;

-- The MQTT brokers the fleet feed delivers to, named by address and topic
-- prefix (never credentials), and since when.
CREATE TABLE fleet_broker (
    broker TEXT PRIMARY KEY,
    since_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- The fleet outbox: each published bucket waits here for each broker until
-- the broker has acknowledged it, across restarts and broker outages.
CREATE TABLE fleet_outbox (
    broker TEXT NOT NULL,
    width_ms INTEGER NOT NULL,
    space TEXT NOT NULL,
    bucket_start INTEGER NOT NULL,
    PRIMARY KEY (broker, width_ms, space, bucket_start)
) WITHOUT ROWID;

-- Anomalies (the events data class, swept like the others).
CREATE TABLE anomaly_event (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,               -- anomaly::Kind, e.g. over_capacity
    subject_type TEXT NOT NULL,       -- zone, space, line or camera
    subject TEXT NOT NULL,            -- camera.zone, space, camera.line or camera
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,                 -- NULL while open
    severity TEXT NOT NULL,           -- info, warning or critical
    value REAL NOT NULL,              -- what was measured
    threshold REAL NOT NULL,          -- what it was compared with
    explanation TEXT NOT NULL,        -- counts and durations only: no identity
    acknowledged_ms INTEGER,
    acknowledged_by TEXT,             -- the token name
    UNIQUE (kind, subject_type, subject, started_ms)
);
CREATE INDEX anomaly_event_ended ON anomaly_event (ended_ms);

-- Bucket time, for the range steps of rollups, publication and sweeps.
CREATE INDEX occupancy_minute_time ON occupancy_minute (bucket_start);
CREATE INDEX space_minute_time ON space_minute (bucket_start);
CREATE INDEX flow_minute_time ON flow_minute (bucket_start);
CREATE INDEX dwell_minute_time ON dwell_minute (bucket_start);
CREATE INDEX occupancy_rollup_time ON occupancy_rollup (width_ms, bucket_start);
CREATE INDEX space_rollup_time ON space_rollup (width_ms, bucket_start);
CREATE INDEX flow_rollup_time ON flow_rollup (width_ms, bucket_start);
CREATE INDEX dwell_rollup_time ON dwell_rollup (width_ms, bucket_start);
