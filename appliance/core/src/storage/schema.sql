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
