-- Indexes on bucket time: rollups, publication and sweeps select ranges of
-- time, in steps of a few hours; without these each step scanned the whole
-- table, which made catching up on a long backlog quadratic.
CREATE INDEX occupancy_minute_time ON occupancy_minute (bucket_start);
CREATE INDEX space_minute_time ON space_minute (bucket_start);
CREATE INDEX flow_minute_time ON flow_minute (bucket_start);
CREATE INDEX dwell_minute_time ON dwell_minute (bucket_start);
CREATE INDEX occupancy_rollup_time ON occupancy_rollup (width_ms, bucket_start);
CREATE INDEX space_rollup_time ON space_rollup (width_ms, bucket_start);
CREATE INDEX flow_rollup_time ON flow_rollup (width_ms, bucket_start);
CREATE INDEX dwell_rollup_time ON dwell_rollup (width_ms, bucket_start);
