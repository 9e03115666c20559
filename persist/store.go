package persist

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/synckairos/synckairos/session"
)

// Store is the read side: a session's history, from PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore wraps pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// MaxPage bounds the limit a caller may ask for.
const MaxPage = 1000

// PostgreSQL builds the JSON; timestamps are ISO 8601 UTC with milliseconds
// like every *_at of the v1 state, plus epoch ms like the stream's.
const eventsPage = `
WITH page AS (
  SELECT * FROM sync_events WHERE session_id = $1 AND version > $2 ORDER BY version LIMIT $3
)
SELECT
  EXISTS (SELECT 1 FROM sync_sessions WHERE session_id = $1),
  coalesce((SELECT json_agg(json_build_object(
      'session_id', session_id, 'version', version, 'event_type', event_type,
      'participant_id', participant_id, 'group_id', group_id,
      'time_remaining_ms', time_remaining_ms, 'time_elapsed_ms', time_elapsed_ms,
      'cycle_number', cycle_number,
      'timestamp', to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'timestamp_ms', (extract(epoch FROM "timestamp") * 1000)::int8,
      'state_kind', CASE WHEN state_snapshot IS NULL THEN NULL
                         WHEN state_snapshot ? 'session' THEN 'delta' ELSE 'full' END,
      'state', state_snapshot, 'actor', actor) ORDER BY version) FROM page), '[]')::text,
  (SELECT max(version) FROM page),
  EXISTS (SELECT 1 FROM sync_events WHERE session_id = $1
          AND version > coalesce((SELECT max(version) FROM page), $2))`

// Events returns one page of a session's recorded events, oldest first,
// with versions above afterVersion, as the response body
// {"data":[...],"next_after_version":N|null}; next_after_version is set
// when more events follow. found is false when nothing was ever recorded
// for the session (or id is not a UUID).
func (s *Store) Events(ctx context.Context, id string, afterVersion int64, limit int) (body []byte, found bool, err error) {
	if !session.IsUUID(id) {
		return nil, false, nil
	}
	limit = max(1, min(limit, MaxPage))
	var data string
	var last *int64
	var more bool
	err = s.pool.QueryRow(ctx, eventsPage, id, afterVersion, limit).Scan(&found, &data, &last, &more)
	if err != nil || !found {
		return nil, false, err
	}
	body = make([]byte, 0, len(data)+48)
	body = append(body, `{"data":`...)
	body = append(body, data...)
	body = append(body, `,"next_after_version":`...)
	if more && last != nil {
		body = strconv.AppendInt(body, *last, 10)
	} else {
		body = append(body, "null"...)
	}
	return append(body, '}'), true, nil
}

// Health returns nil when persistence works: PostgreSQL answers and the
// worker's (nil when it is off) last batch was written. An error means
// degraded: transitions still succeed, and their events wait in Redis.
func (s *Store) Health(ctx context.Context, w *Worker) error {
	if w != nil {
		if err := w.Err(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return s.pool.Ping(ctx)
}
