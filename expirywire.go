package main

import (
	"context"
	"time"

	"github.com/synckairos/synckairos/envconf"
	"github.com/synckairos/synckairos/expiry"
)

// ExpiryConfig is the expiry scheduler's part of Config:
//
//	EXPIRY_ENABLED  run the scheduler on this instance (true); every instance
//	                may run it, and at least one must
//	EXPIRY_POLL_MS  ms between polls of the deadline indexes (10)
type ExpiryConfig struct {
	Enabled bool
	Poll    time.Duration
}

func loadExpiryConfig(e *envconf.Reader) ExpiryConfig {
	return ExpiryConfig{
		Enabled: e.Bool("EXPIRY_ENABLED", true),
		Poll:    time.Duration(e.IntRange("EXPIRY_POLL_MS", 10, 1, 60_000)) * time.Millisecond,
	}
}

// wireExpiry starts the expiry loop on a.bg (cancelled at shutdown) and
// waits for it in a shutdown step.
func (a *app) wireExpiry(context.Context) error {
	if !a.cfg.Expiry.Enabled {
		a.log.Warn("EXPIRY_ENABLED=false: this instance applies no expiries; another instance must")
		return nil
	}
	s := expiry.New(a.rdb, a.engine, a.clock, expiry.Config{Poll: a.cfg.Expiry.Poll},
		a.log.With("component", "expiry"))
	a.addMetrics(s.Metrics())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(a.bg)
	}()
	a.onShutdown("stop expiry", func(ctx context.Context) error {
		a.stopBg()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	return nil
}
