-- Incarnations. A session id can be created again after a delete or after
-- its keys expired, and the new life's versions start again at 1.
-- sync_events and sync_sessions hold the current life; the rows of earlier
-- ones move to sync_events_superseded. Each event keeps the id of the
-- stream entry it came from: the worker orders a session's lives by it, and
-- a redelivered entry is recognised by it. IF NOT EXISTS throughout, so the
-- file is safe to run twice.

-- NULL for rows written before this migration.
ALTER TABLE sync_events ADD COLUMN IF NOT EXISTS stream_id text;

-- A stream entry id ("ms-seq") as a value that sorts as Redis orders them.
CREATE OR REPLACE FUNCTION stream_pos(id text) RETURNS numeric[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT string_to_array(id, '-')::numeric[] $$;

CREATE TABLE IF NOT EXISTS sync_events_superseded (
    -- A moved row keeps its sync_events id; one that arrives late takes the
    -- next from the same sequence, so an id names one event in both tables.
    id                      bigint PRIMARY KEY DEFAULT nextval('sync_events_id_seq'),
    session_id              uuid NOT NULL,
    version                 bigint NOT NULL,
    event_type              text NOT NULL,
    participant_id          uuid,
    group_id                uuid,
    time_remaining_ms       bigint,
    time_elapsed_ms         bigint,
    cycle_number            bigint,
    "timestamp"             timestamptz NOT NULL,
    state_snapshot          jsonb,
    metadata                jsonb,
    stream_id               text,
    -- Which life: its created_at. NULL when unknown (a late delete, which
    -- carries no state, with nothing of its life recorded before it).
    incarnation_created_at  timestamptz,
    superseded_at           timestamptz NOT NULL DEFAULT now(),
    -- One row per stream entry: a redelivery is skipped. (Not unique on
    -- created_at and version: two lives created in the same millisecond
    -- share a created_at.)
    CONSTRAINT sync_events_superseded_entry_key UNIQUE (session_id, stream_id)
);

-- A session's earlier lives, each in version order.
CREATE INDEX IF NOT EXISTS sync_events_superseded_session_idx
    ON sync_events_superseded (session_id, incarnation_created_at, version);
