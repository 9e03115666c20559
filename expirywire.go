package main

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

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

func loadExpiryConfig(getenv func(string) string) (ExpiryConfig, error) {
	c := ExpiryConfig{Enabled: true, Poll: 10 * time.Millisecond}
	var errs []error
	if v := strings.TrimSpace(getenv("EXPIRY_ENABLED")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, errors.New("EXPIRY_ENABLED: want true or false, got "+strconv.Quote(v)))
		}
		c.Enabled = b || err != nil
	}
	if v := strings.TrimSpace(getenv("EXPIRY_POLL_MS")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > 60_000 {
			errs = append(errs, errors.New("EXPIRY_POLL_MS: want an integer in [1, 60000], got "+strconv.Quote(v)))
		} else {
			c.Poll = time.Duration(n) * time.Millisecond
		}
	}
	return c, errors.Join(errs...)
}

// wireExpiry starts the expiry loop on a.bg (cancelled at shutdown) and
// waits for it in a shutdown step.
func (a *app) wireExpiry(context.Context) error {
	if !a.cfg.Expiry.Enabled {
		a.log.Warn("EXPIRY_ENABLED=false: this instance applies no expiries; another instance must")
		return nil
	}
	s := expiry.New(a.rdb, a.engine, a.clock, expiry.Config{Poll: a.cfg.Expiry.Poll},
		a.log.With("component", "expiry"), "")
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
