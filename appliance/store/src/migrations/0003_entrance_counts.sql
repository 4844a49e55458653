-- Step 3: the latest entries-minus-exits count of each entrance-counted
-- space, so that a restart does not empty a building that is not empty.
CREATE TABLE entrance_count (
    space TEXT PRIMARY KEY,           -- space name from the config
    count INTEGER NOT NULL,
    saved_at INTEGER NOT NULL         -- time of the latest frame counted
) WITHOUT ROWID;
