-- Violations, their evidence, and each zone's tracker state.
-- Times are epoch milliseconds (UTC) so the same queries run on SQLite and
-- PostgreSQL through sqlx's Any driver.
CREATE TABLE violations (
    id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    zone TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    confirmed_ms BIGINT NOT NULL,
    cleared_ms BIGINT,
    last_obstructed_ms BIGINT NOT NULL,
    peak_score DOUBLE PRECISION NOT NULL,
    model_name TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    end_reason TEXT
);
CREATE INDEX violations_zone_start ON violations (zone, start_ms);
CREATE INDEX violations_status ON violations (status);

CREATE TABLE evidence (
    violation_id TEXT NOT NULL REFERENCES violations (id),
    kind TEXT NOT NULL,
    variant TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    captured_ms BIGINT NOT NULL,
    score DOUBLE PRECISION,
    PRIMARY KEY (violation_id, kind, variant)
);

CREATE TABLE zone_state (
    zone TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    phase TEXT NOT NULL,
    phase_json TEXT NOT NULL,
    last_at_ms BIGINT,
    violation_id TEXT,
    first_sha256 TEXT,
    first_captured_ms BIGINT,
    first_score DOUBLE PRECISION
);

-- Presence sensors report on change only: their last reading must survive
-- a restart.
CREATE TABLE sensor_state (
    sensor TEXT PRIMARY KEY,
    occupied BIGINT NOT NULL,
    measured_ms BIGINT NOT NULL
);
