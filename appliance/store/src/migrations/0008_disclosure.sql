-- Step 8: disclosure at every exit. Published cells are per space only (no
-- entrance rows), a count below k (zero included) is withheld, and noise is
-- stored with the cell it was drawn for. Every cell is decided again under
-- these rules from the rollups (no publish_mark yet). Budgets per consumer
-- give way to a ledger per day of data; the fleet feed gets an outbox.
DROP TABLE published_aggregate;
DROP TABLE privacy_budget;

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
