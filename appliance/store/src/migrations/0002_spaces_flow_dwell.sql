-- Step 2: space occupancy, line crossings and dwell histograms per minute.
CREATE TABLE space_minute (
    space TEXT NOT NULL,              -- space name from the config
    bucket_start INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    occupancy_sum INTEGER NOT NULL,
    occupancy_max INTEGER NOT NULL,
    PRIMARY KEY (space, bucket_start)
) WITHOUT ROWID;

CREATE TABLE flow_minute (
    camera TEXT NOT NULL,
    line TEXT NOT NULL,               -- line name within that camera
    bucket_start INTEGER NOT NULL,
    entries INTEGER NOT NULL,         -- crossings onto the line's "in" side
    exits INTEGER NOT NULL,
    PRIMARY KEY (camera, line, bucket_start)
) WITHOUT ROWID;

CREATE TABLE dwell_minute (
    camera TEXT NOT NULL,
    zone TEXT NOT NULL,
    bucket_start INTEGER NOT NULL,    -- the minute in which the visits ended
    bin INTEGER NOT NULL,             -- durations in [1.05^bin, 1.05^(bin+1)) seconds
    visits INTEGER NOT NULL,
    PRIMARY KEY (camera, zone, bucket_start, bin)
) WITHOUT ROWID;
