-- The audit actor: the verified token's sub of the call that made the event
-- (AUTH_MODE=jwt), so "who ended my turn?" has an answer. NULL with
-- AUTH_MODE=off, for events no caller made (an expiry the scheduler
-- applied), and for rows written before this migration.
ALTER TABLE sync_events ADD COLUMN IF NOT EXISTS actor text;
ALTER TABLE sync_events_superseded ADD COLUMN IF NOT EXISTS actor text;
