-- Lives. createSession stamps every session with a life (lua/README.md,
-- "Lives"), and every audit event carries it, so the rows of a session id
-- are keyed by (session_id, life, version): which life an event belongs to
-- is read, not guessed. sync_events and sync_sessions hold the current
-- life; earlier lives' rows are in sync_events_superseded with their life.
-- Rows written before this migration, and events from scripts before
-- lives, are life 0.

ALTER TABLE sync_sessions ADD COLUMN IF NOT EXISTS life bigint NOT NULL DEFAULT 0;

ALTER TABLE sync_events ADD COLUMN IF NOT EXISTS life bigint NOT NULL DEFAULT 0;
ALTER TABLE sync_events DROP CONSTRAINT IF EXISTS sync_events_session_version_key;
ALTER TABLE sync_events ADD CONSTRAINT sync_events_session_life_version_key UNIQUE (session_id, life, version);

ALTER TABLE sync_events_superseded ADD COLUMN IF NOT EXISTS life bigint NOT NULL DEFAULT 0;
-- Life 0 may hold several old lives of one id (told apart then by
-- incarnation_created_at), so the key covers the stamped lives only.
CREATE UNIQUE INDEX IF NOT EXISTS sync_events_superseded_life_key
    ON sync_events_superseded (session_id, life, version) WHERE life > 0;
