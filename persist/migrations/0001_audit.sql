-- The audit trail: one row per session (kept current) and one per event.
-- Names are unqualified: the connection's search_path picks the schema.

CREATE TABLE sync_sessions (
    session_id          uuid PRIMARY KEY,
    sync_mode           text,
    time_per_cycle_ms   bigint,
    increment_ms        bigint,
    max_time_ms         bigint,
    metadata            jsonb,
    created_at          timestamptz,
    started_at          timestamptz,
    completed_at        timestamptz,
    last_updated_at     timestamptz NOT NULL,
    final_status        text NOT NULL,
    total_cycles        bigint NOT NULL DEFAULT 0,
    total_participants  integer,
    -- last_version is the version the status columns describe, so a batch
    -- redelivered late never moves a session backwards.
    last_version        bigint NOT NULL
);

CREATE INDEX sync_sessions_status_idx ON sync_sessions (final_status, created_at);
CREATE INDEX sync_sessions_created_idx ON sync_sessions (created_at);

CREATE TABLE sync_events (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id         uuid NOT NULL,
    version            bigint NOT NULL,
    event_type         text NOT NULL,
    participant_id     uuid,
    group_id           uuid,
    time_remaining_ms  bigint,
    time_elapsed_ms    bigint,
    cycle_number       bigint,
    "timestamp"        timestamptz NOT NULL,
    state_snapshot     jsonb,
    metadata           jsonb,  -- annotations; NULL for script events (the state says it all)
    -- Also the index for "a session's events in version order".
    CONSTRAINT sync_events_session_version_key UNIQUE (session_id, version)
);
