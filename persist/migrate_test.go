package persist

import (
	"context"
	"fmt"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/servertest"
)

func TestMigrateIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	db := newTestDB(t) // applied once already
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied, err := Migrate(ctx, db.admin)
			if err == nil && len(applied) != 0 {
				t.Errorf("re-run applied %v", applied)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	files, _ := fs.Glob(migrations, "migrations/*.sql")
	if n := db.count(t, `SELECT count(*) FROM schema_migrations`); n != int64(len(files)) || n < 3 {
		t.Fatalf("schema_migrations rows = %d, want one per file (%d)", n, len(files))
	}
	for _, idx := range []string{"sync_events_session_life_version_key", "sync_sessions_status_idx", "sync_sessions_created_idx",
		"sync_events_superseded_entry_key", "sync_events_superseded_session_idx", "sync_events_superseded_life_key"} {
		if n := db.count(t, `SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = $2`, db.schema, idx); n != 1 {
			t.Errorf("index %s missing", idx)
		}
	}
}

func TestMigrateFreshSchemasInParallel(t *testing.T) {
	t.Parallel()
	// Two fresh schemas migrated at once must not block or break each other.
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); newTestDB(t) }()
	}
	wg.Wait()
}

// TestUpgradeTo0002: rows written before migration 0002 have no stream
// entry ids. After the upgrade the worker still places events by
// created_at: a continuation stays in sync_events, a re-created session
// moves the old rows to sync_events_superseded. The file itself is safe to
// run twice.
func TestUpgradeTo0002(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema, admin := emptySchema(t)
	db := &testDB{schema: schema, admin: admin}
	first, err := migrations.ReadFile("migrations/0001_audit.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := applyOne(ctx, admin, "0001_audit.sql", string(first)); err != nil {
		t.Fatal(err)
	}
	// Two sessions as the old worker left them: versions 1..2, created at
	// 2025-01-01 (kept) and 2025-01-02 (re-created below).
	kept, recreated := newUUID(), newUUID()
	for i, id := range []string{kept, recreated} {
		created := fmt.Sprintf("2025-01-0%dT00:00:00.000Z", i+1)
		if _, err := admin.Exec(ctx, `INSERT INTO sync_sessions (session_id, created_at, last_updated_at,
			final_status, last_version) VALUES ($1, $2, $2, 'running', 2)`, id, created); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(ctx, `INSERT INTO sync_events (session_id, version, event_type, "timestamp")
			VALUES ($1, 1, 'session_created', $2), ($1, 2, 'session_started', $2)`, id, created); err != nil {
			t.Fatal(err)
		}
	}
	applied, err := Migrate(ctx, admin)
	if err != nil || len(applied) == 0 || applied[0] != "0002_incarnations.sql" { // and any later ones
		t.Fatalf("upgrade applied %v, %v", applied, err)
	}
	second, err := migrations.ReadFile("migrations/0002_incarnations.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, string(second), pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("0002 run twice: %v", err)
	}

	rdb := startRedis(t)
	// kept goes on in the life it had (0: from before lives); recreated is
	// created again by scripts that stamp lives.
	xadd := func(id string, life string, v int, typ, created string) {
		t.Helper()
		state := `{"session_id":"` + id + `","status":"running","version":` + fmt.Sprint(v) +
			`,"created_at":"` + created + `","participants":[]}`
		vals := []any{"type", typ, "session_id", id, "version", fmt.Sprint(v), "timestamp", "1767225600000",
			"state_kind", "full", "state", state}
		if life != "" {
			vals = append(vals, "life", life)
		}
		must(t, rdb.XAdd(ctx, &redis.XAddArgs{Stream: keyspace.For(id).Stream, Values: vals}).Err())
	}
	xadd(kept, "", 3, "cycle_switched", "2025-01-01T00:00:00.000Z")
	xadd(recreated, "1", 1, "session_created", "2026-01-01T00:00:00.000Z")
	xadd(recreated, "1", 2, "session_started", "2026-01-01T00:00:00.000Z")
	w := NewWorker(rdb, db.pool(t, pgAddr), quietLog(), testConfig())
	stop := run(w)
	servertest.WaitFor(t, 10*time.Second, "streams drained", func() bool { return streamLen(t, rdb) == 0 })
	must(t, stop())
	for _, tc := range []struct {
		q    string
		want int64
	}{
		{`SELECT count(*) FROM sync_events WHERE session_id = '` + kept + `' AND stream_id IS NULL`, 2},
		{`SELECT count(*) FROM sync_events WHERE session_id = '` + kept + `' AND version = 3 AND stream_id IS NOT NULL`, 1},
		{`SELECT last_version FROM sync_sessions WHERE session_id = '` + kept + `'`, 3},
		{`SELECT count(*) FROM sync_events WHERE session_id = '` + recreated + `' AND stream_id IS NOT NULL`, 2},
		{`SELECT count(*) FROM sync_events WHERE session_id = '` + recreated + `'`, 2},
		{`SELECT count(*) FROM sync_events_superseded WHERE session_id = '` + recreated + `'
			AND incarnation_created_at = '2025-01-02T00:00:00Z' AND stream_id IS NULL`, 2},
		{`SELECT count(*) FROM sync_sessions WHERE session_id = '` + recreated + `'
			AND created_at = '2026-01-01T00:00:00Z' AND last_version = 2 AND life = 1`, 1},
		{`SELECT count(*) FROM sync_events WHERE session_id = '` + recreated + `' AND life = 1`, 2},
	} {
		if got := db.count(t, tc.q); got != tc.want {
			t.Errorf("%s = %d, want %d", tc.q, got, tc.want)
		}
	}
}
