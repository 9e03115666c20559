package main

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock moves only when told: sleeping jumps to the wake-up time, and
// each operation advances it by its cost. One worker keeps it deterministic.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) SleepUntil(t time.Time) {
	c.mu.Lock()
	if t.After(c.now) {
		c.now = t
	}
	c.mu.Unlock()
}
func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func TestScheduleDueTimes(t *testing.T) {
	start := time.Unix(1000, 0)
	cases := []struct {
		rate      float64
		d         time.Duration
		wantCount int64
		wantStep  time.Duration
	}{
		{1000, time.Second, 1000, time.Millisecond},
		{10, 5 * time.Second, 50, 100 * time.Millisecond},
		{3, time.Second, 3, 333333333},
	}
	for _, c := range cases {
		s := newSchedule(start, c.rate, c.d)
		var n int64
		for {
			i, due, ok := s.take()
			if !ok {
				break
			}
			if want := start.Add(time.Duration(i) * c.wantStep); !due.Equal(want) {
				t.Fatalf("rate %v: op %d due %v, want %v", c.rate, i, due, want)
			}
			if !due.Before(start.Add(c.d)) {
				t.Fatalf("rate %v: op %d due after the end", c.rate, i)
			}
			n++
		}
		if n != c.wantCount {
			t.Errorf("rate %v over %v: %d ops, want %d", c.rate, c.d, n, c.wantCount)
		}
	}
}

func TestScheduleHandsOutEachOpOnce(t *testing.T) {
	s := newSchedule(time.Now(), 100000, time.Second)
	seen := make([]int32, s.Count)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, _, ok := s.take()
				if !ok {
					return
				}
				seen[i]++ // each index is handed to one goroutine only; -race checks that
			}
		}()
	}
	wg.Wait()
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("op %d handed out %d times", i, n)
		}
	}
}

// A server that stalls must show up as latency measured from each op's
// due time, not as fewer operations (coordinated omission).
func TestRunScheduleMeasuresFromDueTime(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	s := newSchedule(clk.Now(), 100, time.Second) // due every 10 ms, 100 ops
	var got []time.Duration
	tl := runSchedule(context.Background(), clk, s, 1, clk.Now().Add(time.Hour), nil, func(_ context.Context, i int64, due time.Time) (string, string) {
		cost := time.Millisecond
		if i == 10 {
			cost = 500 * time.Millisecond // one stall
		}
		clk.advance(cost)
		got = append(got, clk.Now().Sub(due))
		return "switch", ""
	})
	if tl.done != 100 {
		t.Fatalf("done %d, want all 100 ops despite the stall", tl.done)
	}
	// Op 10 took 500 ms; ops 11..59 were due while it ran, so each waited.
	if got[10] != 500*time.Millisecond {
		t.Errorf("stalled op latency %v, want 500ms", got[10])
	}
	if want := 500*time.Millisecond - 10*time.Millisecond + time.Millisecond; got[11] != want {
		t.Errorf("op after the stall: %v, want %v (queued behind it)", got[11], want)
	}
	if got[99] != time.Millisecond {
		t.Errorf("last op %v, want 1ms once caught up", got[99])
	}
	h := tl.hists["switch"]
	if h.Count() != 100 || h.Max() != 500*time.Millisecond {
		t.Errorf("histogram count %d max %v", h.Count(), h.Max())
	}
	// Closed-loop measurement would show one slow op; open loop shows the queue.
	if p90 := h.Quantile(0.9); p90 < 50*time.Millisecond {
		t.Errorf("p90 %v: the ops queued behind the stall are missing", p90)
	}
}

func TestRunScheduleCountsErrorsAndNotSent(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	s := newSchedule(clk.Now(), 10, time.Second) // 10 ops, 100 ms apart
	hardStop := clk.Now().Add(350 * time.Millisecond)
	tl := runSchedule(context.Background(), clk, s, 1, hardStop, nil, func(_ context.Context, i int64, _ time.Time) (string, string) {
		clk.advance(time.Millisecond)
		if i%2 == 1 {
			return "switch", "http_500 INTERNAL_ERROR"
		}
		return "switch", ""
	})
	// Ops due at 0..300 ms ran; 400..900 ms are past the hard stop.
	if tl.errors["not_sent"] != 6 {
		t.Errorf("not_sent %d, want 6", tl.errors["not_sent"])
	}
	if tl.errors["http_500 INTERNAL_ERROR"] != 2 || tl.hists["switch"].Count() != 2 {
		t.Errorf("errors %v, ok %d", tl.errors, tl.hists["switch"].Count())
	}
}

func TestRunScheduleClosedLoop(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	s := newSchedule(clk.Now(), 0, 100*time.Millisecond)
	tl := runSchedule(context.Background(), clk, s, 1, clk.Now().Add(time.Hour), nil, func(context.Context, int64, time.Time) (string, string) {
		clk.advance(2 * time.Millisecond)
		return "switch", ""
	})
	if tl.done != 50 || tl.hists["switch"].Max() != 2*time.Millisecond {
		t.Errorf("done %d max %v", tl.done, tl.hists["switch"].Max())
	}
}
