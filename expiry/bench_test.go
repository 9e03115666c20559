package expiry

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/redisclock"
	"github.com/synckairos/synckairos/servertest"
)

// BenchmarkIdleCost: what one idle scheduler at the default poll costs
// Redis over keyspace.Shards empty deadline indexes, from INFO
// commandstats of a private Redis over 5 s.
//
//	go test -run '^$' -bench IdleCost -benchtime 1x ./expiry
func BenchmarkIdleCost(b *testing.B) {
	ctx := context.Background()
	addr, _ := servertest.StartRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	b.Cleanup(func() { rdb.Close() })
	clock := redisclock.New(rdb)
	if err := clock.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	never := expirerFunc(func(context.Context, string) (bool, error) { return false, nil })
	s := New(rdb, never, clock, Config{}, quiet())
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.Run(rctx) }()
	defer func() { cancel(); <-done }()
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	const window = 5 * time.Second
	time.Sleep(window)
	stats, err := servertest.CommandStats(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	z := stats["zrangebyscore"]
	b.ReportMetric(float64(z.Calls)/window.Seconds(), "cmds/s")
	b.ReportMetric(float64(z.Usec)/window.Seconds(), "redis-µs/s")
	b.ReportMetric(float64(z.Calls)/float64(s.ticks.Get())/float64(keyspace.Shards), "cmds/tick/shard")
	b.ReportMetric(0, "ns/op")
}
