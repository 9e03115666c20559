package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"

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

// wirePersist connects PostgreSQL when DATABASE_URL is set: the events
// route's store, the /ready check, and (unless PERSIST_WORKER=false) the
// worker that copies the audit streams into PostgreSQL, drained at
// shutdown. persist.Service owns that lifecycle (start while PostgreSQL is
// down, retry, degrade, drain).
//
// /ready stays 200 when persistence is degraded (status "degraded", the
// persistence check says why): PostgreSQL being down does not stop the API,
// and a 503 would make a load balancer drop every instance at once.
//
// Once PostgreSQL did not refuse it, the instance announces that this
// deployment persists (announceAudit), so that instances without
// DATABASE_URL record their transitions too.
func (a *app) wirePersist(ctx context.Context) error {
	if a.cfg.DatabaseURL == "" {
		return nil
	}
	p, err := persist.NewService(ctx, a.rdb, persist.ServiceConfig{URL: a.cfg.DatabaseURL,
		RunWorker: a.cfg.PersistWorker, Retry: a.cfg.PersistRetry}, a.log.With("component", "persist"))
	if err != nil {
		return errors.New("DATABASE_URL: " + err.Error())
	}
	if err := p.Start(ctx); err != nil {
		return errors.New("DATABASE_URL: " + persist.Refused(err) + "; fix DATABASE_URL (" + err.Error() + ")")
	}
	if err := a.announceAudit(ctx); err != nil {
		_ = p.Drain(ctx)
		return err
	}
	a.events = p.Store()
	if set := p.Metrics(); set != nil {
		a.addMetrics(set)
	}
	a.ready = append(a.ready, handlers.Check{Name: "persistence", Soft: true, Fn: p.Ready})
	a.onShutdown("drain persist", p.Drain)
	return nil
}
