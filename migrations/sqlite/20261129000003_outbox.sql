-- The alert outbox: one row per alert and channel target, written before
-- the zone state that caused it, delivered (and retried) by the daemon.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    site TEXT NOT NULL,
    violation_id TEXT NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    event_ms BIGINT NOT NULL,
    sent_ms BIGINT,
    last_error TEXT,
    UNIQUE (event_key, channel, target)
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_ms);
