-- When each alert row was queued (wall clock): delivery gives up that long
-- after queuing, not after the event (a camera's clock, a replay or a
-- backlog must not expire an alert before it was ever tried). Rows from
-- before this column count from their event time.
ALTER TABLE outbox ADD COLUMN queued_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX outbox_target ON outbox (channel, target, status, id);
