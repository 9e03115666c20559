package persist

import (
	"context"
	"sync"
	"testing"
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
	if n := db.count(t, `SELECT count(*) FROM schema_migrations`); n != 1 {
		t.Fatalf("schema_migrations rows = %d, want 1", n)
	}
	for _, idx := range []string{"sync_events_session_version_key", "sync_sessions_status_idx", "sync_sessions_created_idx"} {
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
