-- Step 7: anomalies (the events data class, swept like the others).
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
