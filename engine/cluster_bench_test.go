package engine

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
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

// BenchmarkFailoverLoss measures what Redis's asynchronous replication
// loses at a failover: 64 goroutines switch 300 sessions on a private
// Cluster (a client that never retries a script), a master is killed with
// SIGKILL, and once its replica serves, each session's version is read
// back. lost-acked is the number of switches that were acknowledged and
// are not in the surviving state (acked versions above it), per run. With
// wait=true each switch is acknowledged only after `WAIT 1 1000` on the
// session's master (the replica has it), as a WAIT option would.
//
//	go test -run '^$' -bench FailoverLoss -benchtime 1x -count 5 ./engine
func BenchmarkFailoverLoss(b *testing.B) {
	for _, wait := range []bool{false, true} {
		b.Run("wait="+strconv.FormatBool(wait), func(b *testing.B) {
			var lostTotal, ackedTotal int64
			for range b.N {
				lost, acked := failoverLoss(b, wait)
				lostTotal += lost
				ackedTotal += acked
			}
			b.ReportMetric(float64(lostTotal)/float64(b.N), "lost-acked")
			b.ReportMetric(float64(ackedTotal)/float64(b.N), "acked")
		})
	}
}

func failoverLoss(b *testing.B, wait bool) (lost, acked int64) {
	b.StopTimer()
	c := servertest.StartCluster(b)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, MaxRetries: -1})
	b.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	s := New(rdb, Options{StateCacheMax: 1000})
	if err := s.Load(ctx); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 300)
	for i := range ids {
		cfg := newConfig(b, session.ModePerParticipant, 4, 3_600_000)
		mustCreate(b, s, cfg)
		if _, err := s.Start(ctx, cfg.ID, 0); err != nil {
			b.Fatal(err)
		}
		ids[i] = cfg.ID
	}
	maxAcked := make([]atomic.Int64, len(ids))
	var stop atomic.Bool
	var count atomic.Int64
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			for k := w; !stop.Load(); k += 64 {
				i := k % len(ids)
				out, err := s.Switch(ctx, ids[i], session.SwitchArgs{})
				if err != nil {
					continue // refused or unknown: not acknowledged
				}
				if wait {
					m, err := rdb.MasterForKey(ctx, keyspace.For(ids[i]).Meta)
					if err != nil {
						continue
					}
					if n, err := m.Wait(ctx, 1, time.Second).Result(); err != nil || n < 1 {
						continue
					}
				}
				v := decode[State](b, out).Version
				for cur := maxAcked[i].Load(); v > cur && !maxAcked[i].CompareAndSwap(cur, v); cur = maxAcked[i].Load() {
				}
				count.Add(1)
			}
		})
	}
	servertest.WaitFor(b, 30*time.Second, "2000 acknowledged switches", func() bool { return count.Load() >= 2000 })
	master := c.Masters[0]
	stop.Store(true) // in-flight switches still finish, and count
	c.Kill(b, master)
	wg.Wait()
	// a fresh client reads back: the slot map of the first one may still
	// name the dead master, and it never retries
	s = New(c.Client(b), Options{})
	for i, id := range ids {
		var got []byte
		servertest.WaitFor(b, 10*time.Second, "session "+id+" readable", func() bool {
			out, err := s.Get(ctx, id)
			got = out
			return err == nil
		})
		if d := maxAcked[i].Load() - decode[State](b, got).Version; d > 0 {
			lost += d
		}
	}
	return lost, count.Load()
}
