package persist

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/session"
)

// produce runs switches through the real script on sessions (100 of them,
// created and started first), pipelined `pipe` at a time from `workers`
// goroutines, until n events were appended (n <= 0: until ctx ends).
// It returns the number of events appended.
func produce(ctx context.Context, tb testing.TB, rdb *redis.Client, n int64, workers, pipe int) int64 {
	tb.Helper()
	d := newDriver(tb, rdb, 10_000_000)
	ids := d.sessions(ctx, tb, 100, 4, "startSession")
	var done atomic.Int64
	done.Store(int64(2 * len(ids)))
	var wg sync.WaitGroup
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := ids[g*len(ids)/workers : (g+1)*len(ids)/workers]
			for ctx.Err() == nil && (n <= 0 || done.Load() < n) {
				_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
					for i := 0; i < pipe; i++ {
						id := mine[i%len(mine)]
						d.e.Batch(ctx, p).Switch(id, session.SwitchArgs{})
					}
					return nil
				})
				if err != nil && ctx.Err() == nil {
					tb.Error(err)
					return
				}
				done.Add(int64(pipe))
			}
		}()
	}
	wg.Wait()
	return done.Load()
}

// BenchmarkDrainBacklog: b.N events already wait in the streams (real
// script entries, 4-participant sessions); how fast does one worker move
// them into PostgreSQL?
func BenchmarkDrainBacklog(b *testing.B) {
	ctx := context.Background()
	rdb := startRedis(b)
	db := newTestDB(b)
	total := produce(ctx, b, rdb, int64(b.N), 2, 100)
	w := NewWorker(rdb, db.pool(b, pgAddr), quietLog(), Config{Poll: 50 * time.Millisecond})
	b.ResetTimer()
	start := time.Now()
	stop := run(w)
	for int64(w.m.written.Get()) < total {
		time.Sleep(5 * time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	_ = stop()
	var buf bytes.Buffer
	w.Metrics().WritePrometheus(&buf)
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, "_sum") || strings.Contains(l, "_count") {
			b.Log(l)
		}
	}
	b.ReportMetric(float64(total)/el.Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkSustained: producers run switches at full speed for 10 s while
// the worker writes; reports both rates and the worst consumer lag seen.
func BenchmarkSustained(b *testing.B) {
	for i := 0; i < b.N; i++ {
		ctx := context.Background()
		rdb := startRedis(b)
		db := newTestDB(b)
		w := NewWorker(rdb, db.pool(b, pgAddr), quietLog(), Config{Poll: 50 * time.Millisecond, LagEvery: 100 * time.Millisecond})
		stop := run(w)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var worst time.Duration
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for pctx.Err() == nil {
				worst = max(worst, w.Lag())
				time.Sleep(100 * time.Millisecond)
			}
		}()
		start := time.Now()
		produced := produce(pctx, b, rdb, 0, 2, 100)
		el := time.Since(start)
		cancel()
		<-sampled
		writtenAtEnd := w.m.written.Get()
		for int64(w.m.written.Get()) < produced-int64(100) { // the last pipelines may have been cut short
			time.Sleep(5 * time.Millisecond)
		}
		_ = stop()
		b.ReportMetric(float64(produced)/el.Seconds(), "produced/s")
		b.ReportMetric(float64(writtenAtEnd)/el.Seconds(), "written/s")
		b.ReportMetric(float64(worst.Milliseconds()), "max-lag-ms")
		b.ReportMetric(0, "ns/op")
	}
}

// BenchmarkIdleCost: what an idle worker (Poll, claims, lag) costs Redis
// over n empty streams, from INFO commandstats of a private Redis over 5 s:
// commands/s and Redis CPU µs/s, per shard count.
//
//	go test -run '^$' -bench IdleCost -benchtime 1x ./persist
func BenchmarkIdleCost(b *testing.B) {
	for _, n := range []int{16, 64} {
		b.Run("streams="+strconv.Itoa(n), func(b *testing.B) {
			ctx := context.Background()
			rdb := startRedis(b)
			streams := make([]string, n)
			for i := range streams {
				streams[i] = "idle:{" + strconv.Itoa(i) + "}:events"
			}
			w := NewWorker(rdb, nil, quietLog(), Config{Streams: streams})
			stop := run(w)
			defer func() { _ = stop() }()
			time.Sleep(200 * time.Millisecond) // past ensureGroups
			must(b, rdb.ConfigResetStat(ctx).Err())
			const window = 5 * time.Second
			time.Sleep(window)
			stats, err := servertest.CommandStats(ctx, rdb)
			must(b, err)
			var calls, usec int64
			for name, s := range stats {
				if name != "info" && name != "config|resetstat" {
					calls, usec = calls+s.Calls, usec+s.Usec
					b.Logf("%s: %.1f/s", name, float64(s.Calls)/window.Seconds())
				}
			}
			b.ReportMetric(float64(calls)/window.Seconds(), "cmds/s")
			b.ReportMetric(float64(usec)/window.Seconds(), "redis-µs/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
