-- Cluster mode ([cluster] enabled, PostgreSQL): the instances, which one
-- holds each camera (a lease with a fencing epoch), and outbox claims so
-- each alert is sent by one instance. Times are the database's clock in
-- ms, so instances' clocks never need to agree.
CREATE TABLE cluster_members (
    id TEXT PRIMARY KEY,
    api_url TEXT,
    started_ms BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL
);

CREATE TABLE camera_leases (
    camera TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    taken_ms BIGINT NOT NULL
);

ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until_ms BIGINT;
