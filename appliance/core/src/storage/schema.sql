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
) WITHOUT ROWID;

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
