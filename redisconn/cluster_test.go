package redisconn

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/synckairos/synckairos/servertest"
)

func TestMain(m *testing.M) { servertest.RunMain(m, nil) }

// TestClusterRoutes runs a script on keys of every shard tag through Open's
// Cluster client: each lands on the master owning its slot (no CROSSSLOT,
// no MOVED surfacing), so the guard lets redirections through.
func TestClusterRoutes(t *testing.T) {
	c := servertest.SharedCluster(t)
	rdb, err := Open(Config{ClusterAddrs: c.Addrs, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := context.Background()
	for i := range 16 {
		key := "{" + strconv.FormatInt(int64(i), 16) + "}redisconn-test"
		got, err := rdb.Eval(ctx, "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])", []string{key}, "v").Text()
		if err != nil || got != "v" {
			t.Fatalf("%s: Eval = %q, %v", key, got, err)
		}
	}
}
