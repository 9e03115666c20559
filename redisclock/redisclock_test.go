package redisclock

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/synckairos/synckairos/servertest"
)

// syncedClock is a Clock on rdb after its first Sync.
func syncedClock(t *testing.T, rdb Timer) *Clock {
	t.Helper()
	c := New(rdb)
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWithinOneMillisecond brackets each Redis TIME between two readings of
// the clock: Redis's answer was true at some instant between them, so the
// clock is within 1 ms when redis lies in [before-1ms, after+1ms].
func TestWithinOneMillisecond(t *testing.T) {
	rdb := servertest.Redis(t)
	c := syncedClock(t, rdb)
	ctx := context.Background()
	for i := 0; i < 300; i++ {
		before := c.Now()
		rt, err := rdb.Time(ctx).Result()
		after := c.Now()
		if err != nil {
			t.Fatal(err)
		}
		r := rt.UnixMicro()
		if r < before-1000 || r > after+1000 {
			t.Fatalf("sample %d: Redis TIME %d outside [%d-1ms, %d+1ms] (off by %d µs / %d µs)",
				i, r, before, after, r-before, r-after)
		}
		if i%100 == 99 {
			if err := c.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStrictlyIncreasing(t *testing.T) {
	c := syncedClock(t, servertest.Redis(t))
	const goroutines, calls = 8, 20000
	seen := make([][]int64, goroutines)
	var wg sync.WaitGroup
	for g := range seen {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := int64(0)
			for i := 0; i < calls; i++ {
				v := c.Now()
				if v <= prev {
					t.Errorf("Now went from %d to %d", prev, v)
					return
				}
				prev = v
				seen[g] = append(seen[g], v)
			}
		}()
	}
	// A re-sync mid-way must not break monotonicity.
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	all := map[int64]bool{}
	for _, s := range seen {
		for _, v := range s {
			if all[v] {
				t.Fatalf("value %d returned twice", v)
			}
			all[v] = true
		}
	}
}

func TestRunKeepsSyncing(t *testing.T) {
	c := syncedClock(t, servertest.Redis(t))
	c.offset.Store(c.offset.Load() - 5_000_000) // pretend the last sync was 5 s off
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, 10*time.Millisecond, nil); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for c.Now() < time.Now().UnixMicro()-1_000_000 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not re-sync the offset")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

func BenchmarkNow(b *testing.B) {
	c := New(servertest.Redis(b))
	if err := c.Sync(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Now()
		}
	})
}
