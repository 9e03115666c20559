package persist

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// createBatchTable is where COPY puts a batch: per connection, emptied at
// every commit. Text columns: casts happen once, in insertBatch.
const createBatchTable = `CREATE TEMP TABLE IF NOT EXISTS persist_batch (
  session_id text, version int8, event_type text, participant_id text, group_id text,
  remaining int8, elapsed int8, cycle int8, ts_ms int8, state text) ON COMMIT DELETE ROWS`

var batchColumns = []string{"session_id", "version", "event_type", "participant_id", "group_id",
	"remaining", "elapsed", "cycle", "ts_ms", "state"}

// insertBatch moves the COPYed batch into sync_events in one statement;
// duplicates of (session_id, version) are skipped. sync_sessions is
// upserted from the batch's newest event and state per session, which the
// worker computes ($1..$5): total_cycles counts only rows this statement
// inserted, and the status columns move only to a higher version
// (last_version), so a redelivered batch changes nothing and a late one
// never moves a session backwards. Settings never change after create: the
// first known value wins.
const insertBatch = `
WITH ins AS (
  INSERT INTO sync_events (session_id, version, event_type, participant_id, group_id,
    time_remaining_ms, time_elapsed_ms, cycle_number, "timestamp", state_snapshot)
  SELECT session_id::uuid, version, event_type, participant_id::uuid, group_id::uuid,
    remaining, elapsed, cycle, timestamptz 'epoch' + ts_ms * interval '1 millisecond', state::jsonb
  FROM persist_batch
  ON CONFLICT (session_id, version) DO NOTHING
  RETURNING session_id, event_type
), cyc AS (
  SELECT session_id, count(*) FILTER (WHERE event_type IN ('cycle_switched', 'participant_expired')) AS n
  FROM ins GROUP BY session_id
), s AS (
  SELECT t.session_id::uuid AS session_id, t.version, t.event_type, t.ts_ms, t.state::jsonb AS st
  FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::text[])
    AS t(session_id, version, event_type, ts_ms, state)
), up AS (
  INSERT INTO sync_sessions AS o (session_id, sync_mode, time_per_cycle_ms, increment_ms, max_time_ms,
    metadata, created_at, started_at, completed_at, last_updated_at, final_status, total_cycles,
    total_participants, last_version)
  SELECT s.session_id, h->>'sync_mode', (h->>'time_per_cycle_ms')::int8, (h->>'increment_ms')::int8,
    (h->>'max_time_ms')::int8, h->'metadata', (h->>'created_at')::timestamptz,
    (h->>'session_started_at')::timestamptz, (h->>'session_completed_at')::timestamptz,
    timestamptz 'epoch' + s.ts_ms * interval '1 millisecond',
    CASE WHEN s.event_type = 'session_deleted' THEN 'deleted' ELSE coalesce(h->>'status', 'unknown') END,
    coalesce(cyc.n, 0), coalesce((st->>'participant_count')::int4, jsonb_array_length(st->'participants')),
    s.version
  FROM s CROSS JOIN LATERAL (SELECT coalesce(s.st->'session', s.st) AS h) x
    LEFT JOIN cyc ON cyc.session_id = s.session_id
  ORDER BY s.session_id
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

// sessionCols holds, per session of a batch, its newest event and the
// newest state (a delete carries none).
type sessionCols struct {
	sessionID, typ []string
	version, ts    []int64
	state          []*string
}

func sessionsOf(evs []event) sessionCols {
	at := map[string]int{}
	var c sessionCols
	var stateVersion []int64
	for i := range evs {
		e := &evs[i]
		j, ok := at[e.sessionID]
		if !ok {
			j = len(c.sessionID)
			at[e.sessionID] = j
			c.sessionID = append(c.sessionID, e.sessionID)
			c.typ, c.version, c.ts = append(c.typ, e.typ), append(c.version, e.version), append(c.ts, e.timestampMS)
			c.state, stateVersion = append(c.state, nil), append(stateVersion, 0)
		}
		if e.version > c.version[j] {
			c.typ[j], c.version[j], c.ts[j] = e.typ, e.version, e.timestampMS
		}
		if e.state != nil && e.version > stateVersion[j] {
			c.state[j], stateVersion[j] = e.state, e.version
		}
	}
	return c
}

// hook lets tests stop the worker at a point of a batch, as a crash would.
type hook func(stage string) bool

// writeBatch writes evs in one transaction and returns how many rows were
// new. When h("before_commit") returns true it abandons the transaction,
// as a crash before the commit would.
func writeBatch(ctx context.Context, pool *pgxpool.Pool, evs []event, h hook) (int64, error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, createBatchTable); err != nil {
		return 0, err
	}
	// COPY streams the rows: no batch-sized parameter buffer on either side.
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"persist_batch"}, batchColumns,
		pgx.CopyFromSlice(len(evs), func(i int) ([]any, error) {
			e := &evs[i]
			return []any{e.sessionID, e.version, e.typ, e.participantID, e.groupID,
				e.remaining, e.elapsed, e.cycle, e.timestampMS, e.state}, nil
		}))
	if err != nil {
		return 0, err
	}
	sc := sessionsOf(evs)
	var inserted, sessions int64
	err = tx.QueryRow(ctx, insertBatch, sc.sessionID, sc.version, sc.typ, sc.ts, sc.state).Scan(&inserted, &sessions)
	if err != nil {
		return 0, err
	}
	if h != nil && h("before_commit") {
		return 0, errCrashed
	}
	return inserted, tx.Commit(ctx)
}
