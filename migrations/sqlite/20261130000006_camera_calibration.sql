-- Each camera's threshold as calibrated from its confident presence
-- sensors; kept so a restart keeps what the camera has learned.
CREATE TABLE camera_calibration (
    camera TEXT PRIMARY KEY,
    threshold DOUBLE PRECISION NOT NULL,
    samples BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
