package persist

import (
	"context"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// createBatchTable is where COPY puts a batch: per connection, emptied at
// every commit. Text columns: casts happen once, in insertBatch.
// superseded is the worker's placement (lives.go).
const createBatchTable = `CREATE TEMP TABLE IF NOT EXISTS persist_batch (
  session_id text, life int8, version int8, event_type text, participant_id text, group_id text,
  remaining int8, elapsed int8, cycle int8, ts_ms int8, state text,
  stream_id text, superseded bool, actor text) ON COMMIT DELETE ROWS`

var batchColumns = []string{"session_id", "life", "version", "event_type", "participant_id", "group_id",
	"remaining", "elapsed", "cycle", "ts_ms", "state", "stream_id", "superseded", "actor"}

// eventColumns are the columns of sync_events (and sync_events_superseded)
// that a batch row fills, and batchValues fills them from persist_batch b.
const (
	eventColumns = `session_id, life, version, event_type, participant_id, group_id,
    time_remaining_ms, time_elapsed_ms, cycle_number, "timestamp", state_snapshot, stream_id, actor`
	batchValues = `b.session_id::uuid, b.life, b.version, b.event_type, b.participant_id::uuid, b.group_id::uuid,
    b.remaining, b.elapsed, b.cycle, timestamptz 'epoch' + b.ts_ms * interval '1 millisecond', b.state::jsonb,
    b.stream_id, b.actor`
)

// The batch's sessions are locked before anything is decided about them, so
// two workers (or lanes) holding events of one session serialise. A session
// never seen gets a placeholder row first, which its events then fill (a
// row lock needs a row); ascending order everywhere avoids deadlocks.
const (
	placeholderSessions = `INSERT INTO sync_sessions (session_id, last_updated_at, final_status, last_version)
  SELECT DISTINCT t.id::uuid, timestamptz 'epoch', 'unknown', 0 FROM unnest($1::text[]) AS t(id) ORDER BY 1
  ON CONFLICT (session_id) DO NOTHING`
	lockSessions = `SELECT 1 FROM sync_sessions WHERE session_id = ANY($1::text[]::uuid[])
  ORDER BY session_id FOR UPDATE`
	// A statement of its own, after the lock: its snapshot then holds what
	// the transaction that held the lock before committed.
	readLives = `SELECT s.session_id::text, s.life FROM sync_sessions s
  WHERE s.session_id = ANY($1::text[]::uuid[])
    AND EXISTS (SELECT 1 FROM sync_events e WHERE e.session_id = s.session_id)`
)

// supersede moves the recorded life of sessions $1 (a batch met a newer
// one) from sync_events to sync_events_superseded, and empties their
// sync_sessions rows for the new life to fill.
const supersede = `
WITH sw AS (
  SELECT session_id, created_at FROM sync_sessions WHERE session_id = ANY($1::text[]::uuid[])
), moved AS (
  DELETE FROM sync_events e USING sw WHERE e.session_id = sw.session_id
  RETURNING e.id, e.session_id, e.life, e.version, e.event_type, e.participant_id, e.group_id, e.time_remaining_ms,
    e.time_elapsed_ms, e.cycle_number, e."timestamp", e.state_snapshot, e.metadata, e.stream_id, e.actor, sw.created_at
), kept AS (
  INSERT INTO sync_events_superseded (id, session_id, life, version, event_type, participant_id, group_id,
    time_remaining_ms, time_elapsed_ms, cycle_number, "timestamp", state_snapshot, metadata, stream_id,
    actor, incarnation_created_at)
  SELECT * FROM moved
  ON CONFLICT DO NOTHING
  RETURNING 1
), reset AS (
  UPDATE sync_sessions o SET sync_mode = NULL, time_per_cycle_ms = NULL, increment_ms = NULL,
    max_time_ms = NULL, metadata = NULL, created_at = NULL, started_at = NULL, completed_at = NULL,
    final_status = 'unknown', total_cycles = 0, total_participants = NULL, last_version = 0, life = 0
  FROM sw WHERE o.session_id = sw.session_id
  RETURNING 1
)
SELECT (SELECT count(*) FROM moved)`

// insertSuperseded writes the COPYed events the worker placed in an earlier
// life (only run when there are some); a redelivered one is skipped. The
// life's created_at tags the row when the state says it (a delete carries
// no state).
const insertSuperseded = `
INSERT INTO sync_events_superseded (` + eventColumns + `, incarnation_created_at)
SELECT ` + batchValues + `, (coalesce(b.state::jsonb->'session', b.state::jsonb)->>'created_at')::timestamptz
FROM persist_batch b WHERE b.superseded
ON CONFLICT DO NOTHING`

// insertBatch moves the COPYed batch's current events into sync_events in
// one statement; duplicates of (session_id, life, version) are skipped
// (another stream entry under a recorded life 0 version is no duplicate:
// see insertClashes). sync_sessions is upserted from the batch's newest
// current event and state per session, which the worker computes
// ($1..$5): total_cycles counts only rows this statement inserted, and the
// status columns move only to a higher version (last_version), so a
// redelivered batch changes nothing and a late one never moves a session
// backwards. Settings never change within a life: the first known value
// wins.
const insertBatch = `
WITH ins AS (
  INSERT INTO sync_events (` + eventColumns + `)
  SELECT ` + batchValues + `
  FROM persist_batch b WHERE NOT b.superseded
  ON CONFLICT (session_id, life, version) DO NOTHING
  RETURNING session_id, event_type
), cyc AS (
  SELECT session_id, count(*) FILTER (WHERE event_type IN ('cycle_switched', 'participant_expired')) AS n
  FROM ins GROUP BY session_id
), s AS (
  SELECT t.session_id::uuid AS session_id, t.life, t.version, t.event_type, t.ts_ms, t.state::jsonb AS st
  FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::text[], $6::int8[])
    AS t(session_id, version, event_type, ts_ms, state, life)
), up AS (
  INSERT INTO sync_sessions AS o (session_id, sync_mode, time_per_cycle_ms, increment_ms, max_time_ms,
    metadata, created_at, started_at, completed_at, last_updated_at, final_status, total_cycles,
    total_participants, last_version, life)
  SELECT s.session_id, h->>'sync_mode', (h->>'time_per_cycle_ms')::int8, (h->>'increment_ms')::int8,
    (h->>'max_time_ms')::int8, h->'metadata', (h->>'created_at')::timestamptz,
    (h->>'session_started_at')::timestamptz, (h->>'session_completed_at')::timestamptz,
    timestamptz 'epoch' + s.ts_ms * interval '1 millisecond',
    CASE WHEN s.event_type = 'session_deleted' THEN 'deleted' ELSE coalesce(h->>'status', 'unknown') END,
    coalesce(cyc.n, 0), coalesce((st->>'participant_count')::int4, jsonb_array_length(st->'participants')),
    s.version, s.life
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
    last_version = greatest(o.last_version, excluded.last_version),
    life = greatest(o.life, excluded.life)
  RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM up)`

// insertClashes runs only when ON CONFLICT left some of the batch's
// current events out: a duplicate is the same stream entry, while another
// entry under a recorded version (life 0: an earlier life of the id from
// before lives, lives.go) is kept in sync_events_superseded. (Rows from
// before stream ids were recorded compare as duplicates.) A statement of
// its own: folded into insertBatch, the anti-join against the inserted
// rows cost four times the insert itself on every batch.
const insertClashes = `
INSERT INTO sync_events_superseded (` + eventColumns + `)
SELECT ` + batchValues + `
FROM persist_batch b
  JOIN sync_events e ON e.session_id = b.session_id::uuid AND e.life = b.life AND e.version = b.version
WHERE NOT b.superseded AND e.stream_id <> b.stream_id
ON CONFLICT DO NOTHING`

// sessionCols holds, per session of a batch, its newest event and the
// newest state (a delete carries none), of its current life.
type sessionCols struct {
	sessionID, typ    []string
	life, version, ts []int64
	state             []*string
}

// sessionsOf summarises the events of evs that p leaves in sync_events; a
// session with none there keeps its row as it is.
func sessionsOf(evs []event, superseded []bool) sessionCols {
	at := map[string]int{}
	var c sessionCols
	var stateVersion []int64
	for i := range evs {
		e := &evs[i]
		if superseded[i] {
			continue
		}
		j, ok := at[e.sessionID]
		if !ok {
			j = len(c.sessionID)
			at[e.sessionID] = j
			c.sessionID = append(c.sessionID, e.sessionID)
			c.typ, c.version, c.ts = append(c.typ, e.typ), append(c.version, e.version), append(c.ts, e.timestampMS)
			c.life = append(c.life, e.life)
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

// batchResult is what one committed batch did.
type batchResult struct {
	current, superseded int64 // new rows in sync_events, sync_events_superseded
	clashes             int64 // more there: not duplicates, yet under a recorded version
	lives               int   // lives the batch superseded
	moved               int64 // rows it moved out of sync_events
}

// writeBatch writes evs in one transaction. When cfg.CrashAt stops it at
// BeforeCommit it abandons the transaction, as a crash before the commit
// would.
func writeBatch(ctx context.Context, pool *pgxpool.Pool, evs []event, cfg *Config) (batchResult, error) {
	var res batchResult
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return res, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	recorded, err := lockSessionsOf(ctx, tx, evs)
	if err != nil {
		return res, err
	}
	p := classify(evs, recorded)
	res.lives = p.lives
	if len(p.switched) > 0 {
		if err := tx.QueryRow(ctx, supersede, p.switched).Scan(&res.moved); err != nil {
			return res, err
		}
	}
	// COPY streams the rows: no batch-sized parameter buffer on either side.
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"persist_batch"}, batchColumns,
		pgx.CopyFromSlice(len(evs), func(i int) ([]any, error) {
			e := &evs[i]
			return []any{e.sessionID, e.life, e.version, e.typ, e.participantID, e.groupID,
				e.remaining, e.elapsed, e.cycle, e.timestampMS, e.state,
				e.id, p.superseded[i], e.actor}, nil
		}))
	if err != nil {
		return res, err
	}
	if p.current < len(evs) { // some are superseded
		tag, err := tx.Exec(ctx, insertSuperseded)
		if err != nil {
			return res, err
		}
		res.superseded = tag.RowsAffected()
	}
	sc := sessionsOf(evs, p.superseded)
	var sessions int64
	err = tx.QueryRow(ctx, insertBatch, sc.sessionID, sc.version, sc.typ, sc.ts, sc.state, sc.life).
		Scan(&res.current, &sessions)
	if err != nil {
		return res, err
	}
	if res.current < int64(p.current) {
		tag, err := tx.Exec(ctx, insertClashes)
		if err != nil {
			return res, err
		}
		res.clashes = tag.RowsAffected()
	}
	if cfg.crashAt(BeforeCommit) {
		return res, ErrCrashed
	}
	return res, tx.Commit(ctx)
}

// lockSessionsOf creates the batch table, locks the batch's sessions and
// reads the life of their recorded rows, in one round trip.
func lockSessionsOf(ctx context.Context, tx pgx.Tx, evs []event) (map[string]int64, error) {
	seen := map[string]bool{}
	var ids []string
	for i := range evs {
		if id := evs[i].sessionID; !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	b := &pgx.Batch{}
	b.Queue(createBatchTable)
	b.Queue(placeholderSessions, ids)
	b.Queue(lockSessions, ids)
	b.Queue(readLives, ids)
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	for range 3 {
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	recorded := make(map[string]int64, len(ids))
	for rows.Next() {
		var id string
		var life int64
		if err := rows.Scan(&id, &life); err != nil {
			return nil, err
		}
		recorded[id] = life
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return recorded, br.Close()
}
