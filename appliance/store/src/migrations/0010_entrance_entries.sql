-- Step 10: each entrance-counted space's entries since its last reset,
-- saved with its count, so that the drift tolerance (which grows with the
-- day's entries) survives a restart. A count saved before this step has
-- no entries on record: 0, the configured tolerance, until its next reset.
ALTER TABLE entrance_count ADD COLUMN entries INTEGER NOT NULL DEFAULT 0;
