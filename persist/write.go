package persist

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// insertBatch writes a whole batch in one statement: the events go in
// through unnest (one round trip, no temp table), duplicates of (session_id,
// version) are skipped, and sync_sessions is upserted from the rows that
// were really inserted, so a redelivered batch changes nothing.
//
// Settings never change after create, so the first known value wins; the
// status columns follow the highest version seen (last_version), so a late
// redelivery never moves a session backwards.
const insertBatch = `
WITH b AS (
  SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::int8[],
                       $7::int8[], $8::int8[], $9::int8[], $10::text[], $11::text[], $12::text[])
    AS t(session_id, version, event_type, participant_id, group_id, remaining,
         elapsed, cycle, ts_ms, state_kind, state, stream_id)
), ins AS (
  INSERT INTO sync_events (session_id, version, event_type, participant_id, group_id,
    time_remaining_ms, time_elapsed_ms, cycle_number, "timestamp", state_snapshot, metadata)
  SELECT session_id::uuid, version, event_type, participant_id::uuid, group_id::uuid,
    remaining, elapsed, cycle, timestamptz 'epoch' + ts_ms * interval '1 millisecond', state::jsonb,
    jsonb_build_object('stream_id', stream_id, 'state_kind', state_kind)
  FROM b
  ON CONFLICT (session_id, version) DO NOTHING
  RETURNING session_id, version, event_type, "timestamp", state_snapshot
), latest AS (
  SELECT DISTINCT ON (session_id) session_id, version, event_type, "timestamp",
    count(*) FILTER (WHERE event_type IN ('cycle_switched', 'participant_expired'))
      OVER (PARTITION BY session_id) AS cycles
  FROM ins
  ORDER BY session_id, version DESC
), st AS (
  -- the newest state in the batch (a delete carries none)
  SELECT DISTINCT ON (session_id) session_id,
    coalesce(state_snapshot->'session', state_snapshot) AS h, state_snapshot AS s
  FROM ins
  WHERE state_snapshot IS NOT NULL
  ORDER BY session_id, version DESC
), agg AS (
  SELECT * FROM latest LEFT JOIN st USING (session_id)
), up AS (
  INSERT INTO sync_sessions AS o (session_id, sync_mode, time_per_cycle_ms, increment_ms, max_time_ms,
    metadata, created_at, started_at, completed_at, last_updated_at, final_status, total_cycles,
    total_participants, last_version)
  SELECT session_id, h->>'sync_mode', (h->>'time_per_cycle_ms')::int8, (h->>'increment_ms')::int8,
    (h->>'max_time_ms')::int8, h->'metadata', (h->>'created_at')::timestamptz,
    (h->>'session_started_at')::timestamptz, (h->>'session_completed_at')::timestamptz, "timestamp",
    CASE WHEN event_type = 'session_deleted' THEN 'deleted' ELSE coalesce(h->>'status', 'unknown') END,
    cycles, coalesce((s->>'participant_count')::int4, jsonb_array_length(s->'participants')), version
  FROM agg
  ORDER BY session_id
  ON CONFLICT (session_id) DO UPDATE SET
    sync_mode = coalesce(o.sync_mode, excluded.sync_mode),
    time_per_cycle_ms = coalesce(o.time_per_cycle_ms, excluded.time_per_cycle_ms),
    increment_ms = coalesce(o.increment_ms, excluded.increment_ms),
    max_time_ms = coalesce(o.max_time_ms, excluded.max_time_ms),
    metadata = coalesce(o.metadata, excluded.metadata),
    created_at = coalesce(o.created_at, excluded.created_at),
    started_at = coalesce(o.started_at, excluded.started_at),
    completed_at = coalesce(o.completed_at, excluded.completed_at),
    total_participants = coalesce(o.total_participants, excluded.total_participants),
    total_cycles = o.total_cycles + excluded.total_cycles,
    last_updated_at = CASE WHEN excluded.last_version > o.last_version THEN excluded.last_updated_at ELSE o.last_updated_at END,
    final_status = CASE WHEN excluded.last_version > o.last_version THEN excluded.final_status ELSE o.final_status END,
    last_version = greatest(o.last_version, excluded.last_version)
  RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM up)`

// columns holds a batch column by column, the shape unnest wants.
type columns struct {
	sessionID, typ, stateKind, streamID []string
	participantID, groupID, state       []*string
	version, ts                         []int64
	remaining, elapsed, cycle           []*int64
}

func (c *columns) reset(n int) {
	*c = columns{
		sessionID: make([]string, 0, n), typ: make([]string, 0, n), stateKind: make([]string, 0, n),
		streamID: make([]string, 0, n), participantID: make([]*string, 0, n), groupID: make([]*string, 0, n),
		state: make([]*string, 0, n), version: make([]int64, 0, n), ts: make([]int64, 0, n),
		remaining: make([]*int64, 0, n), elapsed: make([]*int64, 0, n), cycle: make([]*int64, 0, n),
	}
}

func (c *columns) add(e *event) {
	c.sessionID = append(c.sessionID, e.sessionID)
	c.version = append(c.version, e.version)
	c.typ = append(c.typ, e.typ)
	c.participantID = append(c.participantID, e.participantID)
	c.groupID = append(c.groupID, e.groupID)
	c.remaining = append(c.remaining, e.remaining)
	c.elapsed = append(c.elapsed, e.elapsed)
	c.cycle = append(c.cycle, e.cycle)
	c.ts = append(c.ts, e.timestampMS)
	c.stateKind = append(c.stateKind, e.stateKind)
	c.state = append(c.state, e.state)
	c.streamID = append(c.streamID, e.stream+"/"+e.id)
}

// hook lets tests stop the worker at a point of a batch, as a crash would.
type hook func(stage string) bool

// writeBatch writes evs in one transaction and returns how many rows were
// new. beforeCommit, when it returns true, abandons the transaction (a
// simulated crash before the commit).
func writeBatch(ctx context.Context, pool *pgxpool.Pool, evs []event, h hook) (int64, error) {
	var c columns
	c.reset(len(evs))
	for i := range evs {
		c.add(&evs[i])
	}
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	var inserted, sessions int64
	err = tx.QueryRow(ctx, insertBatch, c.sessionID, c.version, c.typ, c.participantID, c.groupID,
		c.remaining, c.elapsed, c.cycle, c.ts, c.stateKind, c.state, c.streamID).Scan(&inserted, &sessions)
	if err != nil {
		return 0, err
	}
	if h != nil && h("before_commit") {
		return 0, errCrashed
	}
	return inserted, tx.Commit(ctx)
}
