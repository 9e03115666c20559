package main

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/engine"
)

// newEngine is the service's use of the engine: the scripts of lua/ on
// rdb, with this instance's audit cap, state cache and Idempotency-Key
// lifetime, loaded (SCRIPT LOAD) before the first request so that EVALSHA
// never misses.
func newEngine(ctx context.Context, rdb redis.Scripter, cfg Config) (*engine.Engine, error) {
	e := engine.New(rdb, engine.Options{
		EventCap:       cfg.EventStreamMax,
		StateCacheMax:  cfg.StateCacheMax,
		IdempotencyTTL: cfg.IdempotencyTTL,
	})
	if err := e.Load(ctx); err != nil {
		return nil, errors.New("loading the scripts into Redis: " + err.Error())
	}
	return e, nil
}
