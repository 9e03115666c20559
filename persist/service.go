package persist

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// ServiceConfig is one instance's persistence; zero values take the
// defaults in brackets.
type ServiceConfig struct {
	URL string // PostgreSQL; a search_path in it selects the schema
	// RunWorker runs the Worker that copies the audit streams into
	// PostgreSQL; false serves the history only, leaving the streams to
	// other instances' workers.
	RunWorker      bool
	Worker         Config        // the worker's tuning
	Retry          time.Duration // between migration attempts while PostgreSQL is unreachable [5s]
	MigrateTimeout time.Duration // one attempt [10s]
}

// Service is persistence's lifecycle in one instance: migrations, the
// history Store, the Worker, readiness and the drain.
//
// An instance starts while PostgreSQL is down: the API does not need it,
// transitions keep queueing in Redis (up to the stream cap), and refusing
// to start would take every instance down with one database. Start then
// retries the migrations in the background and starts the worker once
// they are in; Ready says degraded meanwhile. A URL that can never work
// (Refused) stops the start instead: retrying would only hide it.
type Service struct {
	cfg    ServiceConfig
	log    *slog.Logger
	pool   *pgxpool.Pool
	store  *Store
	worker *Worker // nil without RunWorker

	migErr atomic.Pointer[error] // the last migration attempt's error; nil once applied
	stop   context.CancelFunc    // ends the retries and the worker (the drain)
	done   chan struct{}         // closed when they have ended; nil before Start
}

// NewService prepares the pool (it connects lazily), the store and, with
// RunWorker, the worker on rdb's streams. Start brings it up.
func NewService(ctx context.Context, rdb redis.Cmdable, cfg ServiceConfig, log *slog.Logger) (*Service, error) {
	if cfg.Retry <= 0 {
		cfg.Retry = 5 * time.Second
	}
	if cfg.MigrateTimeout <= 0 {
		cfg.MigrateTimeout = 10 * time.Second
	}
	pool, err := Open(ctx, cfg.URL)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: log, pool: pool, store: NewStore(pool)}
	if cfg.RunWorker {
		s.worker = NewWorker(rdb, pool, log, cfg.Worker)
	}
	return s, nil
}

// Store serves sessions' histories.
func (s *Service) Store() *Store { return s.store }

// Metrics is the worker's metric set; nil without RunWorker.
func (s *Service) Metrics() *metrics.Set {
	if s.worker == nil {
		return nil
	}
	return s.worker.Metrics().Set()
}

// Start applies the migrations once, then runs in the background until
// Drain: the retries while they fail, then the worker. Its error is a
// refusal for good (Refused says why); the service is closed then. Any
// other failure only degrades it (Ready).
func (s *Service) Start(ctx context.Context) error {
	err := s.migrate(ctx)
	if Refused(err) != "" {
		s.pool.Close()
		return err
	}
	if err != nil {
		s.degraded(err)
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop, s.done = stop, make(chan struct{})
	go s.run(bg, err == nil)
	return nil
}

func (s *Service) run(ctx context.Context, migrated bool) {
	defer close(s.done)
	for !migrated {
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Retry):
		}
		if err := s.migrate(ctx); err != nil {
			s.degraded(err)
		} else {
			migrated = true
		}
	}
	if s.worker == nil {
		return
	}
	if err := s.worker.Run(ctx); err != nil {
		s.log.Error("persist worker stopped", "err", err)
	}
}

func (s *Service) migrate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.MigrateTimeout)
	defer cancel()
	applied, err := Migrate(ctx, s.pool)
	if err != nil {
		s.migErr.Store(&err)
		return err
	}
	s.migErr.Store(nil)
	if len(applied) > 0 {
		s.log.Info("migrations applied", "applied", strings.Join(applied, ","))
	}
	return nil
}

func (s *Service) degraded(err error) {
	s.log.Error("persistence degraded: cannot apply migrations; retrying", "err", err, "every", s.cfg.Retry)
}

// Ready is nil when persistence works: the migrations are in, PostgreSQL
// answers and the worker's last batch was written. An error means
// degraded, not down: transitions still succeed and their events wait in
// Redis, so /ready reports it without failing.
func (s *Service) Ready(ctx context.Context) error {
	if p := s.migErr.Load(); p != nil {
		return errors.New("migrations not applied: " + (*p).Error())
	}
	return s.store.Health(ctx, s.worker)
}

// Drain stops the retries and the worker, which finishes and acknowledges
// the batch in flight, and closes the pool. Past ctx the batch's entries
// stay pending, for the next worker to claim.
func (s *Service) Drain(ctx context.Context) error {
	if s.done == nil { // never started
		s.pool.Close()
		return nil
	}
	s.stop()
	defer s.pool.Close()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return errors.New("persist worker did not drain in time; its entries stay pending for the next worker")
	}
}

// Refused says why PostgreSQL refused a connection for good (pgconn's
// SQLSTATE: 28P01 wrong password, 28000 unknown role or no pg_hba entry,
// 3D000 unknown database), or "" when retrying may help: the server is
// down, unreachable or overloaded.
func Refused(err error) string {
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
