-- Rules for every migration here: never edit one that shipped (its checksum is recorded);
-- only add (tables, columns with defaults, indexes), because replicas of the previous
-- version keep running against the new schema during a rolling upgrade.
--
-- Revoked just-in-time on-behalf-of tokens, by `jti` (DESIGN.md section 4). A row is kept
-- until the token's own `exp` (`expires_at`, unix seconds); after that the token is refused
-- anyway and the row is pruned. Every replica reads the whole live list into memory, and is
-- woken by NOTIFY s2s_auth_revocations (sent in the revoking transaction, so delivered only
-- once the row is committed).
CREATE TABLE IF NOT EXISTS s2s_auth.revocations (
    jti TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

-- Listing (expires_at > now) and pruning (expires_at <= now) go by expiry.
CREATE INDEX IF NOT EXISTS revocations_expires_at ON s2s_auth.revocations (expires_at);

-- Each just-in-time token issued here, never the token itself: who it acts for and until
-- when, so a revocation by `jti` can check who may revoke it.
CREATE TABLE IF NOT EXISTS s2s_auth.issued_tokens (
    jti TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Pruning deletes by expiry.
CREATE INDEX IF NOT EXISTS issued_tokens_expires_at ON s2s_auth.issued_tokens (expires_at);
