// Package expiry makes time run out on the server: it watches the shards'
// deadline indexes and applies each expiry the moment it is due.
//
// Every transition script keeps sk:{<shard>}:deadlines (a sorted set of
// session ids scored by the Redis-clock ms their running turn runs out)
// true in the same atomic step. Each instance polls every shard
// (keyspace.Shards) with one ZRANGEBYSCORE each, in one pipeline per tick
// (one round trip per node on a Redis Cluster, each command in its shard's
// slot), and runs expireSession4-5.lua for every due id. The script
// recomputes the deadline from the session's state, so any
// number of instances may run it for the same id: the first applies the
// expiry and publishes TIME_EXPIRED, the others find nothing due. No
// instance owns a deadline, so the death of one loses nothing.
//
// Cost while nothing is due: one ZRANGEBYSCORE per shard per tick, i.e.
// Shards x 1000/Poll commands per second per instance (6,400/s for the 64
// shards at the default 10 ms), each O(log n) on a set of at most the
// running sessions.
package expiry

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/redisclock"
)

// Expirer applies one session's expiry if it is due (main wires
// *Scripts.Expire); fired reports whether this call changed the session.
type Expirer interface {
	Expire(ctx context.Context, id string) (fired bool, err error)
}

// Config tunes the loop; zero values take the defaults.
type Config struct {
	Poll    time.Duration // between ticks (10 ms)
	Batch   int64         // due ids read per shard per round (256)
	Workers int           // expiries run at once (16)
	Timeout time.Duration // per Redis call (2 s)
	// DeadlineSuffix names a private deadline index (keyspace.Deadlines +
	// the suffix), the one an engine with the same
	// engine.Options.DeadlineSuffix writes: the scheduler polls only it.
	// Tests sharing a Redis with running services use one; a deployment
	// leaves it empty.
	DeadlineSuffix string
}

func (c Config) withDefaults() Config {
	if c.Poll <= 0 {
		c.Poll = 10 * time.Millisecond
	}
	if c.Batch <= 0 {
		c.Batch = 256
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	return c
}

// Scheduler is one instance's expiry loop.
type Scheduler struct {
	rdb   redis.Cmdable
	exp   Expirer
	clock redisclock.Source
	cfg   Config
	log   *slog.Logger
	keys  []string

	lastWarn atomic.Int64 // unix ns of the last warning logged (at most one per warnEvery)

	set                            *metrics.Set
	ticks, fired, noops, errs, due *metrics.Counter
	lag                            *metrics.PrometheusHistogram
}

// New builds a scheduler.
func New(rdb redis.Cmdable, exp Expirer, clock redisclock.Source, cfg Config, log *slog.Logger) *Scheduler {
	s := &Scheduler{rdb: rdb, exp: exp, clock: clock, cfg: cfg.withDefaults(), log: log, set: metrics.NewSet()}
	for i := range keyspace.Shards {
		s.keys = append(s.keys, keyspace.Deadlines(i)+s.cfg.DeadlineSuffix)
	}
	s.ticks = s.set.NewCounter("synckairos_expiry_ticks_total")
	s.due = s.set.NewCounter("synckairos_expiry_due_total")
	s.fired = s.set.NewCounter("synckairos_expiry_fired_total")
	s.noops = s.set.NewCounter("synckairos_expiry_noop_total")
	s.errs = s.set.NewCounter("synckairos_expiry_errors_total")
	s.lag = s.set.NewPrometheusHistogram("synckairos_expiry_lag_seconds")
	return s
}

// Metrics returns the scheduler's metric set, for main to expose.
func (s *Scheduler) Metrics() *metrics.Set { return s.set }

// Run polls until ctx is done.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		// a round that filled a batch goes again at once
		for s.Tick(ctx) {
			if ctx.Err() != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type dueID struct {
	id    string
	score float64
}

// Tick reads every shard's due ids in one pipeline (one round trip per
// Cluster node) and expires them; it
// reports whether some shard had more due than one batch and the round
// made progress (a round whose every expiry failed, Redis refusing or a
// stream full, waits for the next poll instead of spinning).
func (s *Scheduler) Tick(ctx context.Context) (more bool) {
	s.ticks.Inc()
	now := s.clock.Now() / 1000
	max := strconv.FormatInt(now, 10)
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	cmds, err := s.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
		for _, k := range s.keys {
			p.ZRangeByScoreWithScores(cctx, k, &redis.ZRangeBy{Min: "-inf", Max: max, Count: s.cfg.Batch})
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		s.errs.Inc()
		s.warn("expiry: reading the deadline indexes; retrying every poll", "err", err)
	}
	// A Cluster client sends the pipeline to each node on its own: a node
	// failing over fails its shards' reads only, the others' due ids run.
	var due []dueID
	for _, c := range cmds {
		zs, err := c.(*redis.ZSliceCmd).Result()
		if err != nil {
			continue
		}
		if int64(len(zs)) >= s.cfg.Batch {
			more = true
		}
		for _, z := range zs {
			id, _ := z.Member.(string)
			due = append(due, dueID{id, z.Score})
		}
	}
	if len(due) == 0 {
		return false
	}
	s.due.Add(len(due))
	ok := s.expireAll(ctx, due)
	return more && ok > 0
}

// expireAll runs the due ids on the workers; it returns how many ran
// without error.
func (s *Scheduler) expireAll(ctx context.Context, due []dueID) int64 {
	workers := min(s.cfg.Workers, len(due))
	next := make(chan dueID)
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range next {
				if s.expire(ctx, d) {
					ok.Add(1)
				}
			}
		}()
	}
	for _, d := range due {
		next <- d
	}
	close(next)
	wg.Wait()
	return ok.Load()
}

// expire runs one due id; false when expireSession failed.
func (s *Scheduler) expire(ctx context.Context, d dueID) bool {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	fired, err := s.exp.Expire(cctx, d.id)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			s.errs.Inc()
			s.warn("expiry: expireSession failed; retried next poll", "session_id", d.id, "err", err)
		}
		return false
	case fired:
		s.fired.Inc()
		if lag := float64(s.clock.Now()/1000) - d.score; lag >= 0 {
			s.lag.Update(lag / 1000)
		}
	default:
		s.noops.Inc()
	}
	return true
}

// warnEvery bounds the log while Redis is down or a stream is full: the
// loop retries every poll, and synckairos_expiry_errors_total counts each.
const warnEvery = 10 * time.Second

func (s *Scheduler) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := s.lastWarn.Load()
	if now-last < int64(warnEvery) || !s.lastWarn.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn(msg, args...)
}
