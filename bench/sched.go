package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// clock is the time source of the scheduler; tests pass a fake one.
type clock interface {
	Now() time.Time
	SleepUntil(t time.Time)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) SleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}

// schedule hands out operations in an open loop: operation i is due at
// Start + i*Interval whatever happened to the ones before it. A worker
// measures latency from that due time, not from when it got round to
// sending, so a server that stalls shows up as high latency instead of as
// fewer requests (coordinated omission). Interval 0 is a closed loop: each
// worker sends as soon as its last answer came back (capacity probes only).
type schedule struct {
	Start    time.Time
	Interval time.Duration
	Count    int64     // operations in all
	End      time.Time // nothing is due at or after End
	next     atomic.Int64
}

// newSchedule spreads rate operations a second over d, starting at start.
func newSchedule(start time.Time, rate float64, d time.Duration) *schedule {
	s := &schedule{Start: start, End: start.Add(d)}
	if rate <= 0 {
		s.Count = 1 << 62
		return s
	}
	s.Interval = time.Duration(float64(time.Second) / rate)
	if s.Interval <= 0 {
		s.Interval = 1
	}
	s.Count = int64(d / s.Interval)
	return s
}

// take returns the next operation and its due time; ok is false when the
// schedule is used up. In a closed loop the due time is zero.
func (s *schedule) take() (i int64, due time.Time, ok bool) {
	i = s.next.Add(1) - 1
	if i >= s.Count {
		return i, time.Time{}, false
	}
	if s.Interval == 0 {
		return i, time.Time{}, true
	}
	due = s.Start.Add(time.Duration(i) * s.Interval)
	if !due.Before(s.End) {
		return i, time.Time{}, false
	}
	return i, due, true
}

// taken returns how many operations were handed out, capped at Count.
func (s *schedule) taken() int64 { return min(s.next.Load(), s.Count) }

// opFunc runs operation i, due at due; it returns the op's kind (the
// histogram it belongs to) and "" or the kind of error it ended in.
type opFunc func(ctx context.Context, i int64, due time.Time) (op, errKind string)

// tally is what one run of a schedule produced.
type tally struct {
	hists  map[string]*Hist
	errors map[string]int64
	done   int64
}

func newTally() *tally { return &tally{hists: map[string]*Hist{}, errors: map[string]int64{}} }

func (t *tally) hist(op string) *Hist {
	h := t.hists[op]
	if h == nil {
		h = &Hist{}
		t.hists[op] = h
	}
	return h
}

func (t *tally) merge(o *tally) {
	for k, h := range o.hists {
		t.hist(k).Merge(h)
	}
	for k, n := range o.errors {
		t.errors[k] += n
	}
	t.done += o.done
}

// runSchedule runs the schedule with workers goroutines. It stops taking
// work at hardStop (a run that falls that far behind counts the rest as
// not_sent) or when ctx ends. progress, if set, counts finished operations.
func runSchedule(ctx context.Context, clk clock, s *schedule, workers int, hardStop time.Time, progress *atomic.Int64, op opFunc) *tally {
	var mu sync.Mutex
	total := newTally()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := newTally()
			for ctx.Err() == nil {
				i, due, ok := s.take()
				if !ok {
					break
				}
				if due.IsZero() {
					// Closed loop: bounded by time, not by count.
					if due = clk.Now(); !due.Before(s.End) {
						break
					}
				} else {
					clk.SleepUntil(due)
				}
				if clk.Now().After(hardStop) {
					local.errors["not_sent"]++
					continue
				}
				kind, errKind := op(ctx, i, due)
				lat := clk.Now().Sub(due)
				local.done++
				if errKind != "" {
					local.errors[errKind]++
				} else {
					local.hist(kind).Record(lat)
				}
				if progress != nil {
					progress.Add(1)
				}
			}
			mu.Lock()
			total.merge(local)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if s.Interval > 0 {
		// Operations never handed out because ctx ended are missing too.
		if left := s.Count - s.taken(); left > 0 && ctx.Err() != nil {
			total.errors["not_sent"] += left
		}
	}
	return total
}
