package e2e

import (
	"context"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/engine"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/redisclock"
	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/session"
)

// BenchmarkExpiryLatency measures the delay from a deadline to the
// TIME_EXPIRED a WebSocket client receives: one server process (default
// EXPIRY_POLL_MS) on a private redis-server, 10,000 running sessions, one
// client each, deadlines staggered evenly over 10 s (from 10 s after the
// starts began, so the setup burst is over). Before the first
// deadline it measures the Redis load of the idle scheduler (commands/s and
// Redis CPU over 5 s). Run with
//
//	go test -run '^$' -bench ExpiryLatency -benchtime 1x .
//
// (EXPIRY_BENCH_SESSIONS overrides the 10,000.)
func BenchmarkExpiryLatency(b *testing.B) {
	n := 10_000
	if v := strings.TrimSpace(os.Getenv("EXPIRY_BENCH_SESSIONS")); v != "" {
		n, _ = strconv.Atoi(v)
	}
	for range b.N {
		runExpiryBench(b, n)
	}
}

func runExpiryBench(b *testing.B, n int) {
	ctx := context.Background()
	port := servertest.FreePort(b)
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		b.Skipf("redis-server: %v", err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	raddr := "127.0.0.1:" + strconv.Itoa(port)
	rdb := redis.NewClient(&redis.Options{Addr: raddr, PoolSize: 64})
	b.Cleanup(func() { rdb.Close() })
	for end := time.Now().Add(10 * time.Second); rdb.Ping(ctx).Err() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			b.Fatal("own redis-server did not start")
		}
	}
	addr, _ := startKillable(b, raddr, "WS_MAX_CONNECTIONS=0", "WS_MAX_CONNECTIONS_PER_IP=0", "LOG_REQUESTS=false")
	s := engine.New(rdb, engine.Options{StateCacheMax: 100})
	if err := s.Load(ctx); err != nil {
		b.Fatal(err)
	}
	clock := redisclock.New(rdb)
	if err := clock.Sync(ctx); err != nil {
		b.Fatal(err)
	}

	// session i's first participant has 10 s + i x 10 s / n: once all are
	// started (which takes a few seconds), the deadlines are spread evenly
	// over 10 s (the exact ones
	// are read back from the deadline index)
	ids := make([]string, n)
	if !inParallel(b, n, func(i int) error {
		c := &session.Config{ID: uuid.NewString(), SyncMode: session.ModePerParticipant, AutoAdvance: true,
			Participants: []session.Participant{{ID: uuid.NewString(), TotalTimeMS: 10_000 + int64(i)*10_000/int64(n)}, {ID: uuid.NewString(), Index: 1, TotalTimeMS: 3_600_000}}}
		ids[i] = c.ID
		_, err := s.Create(ctx, c)
		return err
	}) {
		return
	}

	// one WebSocket client per session
	got := make([]atomic.Int64, n) // Redis-clock ms the TIME_EXPIRED arrived
	conns := make([]*websocket.Conn, n)
	dialer := &websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	b.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	if !inParallel(b, n, func(i int) error {
		c, _, err := dialer.Dial("ws://"+addr+"/ws?sessionId="+ids[i], nil)
		if err != nil {
			return err
		}
		conns[i] = c
		_, _, err = c.ReadMessage() // CONNECTED
		return err
	}) {
		return
	}
	var delivered sync.WaitGroup
	delivered.Add(n)
	for i, c := range conns {
		go func() {
			for {
				_, m, err := c.ReadMessage()
				if err != nil {
					return
				}
				// keep reading after it: an unread client stops answering
				// pings and the server drops it
				if got[i].Load() == 0 && strings.Contains(string(m), `"TIME_EXPIRED"`) {
					got[i].Store(clock.Now() / 1000)
					delivered.Done()
				}
			}
		}()
	}

	// the idle scheduler's Redis load: nothing is due
	cmdsBefore, cpuBefore := redisLoad(b, rdb)
	time.Sleep(5 * time.Second)
	cmdsAfter, cpuAfter := redisLoad(b, rdb)
	idleCmds := float64(cmdsAfter-cmdsBefore) / 5
	idleCPU := (cpuAfter - cpuBefore) / 5 * 100

	// start every session now
	startAt := time.Now()
	inParallel(b, n, func(i int) error {
		_, err := s.Start(ctx, ids[i], 0)
		return err
	})
	b.Logf("started %d sessions in %v", n, time.Since(startAt).Round(time.Millisecond))
	deadlines := make([]int64, n)
	for i, id := range ids {
		score, err := rdb.ZScore(ctx, keyspace.Deadlines(keyspace.ShardOf(id)), id).Result()
		if err != nil {
			b.Fatalf("session %d not in the index: %v", i, err)
		}
		deadlines[i] = int64(score)
	}
	done := make(chan struct{})
	go func() { delivered.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
	}
	var lat []float64
	missing := 0
	for i := range got {
		at := got[i].Load()
		if at == 0 {
			missing++
			continue
		}
		lat = append(lat, float64(at-deadlines[i]))
	}
	sort.Float64s(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	b.ReportMetric(q(0.50), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(lat[len(lat)-1], "max_ms")
	b.ReportMetric(idleCmds, "idle_redis_cmds/s")
	b.ReportMetric(idleCPU, "idle_redis_cpu_%")
	b.Logf("%d sessions, %d TIME_EXPIRED received, %d missing; deadline->client ms: p50 %.0f p90 %.0f p99 %.0f max %.0f; idle: %.0f Redis commands/s, Redis CPU %.2f%%",
		n, len(lat), missing, q(0.5), q(0.9), q(0.99), lat[len(lat)-1], idleCmds, idleCPU)
	if missing > 0 {
		b.Errorf("%d sessions got no TIME_EXPIRED", missing)
	}
	// the server's own view: deadline -> expiry applied (before fan-out)
	if r, err := servertest.Try("GET", "http://"+addr+"/metrics", ""); err == nil {
		b.Logf("server expiry lag (deadline -> applied): p50 <= %s s, p99 <= %s s",
			histQuantile(string(r.Body), "synckairos_expiry_lag_seconds", 0.5), histQuantile(string(r.Body), "synckairos_expiry_lag_seconds", 0.99))
	}
}

// histQuantile returns the upper bound of the Prometheus bucket holding
// quantile q of histogram name.
func histQuantile(metricsText, name string, q float64) string {
	type bucket struct {
		le    string
		count float64
	}
	var bs []bucket
	for _, line := range strings.Split(metricsText, "\n") {
		if !strings.HasPrefix(line, name+"_bucket{") {
			continue
		}
		i := strings.Index(line, `le="`)
		j := strings.LastIndexByte(line, ' ')
		if i < 0 || j < 0 {
			continue
		}
		le := line[i+4:]
		le = le[:strings.IndexByte(le, '"')]
		c, _ := strconv.ParseFloat(line[j+1:], 64)
		bs = append(bs, bucket{le, c})
	}
	if len(bs) == 0 {
		return "?"
	}
	total := bs[len(bs)-1].count
	for _, b := range bs {
		if b.count >= q*total {
			return b.le
		}
	}
	return "+Inf"
}

// redisLoad reads total_commands_processed and Redis CPU seconds.
func redisLoad(b *testing.B, rdb *redis.Client) (int64, float64) {
	info, err := rdb.Info(context.Background(), "stats", "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var cmds int64
	var cpu float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "total_commands_processed":
			cmds, _ = strconv.ParseInt(v, 10, 64)
		case "used_cpu_sys", "used_cpu_user":
			f, _ := strconv.ParseFloat(v, 64)
			cpu += f
		}
	}
	return cmds, cpu
}

// inParallel runs do(i) for every i in [0, n) on 32 goroutines, each
// stopping at its first error (reported on b); it says whether all went
// well.
func inParallel(b *testing.B, n int, do func(i int) error) bool {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := do(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return !b.Failed()
}
