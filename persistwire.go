package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/synckairos/synckairos/handlers"
	"github.com/synckairos/synckairos/persist"
)

// migrate serves `synckairos migrate`: apply the embedded SQL migrations to
// DATABASE_URL and exit. Start-up applies them too; both are idempotent.
func migrate(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.DatabaseURL == "" {
		return errors.New("migrate: DATABASE_URL is not set")
	}
	pool, err := persist.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return errors.New("migrate: " + err.Error())
	}
	defer pool.Close()
	applied, err := persist.Migrate(ctx, pool)
	if err != nil {
		return errors.New("migrate: " + err.Error())
	}
	log.Info("migrations applied", "applied", strings.Join(applied, ","), "count", len(applied))
	return nil
}

// persistRetry is how often start-up retries the migrations while
// PostgreSQL is unreachable (a variable for tests).
var persistRetry = 5 * time.Second

// wirePersist connects PostgreSQL when DATABASE_URL is set: migrations,
// the events route's store, the /ready check, and (unless PERSIST_WORKER=false) the
// worker that copies the audit streams into PostgreSQL, drained at shutdown.
//
// /ready stays 200 when persistence is degraded (status "degraded", the
// persistence check says why): PostgreSQL being down does not stop the API,
// whose transitions keep queueing in Redis until EVENT_STREAM_MAX, and a
// 503 would make a load balancer drop every instance at once. For the same
// reason an instance also starts while PostgreSQL is down: it retries the
// migrations in the background and starts the worker once they are in. A
// URL that can never work (PostgreSQL refuses the user or does not know the
// database) stops the start instead: retrying would only hide it.
//
// Once PostgreSQL did not refuse it, the instance announces that this
// deployment persists (announceAudit), so that instances without
// DATABASE_URL record their transitions too.
func (a *app) wirePersist(ctx context.Context) error {
	if a.cfg.DatabaseURL == "" {
		return nil
	}
	pool, err := persist.Open(ctx, a.cfg.DatabaseURL)
	if err != nil {
		return errors.New("DATABASE_URL: " + err.Error())
	}
	store := persist.NewStore(pool)
	a.events = store

	var w *persist.Worker
	if a.cfg.PersistWorker {
		w = persist.NewWorker(a.rdb, pool, a.log.With("component", "persist"), persist.Config{})
		a.addMetrics(w.Metrics().Set())
	}
	wctx, stopWorker := context.WithCancel(context.Background())
	var migErr atomic.Pointer[error]
	migrate := func(ctx context.Context) error {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		applied, err := persist.Migrate(mctx, pool)
		if err != nil {
			migErr.Store(&err)
			return err
		}
		migErr.Store(nil)
		if len(applied) > 0 {
			a.log.Info("migrations applied", "applied", strings.Join(applied, ","))
		}
		return nil
	}
	degraded := func(err error) {
		a.log.Error("persistence degraded: cannot apply migrations; retrying", "err", err, "every", persistRetry)
	}
	err = migrate(ctx)
	if why := refused(err); why != "" {
		stopWorker()
		pool.Close()
		return errors.New("DATABASE_URL: " + why + "; fix DATABASE_URL (" + err.Error() + ")")
	}
	ok := err == nil
	if !ok {
		degraded(err)
	}
	if err := a.announceAudit(ctx); err != nil {
		stopWorker()
		pool.Close()
		return err
	}
	retry := persistRetry
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !ok {
			select {
			case <-wctx.Done():
				return
			case <-time.After(retry):
			}
			if err := migrate(wctx); err != nil {
				degraded(err)
			} else {
				ok = true
			}
		}
		if w == nil {
			return
		}
		if err := w.Run(wctx); err != nil {
			a.log.Error("persist worker stopped", "err", err)
		}
	}()
	a.ready = append(a.ready, handlers.Check{Name: "persistence", Soft: true,
		Fn: func(ctx context.Context) error {
			if p := migErr.Load(); p != nil {
				return errors.New("migrations not applied: " + (*p).Error())
			}
			return store.Health(ctx, w)
		}})
	a.onShutdown("drain persist", func(ctx context.Context) error {
		stopWorker() // the worker finishes and acknowledges the batch in flight
		defer pool.Close()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return errors.New("persist worker did not drain in time; its entries stay pending for the next worker")
		}
	})
	return nil
}

// refused says why PostgreSQL refused a connection for good (pgconn's
// SQLSTATE: 28P01 wrong password, 28000 unknown role or no pg_hba entry,
// 3D000 unknown database), or "" when retrying may help: the server is
// down, unreachable or overloaded.
func refused(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return ""
	}
	switch pe.Code {
	case "28P01", "28000":
		return "PostgreSQL refused the credentials (SQLSTATE " + pe.Code + ")"
	case "3D000":
		return "the database does not exist (SQLSTATE " + pe.Code + ")"
	}
	return ""
}
