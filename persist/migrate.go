// Package persist copies the audit events that the Lua scripts append to
// the per-shard Redis streams into PostgreSQL (sync_events, sync_sessions),
// exactly once, off the hot path, and serves a session's history back.
//
// Exactly once rests on three things: the worker XACKs an entry only after
// the transaction that wrote it committed; a redelivered entry hits the
// unique (session_id, version) key and is skipped; and the session summary
// is computed only from rows that insert actually wrote.
//
// A session id may be created again after a delete or after its keys
// expired, and its versions start again at 1; each such session is a new
// life, stamped by createSession and carried by every event. Rows are
// keyed by (session_id, life, version), and the worker sorts each batch by
// life (lives.go) under a lock on the batch's sync_sessions rows: the first
// event of a newer life moves the recorded one's rows to
// sync_events_superseded and starts the sync_sessions row afresh, in the
// batch's transaction; events of an earlier life, late or redelivered, go
// straight there. So sync_events, sync_sessions and the events route show
// the current life, earlier ones are kept, and a duplicate is only ever
// the same event again.
package persist

import (
	"context"
	"embed"
	"io/fs"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Open connects a pool. Table names are unqualified, so a search_path in
// the URL (…?search_path=myschema) selects the schema.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	return pool, nil
}

// Migrate applies every embedded migration not yet recorded in
// schema_migrations, each in its own transaction, and returns the names it
// applied. It is idempotent and safe to run from several instances at once:
// an advisory lock (per schema) serialises them.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var applied []string
	for _, name := range names {
		sql, err := migrations.ReadFile(name)
		if err != nil {
			return applied, err
		}
		done, err := applyOne(ctx, pool, name[len("migrations/"):], string(sql))
		if err != nil {
			return applied, err
		}
		if done {
			applied = append(applied, name[len("migrations/"):])
		}
	}
	return applied, nil
}

func applyOne(ctx context.Context, pool *pgxpool.Pool, name, sql string) (bool, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	// The lock comes first: two concurrent CREATE TABLE IF NOT EXISTS can
	// still collide on the catalog.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('synckairos.migrate.' || current_schema()))`); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return false, err
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = $1)`, name).Scan(&exists); err != nil {
		return false, err
	}
	if exists {
		return false, nil
	}
	// No arguments: pgx sends the simple protocol, so a file may hold many statements.
	if _, err := tx.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (name) VALUES ($1)`, name); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}
