-- Rules for every migration here: never edit one that shipped (its checksum is recorded);
-- only add (tables, columns with defaults, indexes), because replicas of the previous
-- version keep running against the new schema during a rolling upgrade.
--
-- Service accounts: named machine principals (`service-account:<name>`) and the most each
-- of their tokens may do. `permissions` is the accessRestrictions JSON the store writes
-- (never hand-edited: a row it cannot read back is refused as invalid); `enabled` is 0 or
-- 1; times are unix seconds. Every replica reads all of them into memory.
CREATE TABLE IF NOT EXISTS s2s_service_accounts (
    name TEXT NOT NULL PRIMARY KEY,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL,
    enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- The tokens of those accounts. The token itself is never stored, only its SHA-256
-- (`digest_sha256`, 64 lower-case hex digits): it is shown once when it is created, and a
-- copy of this file (a backup, a leaked volume) holds nothing a caller could present.
-- `id` (`sat_` and 24 hex digits) is how a token is listed and revoked; `permissions` is
-- NULL for the account's own, or narrower accessRestrictions JSON; `expires_at` NULL: until
-- revoked; `last_used_at` NULL: never used (written in batches, so it lags a little).
--
-- Deleting an account deletes its tokens. The cascade needs `PRAGMA foreign_keys = ON`
-- on the connection (sqlx sets it; SQLite's own default is off), so SqliteStore also
-- deletes the tokens explicitly in the same transaction.
CREATE TABLE IF NOT EXISTS s2s_account_tokens (
    id TEXT NOT NULL PRIMARY KEY,
    account TEXT NOT NULL REFERENCES s2s_service_accounts (name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    digest_sha256 TEXT NOT NULL UNIQUE,
    permissions TEXT,
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    -- Also the index for listing an account's tokens by name, and for the cascade.
    UNIQUE (account, name)
) STRICT;
