-- Cluster mode: when a camera was judged by no instance. A clean stop or
-- a handover records when it let the camera go (released_ms); a takeover
-- then records the span from that moment, or from the silent holder's
-- last renewal, to the new lease (database clock, ms).
ALTER TABLE camera_leases ADD COLUMN released_ms BIGINT;

CREATE TABLE camera_unwatched (
    id BIGSERIAL PRIMARY KEY,
    camera TEXT NOT NULL,
    previous_owner TEXT NOT NULL,
    owner TEXT NOT NULL,
    cause TEXT NOT NULL,
    from_ms BIGINT NOT NULL,
    to_ms BIGINT NOT NULL
);
CREATE INDEX camera_unwatched_camera ON camera_unwatched (camera, to_ms);
