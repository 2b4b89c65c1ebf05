-- Rules for every migration here: never edit one that shipped (its checksum is recorded);
-- only add (tables, columns with defaults, indexes), because replicas of the previous
-- version keep running against the new schema during a rolling upgrade.
--
-- Public halves of the keys services sign plugin-to-plugin tokens with (DESIGN.md section 4).
-- Public parts only: the store refuses a JWK with private members before it gets here.
-- `expires_at` is unix seconds; a key is listed while expires_at > now.
CREATE TABLE IF NOT EXISTS s2s_public_keys (
    service_id TEXT NOT NULL,
    kid TEXT NOT NULL,
    jwk TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (service_id, kid)
) STRICT;

-- Pruning deletes by expiry across all services.
CREATE INDEX IF NOT EXISTS s2s_public_keys_expires_at ON s2s_public_keys (expires_at);
