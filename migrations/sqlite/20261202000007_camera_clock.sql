-- Each camera's latest capture time, so a restart keeps refusing frames
-- older than what was already judged.
CREATE TABLE camera_clock (
    camera TEXT PRIMARY KEY,
    last_captured_ms BIGINT NOT NULL,
    saved_ms BIGINT NOT NULL
);
