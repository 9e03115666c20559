package persist

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/redisconn"
	"github.com/synckairos/synckairos/servertest"
)

func TestMain(m *testing.M) { servertest.RunMain(m, nil) }

// backends are the Redis deployments the worker must run on with one code
// path: a private single Redis, and the shared real 3-master Cluster
// through the service's own client (redisconn). The Cluster's streams are
// the real shard keys; only this package's tests use that Cluster.
var backends = []struct {
	name string
	open func(t *testing.T) redis.UniversalClient
}{
	{"redis", func(t *testing.T) redis.UniversalClient { return startRedis(t) }},
	{"cluster", func(t *testing.T) redis.UniversalClient {
		c := servertest.SharedCluster(t)
		rdb, err := redisconn.Open(redisconn.Config{ClusterAddrs: c.Addrs, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}},
}

// TestWorkerEveryShardExactlyOnce: sessions on every shard, one worker
// that crashes after its first commit (its entries stay pending), then two
// workers at once that claim them and read the rest. Every event ends in
// PostgreSQL exactly once, the redelivered batch is counted as duplicates,
// the streams are trimmed and the lag measured, on both backends.
func TestWorkerEveryShardExactlyOnce(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := be.open(t)
			db := newTestDB(t)
			d := newDriver(t, rdb, 100000)

			const perShard = 3
			const perSession = 8 // create, start, 3 switches, pause, resume, complete
			var ids []string
			for shard := range keyspace.Shards {
				for n := 0; n < perShard; {
					id := newUUID()
					if keyspace.ShardOf(id) != shard {
						continue
					}
					ids = append(ids, id)
					n++
				}
			}
			for _, id := range ids {
				must(t, d.create(ctx, id, 2))
				for _, op := range []string{"startSession", "switchCycle", "switchCycle", "switchCycle",
					"pauseSession", "resumeSession", "completeSession"} {
					must(t, d.op(ctx, op, id))
				}
			}
			total := int64(len(ids) * perSession)

			cfg := testConfig()
			cfg.Consumer = "crashing-" + randHex(4)
			cfg.Lanes, cfg.Count = 1, 5 // one batch in flight, and much left unread after it
			var crashed atomic.Bool
			cfg.CrashAt = func(s Stage) bool { return s == AfterCommit && crashed.CompareAndSwap(false, true) }
			// bounded: a worker whose reads fail (CROSSSLOT) never gets to crash
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := NewWorker(rdb, db.pool(t, pgAddr), quietLog(), cfg).Run(cctx); !errors.Is(err, ErrCrashed) {
				t.Fatalf("crashing worker: %v, want ErrCrashed after its first batch", err)
			}
			committed := db.count(t, `SELECT count(*) FROM sync_events`)
			if committed == 0 {
				t.Fatal("the crashing worker committed nothing")
			}

			var ws []*Worker
			for range 2 {
				w := NewWorker(rdb, db.pool(t, pgAddr), quietLog(), testConfig())
				ws = append(ws, w)
				stop := run(w)
				defer func() { must(t, stop()) }()
			}
			servertest.WaitFor(t, 30*time.Second, "every event written", func() bool {
				return db.count(t, `SELECT count(*) FROM sync_events`) >= total
			})
			servertest.WaitFor(t, 10*time.Second, "streams acknowledged and trimmed", func() bool {
				for _, s := range keyspace.Streams() {
					if p, err := rdb.XPending(ctx, s, "persist").Result(); err != nil || p.Count != 0 {
						return false
					}
				}
				return streamLen(t, rdb) == 0
			})
			exactlyOnce(t, db, total)
			if n := db.count(t, `SELECT count(*) FROM sync_sessions WHERE final_status = 'completed' AND last_version = $1`,
				perSession); n != int64(len(ids)) {
				t.Errorf("%d completed sessions at version %d, want %d", n, perSession, len(ids))
			}
			dups := int64(ws[0].m.duplicates.Get() + ws[1].m.duplicates.Get())
			// At least the crashed batch; more if a slow write let the other
			// worker claim a batch too (ClaimIdle is short here).
			if dups < committed {
				t.Errorf("duplicates skipped = %d, want at least the crashed batch's %d", dups, committed)
			}
			for i, w := range ws {
				if err := w.measure(ctx); err != nil {
					t.Errorf("worker %d lag: %v", i, err)
				}
				if w.Lag() != 0 {
					t.Errorf("worker %d lag = %v with nothing unacknowledged", i, w.Lag())
				}
			}
		})
	}
}
