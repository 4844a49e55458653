-- Step 4: API tokens. Only a keyed digest of each token's secret half is
-- kept; a token is found by its public id and checked in constant time.
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
