package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// scenario is one measured run: a workload against a target.
type scenario struct {
	Name   string
	Kind   string // switch, fanout, mixed, soak
	Floor  string // Name of the result this one is compared to
	Params Params
	Window time.Duration // soak: each window is reported as one repetition
	PID    int           // server process whose RSS a soak samples; 0 = none
}

// runScenario sets up sessions (and clients), warms up, runs the
// repetitions and tears everything down again.
func runScenario(ctx context.Context, sc scenario, t target, mixed *httpTarget) (*Result, error) {
	p := sc.Params
	res := &Result{Name: sc.Name, Scenario: sc.Kind, Target: t.name(), Floor: sc.Floor, Params: p, Errors: map[string]int64{}}
	logf("%s: creating %d sessions", sc.Name, p.Sessions)
	sessions := make([]*sess, p.Sessions)
	for i := range sessions {
		sessions[i] = newSess(p.Participants)
	}
	created, err := parallel(ctx, sessions, max(p.Concurrency, 8), func(s *sess) error { return t.setup(ctx, s) })
	defer func() {
		// Running sessions never expire: delete every one we made, whatever happened.
		var failed atomic.Int64
		parallel(context.Background(), sessions[:created], max(p.Concurrency, 8), func(s *sess) error {
			if t.teardown(context.Background(), s) != nil {
				failed.Add(1)
			}
			return nil
		})
		if n := failed.Load(); n > 0 {
			logf("%s: %d sessions could not be deleted", sc.Name, n)
		} else if ctx.Err() != nil {
			logf("%s: interrupted; deleted its %d sessions", sc.Name, created)
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("%s: setup: %w", sc.Name, err)
	}

	errs := &errCounter{}
	reps := p.Reps
	del := newDeliveries(reps)
	var clients []*wsClient
	var closing atomic.Bool
	if p.Clients > 0 {
		if t.wsURL("x") == "" {
			return nil, fmt.Errorf("%s: target %s has no WebSocket side", sc.Name, t.name())
		}
		logf("%s: connecting %d WebSocket clients", sc.Name, p.Sessions*p.Clients)
		clients, err = dialAll(ctx, t, sessions, p.Clients, 64, func(c *wsClient) { go c.read(del, errs, &closing) })
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sc.Name, err)
		}
	}
	defer func() {
		if !closing.Load() {
			closing.Store(true)
			closeAll(clients)
		}
	}()

	op := func(rep int) opFunc {
		return func(ctx context.Context, i int64, due time.Time) (string, string) {
			s := sessions[i%int64(len(sessions))]
			if mixed != nil {
				switch i % 10 {
				case 7, 8:
					return "get", mixed.getOp(s)
				case 9:
					return "time", mixed.timeOp()
				}
			}
			v, kind := t.switchOp(ctx, s)
			if kind == "" && p.Clients > 0 {
				s.noteSend(v, due, rep) // for matching deliveries
			}
			return "switch", kind
		}
	}

	var progress atomic.Int64
	stopProgress := startProgress(sc.Name, &progress, errs)
	defer stopProgress()

	if p.WarmupS > 0 {
		warm := time.Duration(p.WarmupS * float64(time.Second))
		s := newSchedule(time.Now(), p.Rate, warm)
		tl := runSchedule(ctx, realClock{}, s, p.Concurrency, time.Now().Add(warm+30*time.Second), &progress, op(-1))
		for k, n := range tl.errors {
			errs.add("warmup "+k, n)
		}
	}

	dur := time.Duration(p.DurationS * float64(time.Second))
	var first time.Time
	for rep := 0; rep < reps && ctx.Err() == nil; rep++ {
		start := time.Now()
		if rep == 0 {
			first = start
		}
		s := newSchedule(start, p.Rate, dur)
		tl := runSchedule(ctx, realClock{}, s, p.Concurrency, start.Add(dur+max(dur, 10*time.Second)), &progress, op(rep))
		elapsed := time.Since(start)
		for k, n := range tl.errors {
			errs.add(k, n)
		}
		r := Rep{StartS: start.Sub(first).Seconds(), Throughput: float64(tl.done) / elapsed.Seconds(), Latency: map[string]Latency{}}
		for k, h := range tl.hists {
			r.Latency[k] = h.Summary()
		}
		if sc.PID > 0 {
			r.RSSKB, _ = rssKB(sc.PID)
		}
		res.Reps = append(res.Reps, r)
	}
	if ctx.Err() != nil {
		errs.add("interrupted", 1)
	}

	if len(clients) > 0 {
		drain(clients, 10*time.Second)
		res.Missed = finish(clients, del, errs, &closing)
		for i := range res.Reps {
			res.Reps[i].Latency["delivery"] = del.hist(i).Summary()
		}
	}
	res.Errors = errs.snapshot()
	res.summarize()
	return res, nil
}

// parallel runs f over items with at most par at a time and stops at the
// first error. It returns how many items may have been touched (all of
// them: workers run out of order), for the teardown.
func parallel(ctx context.Context, items []*sess, par int, f func(*sess) error) (int, error) {
	return len(items), forEach(ctx, len(items), par, func(i int) error { return f(items[i]) })
}

// forEach runs f(0) … f(n-1) on par workers; every worker stops at the
// first error, which it returns (or ctx's, when ctx ended first).
func forEach(ctx context.Context, n, par int, f func(i int) error) error {
	var next atomic.Int64
	var failed atomic.Pointer[error] // not atomic.Value: errors of different types
	var wg sync.WaitGroup
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && failed.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		return *err
	}
	return ctx.Err()
}

// startProgress prints a line to stderr every 10 s while a run lasts.
func startProgress(name string, done *atomic.Int64, errs *errCounter) func() {
	stop := make(chan struct{})
	start := time.Now()
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		var last int64
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				n := done.Load()
				var e int64
				for _, v := range errs.snapshot() {
					e += v
				}
				fmt.Fprintf(os.Stderr, "  %s: %3.0fs  %d ops (%.0f/s)  errors %d\n", name, time.Since(start).Seconds(), n, float64(n-last)/10, e)
				last = n
			}
		}
	}()
	return func() { close(stop) }
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}
