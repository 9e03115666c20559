package persist

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/synckairos/synckairos/pgtest"
	"github.com/synckairos/synckairos/servertest"
)

func count(t *testing.T, pool *pgxpool.Pool, q string) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), q).Scan(&n); err != nil {
		return -1 // no table yet
	}
	return n
}

// TestServiceLifecycle: Start migrates an empty schema and runs the
// worker, Ready is nil, Drain stops it; the events land exactly once.
func TestServiceLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := startRedis(t)
	schema, admin := emptySchema(t)
	d := newDriver(t, rdb, 1000)
	id := d.session(ctx, t, 2, "startSession")
	s, err := NewService(ctx, rdb, ServiceConfig{URL: dbURL(pgAddr, schema), RunWorker: true, Worker: testConfig()}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if s.Metrics() == nil {
		t.Error("a service with a worker has no metrics")
	}
	must(t, s.Start(ctx))
	if n := count(t, admin, `SELECT count(*) FROM schema_migrations`); n < 1 {
		t.Fatalf("Start returned before the migrations: %d", n)
	}
	servertest.WaitFor(t, 10*time.Second, "both events written", func() bool {
		return count(t, admin, `SELECT count(*) FROM sync_events WHERE session_id = '`+id+`'`) == 2 && streamLen(t, rdb) == 0
	})
	if err := s.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}
	must(t, s.Drain(ctx))
	if err := s.Store().Health(ctx, nil); err == nil {
		t.Error("the pool is still open after Drain")
	}
}

// TestServiceStartsDegraded: with PostgreSQL unreachable Start still
// succeeds, Ready says why it is degraded, and the retries migrate and
// start the worker once PostgreSQL answers.
func TestServiceStartsDegraded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := startRedis(t)
	schema, admin := emptySchema(t)
	px := newProxy(t, pgAddr)
	px.Cut()
	d := newDriver(t, rdb, 1000)
	d.session(ctx, t, 2) // one event waiting in Redis
	s, err := NewService(ctx, rdb, ServiceConfig{URL: dbURL(px.Addr(), schema), RunWorker: true, Worker: testConfig(),
		Retry: 20 * time.Millisecond, MigrateTimeout: time.Second}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start with PostgreSQL down: %v", err)
	}
	t.Cleanup(func() { _ = s.Drain(context.Background()) })
	if err := s.Ready(ctx); err == nil || !strings.HasPrefix(err.Error(), "migrations not applied: ") {
		t.Fatalf("Ready while down: %v", err)
	}
	if n := count(t, admin, `SELECT count(*) FROM sync_events`); n != -1 {
		t.Fatalf("tables exist before PostgreSQL answered: %d", n)
	}
	px.Restore()
	servertest.WaitFor(t, 10*time.Second, "migrated and written", func() bool {
		return count(t, admin, `SELECT count(*) FROM sync_events`) == 1 && s.Ready(ctx) == nil
	})
}

// TestServiceRefused: a database that does not exist stops Start with an
// error Refused explains; there is nothing to drain.
func TestServiceRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := NewService(ctx, startRedis(t), ServiceConfig{URL: pgtest.With("", "synckairos_no_such_db")}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if s.Metrics() != nil {
		t.Error("a service without a worker has metrics")
	}
	err = s.Start(ctx)
	if why := Refused(err); !strings.Contains(why, "3D000") {
		t.Fatalf("Start = %v (refused: %q)", err, why)
	}
}

// TestRefused: the SQLSTATEs that no retry can fix, and only those.
func TestRefused(t *testing.T) {
	t.Parallel()
	// 28P01 (wrong password) needs password authentication, which the
	// test PostgreSQL (trust) never asks for: TestServiceRefused and the
	// root's TestPersistRefusedURL run the other two against it.
	for code, fatal := range map[string]bool{"28P01": true, "28000": true, "3D000": true,
		"53300": false, "57P03": false, "42P01": false} {
		err := fmt.Errorf("migrate: %w", &pgconn.PgError{Code: code})
		if got := Refused(err) != ""; got != fatal {
			t.Errorf("SQLSTATE %s: refused = %v, want %v", code, got, fatal)
		}
	}
	if Refused(nil) != "" || Refused(errors.New("dial tcp: connection refused")) != "" {
		t.Error("a network error counts as refused")
	}
}
