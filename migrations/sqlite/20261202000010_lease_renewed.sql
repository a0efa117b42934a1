-- Cluster mode: when each lease was last renewed (database clock, ms), so
-- a silent holder's unjudged span starts at its own last renewal whatever
-- lease length the taker runs with.
ALTER TABLE camera_leases ADD COLUMN renewed_ms BIGINT;
