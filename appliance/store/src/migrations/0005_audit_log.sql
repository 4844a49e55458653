-- Step 5: the hash-chained audit log, its signed checkpoints, and the anchor
-- retention leaves when it removes old entries.

-- The audit log, for the data-protection officer: who read, changed, exported
-- or deleted what, and when (token names and roles, never a counted person's
-- data). Each entry's hash covers the previous entry's hash and every field,
-- so an entry changed or removed by hand breaks the chain.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,          -- 1, 2, 3, ... without gaps
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,              -- token name, or the appliance part that acted ("retention")
    role TEXT NOT NULL,               -- the actor's role: admin, facilities, planner, dpo or system
    action TEXT NOT NULL,             -- api_access, token_change, config_change, export or deletion
    target TEXT NOT NULL,             -- route, token name or data class acted on
    rows INTEGER NOT NULL,            -- rows read, changed or deleted
    detail TEXT NOT NULL,             -- JSON; never personal data
    prev_hash BLOB NOT NULL,          -- the previous entry's hash; 32 zero bytes before the first
    hash BLOB NOT NULL                -- SHA-256 over prev_hash and every field above
);

CREATE INDEX audit_log_at ON audit_log (at_ms);

-- Checkpoints: the device's audit key (state_dir/audit-signing.pk8, Ed25519)
-- signs an entry's seq and hash, vouching for the whole chain up to it, so a
-- rewritten chain or a log cut short is caught too.
CREATE TABLE audit_checkpoint (
    seq INTEGER PRIMARY KEY,          -- the entry it seals
    at_ms INTEGER NOT NULL,           -- when it was signed
    hash BLOB NOT NULL,               -- that entry's hash
    signature BLOB NOT NULL           -- Ed25519 over (seq, at_ms, hash)
) WITHOUT ROWID;

-- Where the kept log starts once retention has removed older entries: the
-- last removed entry, whose hash the oldest kept entry links to. A deletion
-- receipt in the log records the same seq and hash.
CREATE TABLE audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1), -- one row, replaced on each sweep
    seq INTEGER NOT NULL,             -- the last entry removed
    hash BLOB NOT NULL,               -- its hash
    cutoff_ms INTEGER NOT NULL        -- entries older than this were removed
) WITHOUT ROWID;
