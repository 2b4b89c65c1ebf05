-- Rules for every migration here: never edit one that shipped (its checksum is recorded);
-- only add (tables, columns with defaults, indexes), because replicas of the previous
-- version keep running against the new schema during a rolling upgrade.
--
-- Service accounts: named machine principals (`service-account:<name>`) and the most each
-- of their tokens may do. `permissions` is the accessRestrictions JSON the store writes, as
-- text (never hand-edited: a row it cannot read back is refused as invalid); times are unix
-- seconds. Every replica reads all of them into memory, and is woken by
-- NOTIFY s2s_auth_revocations (payload `account:<name>`, sent in the writing transaction,
-- so delivered only once the change is committed).
--
-- Names are COLLATE "C": byte order and byte equality whatever the database's locale, as
-- in the other stores (the queries say COLLATE "C" as well).
CREATE TABLE IF NOT EXISTS s2s_auth.service_accounts (
    name TEXT COLLATE "C" PRIMARY KEY,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The tokens of those accounts. The token itself is never stored, only its SHA-256
-- (`digest_sha256`, 64 lower-case hex digits): it is shown once when it is created, and a
-- copy of this table (a backup, a replica, a dump) holds nothing a caller could present.
-- `id` (`sat_` and 24 hex digits) is how a token is listed and revoked; `permissions` is
-- NULL for the account's own, or narrower accessRestrictions JSON; `expires_at` NULL: until
-- revoked; `last_used_at` NULL: never used (written in batches, not announced).
-- Deleting an account deletes its tokens.
CREATE TABLE IF NOT EXISTS s2s_auth.account_tokens (
    id TEXT COLLATE "C" PRIMARY KEY,
    account TEXT COLLATE "C" NOT NULL
        REFERENCES s2s_auth.service_accounts (name) ON DELETE CASCADE,
    name TEXT COLLATE "C" NOT NULL,
    digest_sha256 TEXT NOT NULL UNIQUE,
    permissions TEXT,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    -- Also the index for listing an account's tokens by name, and for the cascade.
    UNIQUE (account, name)
);
