-- Step 6: rollups, published aggregates, retention sweeps, privacy budgets.
-- Coarser buckets rolled up from finer ones (15 min from the minutes, 1 h
-- from 15 min, 1 d from 1 h), each width kept as long as its data class.
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
-- done_until is complete and published.
CREATE TABLE rollup_mark (
    width_ms INTEGER PRIMARY KEY,
    done_until INTEGER NOT NULL
) WITHOUT ROWID;

-- What external consumers (planners, MQTT, Prometheus) may see, decided once
-- per bucket when it is rolled up: small counts and the cells that would
-- reveal them are withheld. NULL: withheld (named in `withheld`) or not
-- applicable (a space without entrances has no entries).
CREATE TABLE published_aggregate (
    width_ms INTEGER NOT NULL,
    space TEXT NOT NULL,
    bucket_start INTEGER NOT NULL,
    member TEXT NOT NULL,             -- '' for the whole space, else an entrance (camera.line)
    entries INTEGER,
    exits INTEGER,
    occupancy_mean REAL,              -- whole space only
    occupancy_peak INTEGER,           -- whole space only
    withheld TEXT NOT NULL,           -- comma-separated measures withheld, '' for none
    PRIMARY KEY (width_ms, space, bucket_start, member)
) WITHOUT ROWID;

-- The last retention sweep of each data class (receipts are in audit_log).
CREATE TABLE retention_sweep (
    class TEXT PRIMARY KEY,
    swept_at INTEGER NOT NULL,
    cutoff INTEGER NOT NULL,          -- rows that started before this were deleted
    rows INTEGER NOT NULL             -- rows deleted by that sweep
) WITHOUT ROWID;

-- Differential-privacy budget spent per API consumer (token name) and UTC day.
CREATE TABLE privacy_budget (
    consumer TEXT NOT NULL,
    day INTEGER NOT NULL,             -- start of the UTC day
    spent REAL NOT NULL,
    PRIMARY KEY (consumer, day)
) WITHOUT ROWID;
