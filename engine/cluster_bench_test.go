package engine

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/session"
)

// BenchmarkClusterScale runs one load, switches from 64 goroutines over
// 3000 running sessions of 4 participants (no audit events), against the
// machine's single Redis and against a private 3-master Redis Cluster, in
// one run. Beside throughput (switch/s) and latency it reports Redis's own
// cost from INFO commandstats on every master: EVALSHA calls per switch
// (the round trips), script CPU per switch, and each master's share of
// that CPU (share-m1..3; a third each is an even spread of the sessions'
// slots).
//
//	go test -run '^$' -bench ClusterScale -benchtime 60000x ./engine
func BenchmarkClusterScale(b *testing.B) {
	c := servertest.StartCluster(b)
	single := newTestClient(b)
	var masters []*redis.Client
	for _, m := range c.Masters {
		masters = append(masters, c.Node(b, m))
	}
	for _, be := range []struct {
		name    string
		rdb     redis.UniversalClient
		masters []*redis.Client
	}{
		{"redis", single, []*redis.Client{single}},
		{"cluster", c.Client(b), masters},
	} {
		b.Run(be.name, func(b *testing.B) {
			s := New(be.rdb, Options{StateCacheMax: 4000})
			if err := s.Load(context.Background()); err != nil {
				b.Fatal(err)
			}
			ids := make([]string, 3000)
			for i := range ids {
				cfg := newConfig(b, session.ModePerParticipant, 4, 3_600_000)
				mustCreate(b, s, cfg)
				if _, err := s.Start(context.Background(), cfg.ID, 0); err != nil {
					b.Fatal(err)
				}
				ids[i] = cfg.ID
			}
			before := make([]cmdStats, len(be.masters))
			for i, m := range be.masters {
				before[i] = evalshaStats(b, m)
			}
			var next atomic.Int64
			var mu sync.Mutex
			var lat latencies
			const workers = 64
			var wg sync.WaitGroup
			b.ResetTimer()
			t0 := time.Now()
			for range workers {
				wg.Go(func() {
					var mine latencies
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							break
						}
						mine.time(func() {
							if _, err := s.Switch(context.Background(), ids[i%int64(len(ids))], session.SwitchArgs{}); err != nil {
								b.Error(err)
							}
						})
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				})
			}
			wg.Wait()
			elapsed := time.Since(t0)
			b.StopTimer()
			var calls, usec int64
			shares := make([]int64, len(be.masters))
			for i, m := range be.masters {
				now := evalshaStats(b, m)
				calls += now.calls - before[i].calls
				shares[i] = now.usec - before[i].usec
				usec += shares[i]
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "switch/s")
			b.ReportMetric(float64(calls)/float64(b.N), "evalsha/switch")
			b.ReportMetric(float64(usec)/float64(b.N), "redis-us/switch")
			if len(shares) > 1 {
				for i, u := range shares {
					b.ReportMetric(float64(u)/float64(usec), "share-m"+strconv.Itoa(i+1))
				}
			}
			lat.report(b)
		})
	}
}
