-- Step 1: per-minute zone occupancy.
CREATE TABLE occupancy_minute (
    camera TEXT NOT NULL,             -- camera name from the config
    zone TEXT NOT NULL,               -- zone name within that camera
    bucket_start INTEGER NOT NULL,    -- start of the minute
    samples INTEGER NOT NULL,         -- analysed frames that fell in the minute
    occupancy_sum INTEGER NOT NULL,   -- sum of smoothed occupancy; mean = sum / samples
    occupancy_max INTEGER NOT NULL,   -- highest smoothed occupancy in the minute
    PRIMARY KEY (camera, zone, bucket_start)
) WITHOUT ROWID;
