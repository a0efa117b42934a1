-- Enforcement: what a violation was judged against, officers' reviews, API
-- tokens and the hash-chained audit log.

-- Snapshot at confirmation, so a bundle states the zone as it was then,
-- whatever the config says later.
ALTER TABLE violations ADD COLUMN zone_polygon TEXT NOT NULL DEFAULT '[]';
ALTER TABLE violations ADD COLUMN config_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE violations ADD COLUMN review_status TEXT NOT NULL DEFAULT 'pending';
CREATE INDEX violations_start ON violations (start_ms);

CREATE TABLE reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    violation_id TEXT NOT NULL REFERENCES violations (id),
    status TEXT NOT NULL,
    note TEXT NOT NULL,
    actor TEXT NOT NULL,
    actor_token TEXT NOT NULL,
    role TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX reviews_violation ON reviews (violation_id, id);

-- Only the SHA-256 of a token's secret is kept.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);

-- Append-only; each entry's hash covers the previous entry's hash.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    actor_token TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
