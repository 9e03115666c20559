// Package redisclock serves Redis TIME without a round trip per call.
//
// It samples TIME every interval and keeps offset = redis - local, where
// local is the process's monotonic clock read halfway through the round
// trip. Of a few samples it keeps the one with the shortest round trip, so
// the error is at most half that round trip (tens of µs on a LAN) plus
// the two clocks' drift over one interval (ppm). A sync whose best round
// trip is slower than maxRTT (a loaded host) is not trusted: it replaces
// the offset only when the last trusted one is older than staleAfter. The monotonic clock does
// not jump when the wall clock is stepped. Now never repeats or goes back:
// it returns at least the previous value + 1 µs.
package redisclock

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Source is the one clock interface of the service: Redis time in epoch
// µs, cheap (no round trip per call) and strictly increasing. *Clock is
// the service's; handlers, expiry and the relay depend on this alone, and
// a component that needs ms divides by 1000.
type Source interface{ Now() int64 }

var _ Source = (*Clock)(nil)

// Timer is what the clock needs from a Redis client.
type Timer interface {
	Time(ctx context.Context) *redis.TimeCmd
}

// A sample slower than maxRTT could be off by more than half of it, and the
// clock promises 1 ms; goodRTT is fast enough to stop sampling early.
const (
	maxRTT     = 1000 // µs
	goodRTT    = 200  // µs
	staleAfter = 30 * time.Second
)

// Clock tracks Redis TIME.
type Clock struct {
	rdb      Timer
	base     time.Time // monotonic origin of local readings
	offset   atomic.Int64
	last     atomic.Int64
	synced   atomic.Bool
	samples  int
	lastGood time.Time // when a sample within maxRTT last set the offset; Sync callers are serialised by Run
}

// New returns a clock for rdb; call Sync before the first Now.
func New(rdb Timer) *Clock {
	return &Clock{rdb: rdb, base: time.Now(), samples: 8}
}

func (c *Clock) local() int64 { return int64(time.Since(c.base) / time.Microsecond) }

// Sync measures the offset anew from the best of a few TIME round trips.
func (c *Clock) Sync(ctx context.Context) error {
	best, bestRTT := int64(0), int64(-1)
	for i := 0; i < c.samples; i++ {
		t0 := c.local()
		rt, err := c.rdb.Time(ctx).Result()
		t1 := c.local()
		if err != nil {
			return err
		}
		if rtt := t1 - t0; bestRTT < 0 || rtt < bestRTT {
			best, bestRTT = rt.UnixMicro()-(t0+t1)/2, rtt
		}
		if bestRTT <= goodRTT {
			break
		}
	}
	switch {
	case bestRTT <= maxRTT:
		c.lastGood = time.Now()
	case c.synced.Load() && time.Since(c.lastGood) < staleAfter:
		return nil // keep the trusted offset
	}
	c.offset.Store(best)
	c.synced.Store(true)
	return nil
}

// Run re-syncs every interval until ctx is done. A failed sync keeps the
// last offset: the monotonic clock carries on meanwhile.
func (c *Clock) Run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := c.Sync(ctx)
		if err != nil && !failing && ctx.Err() == nil {
			log.Warn("redis clock sync failed; serving the last offset", "err", err)
		}
		failing = err != nil
	}
}

// Synced reports whether a sync has succeeded.
func (c *Clock) Synced() bool { return c.synced.Load() }

// Now returns Redis time in epoch µs, strictly increasing across calls.
func (c *Clock) Now() int64 {
	now := c.local() + c.offset.Load()
	for {
		last := c.last.Load()
		if now <= last {
			now = last + 1
		}
		if c.last.CompareAndSwap(last, now) {
			return now
		}
	}
}
