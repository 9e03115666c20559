package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/servertest"
)

// backend is one Redis the black-box suite runs the service on: the
// machine's single Redis, or the test binary's shared Redis Cluster.
type backend struct {
	name string
	// env is what an instance needs to use this backend.
	env func(t testing.TB) []string
	// client is a client of the same Redis, for a test's own look.
	client func(t testing.TB) redis.UniversalClient
}

var backends = []backend{
	{
		name: "redis",
		env:  func(testing.TB) []string { return []string{"REDIS_URL=redis://" + servertest.RedisAddr()} },
		client: func(t testing.TB) redis.UniversalClient {
			return servertest.Redis(t)
		},
	},
	{
		name: "cluster",
		env: func(t testing.TB) []string {
			c := servertest.SharedCluster(t)
			return []string{"REDIS_URL=", "REDIS_CLUSTER_ADDRS=" + strings.Join(c.Addrs, ",")}
		},
		client: func(t testing.TB) redis.UniversalClient { return servertest.SharedCluster(t).Client(t) },
	},
}

// eachBackend runs f as a parallel subtest per backend.
func eachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			f(t, b)
		})
	}
}

// start runs an instance of the service on b, env added.
func (b backend) start(t testing.TB, env ...string) *instance {
	t.Helper()
	return startInstance(t, servertest.RedisAddr(), append(b.env(t), env...)...)
}

// listen subscribes to session channels as the relay does (SSUBSCRIBE,
// which names one slot: one subscription per channel) and merges what
// they receive; it returns once Redis confirmed every channel.
func listen(t testing.TB, rdb redis.UniversalClient, channels ...string) <-chan *redis.Message {
	t.Helper()
	ctx := context.Background()
	out := make(chan *redis.Message, 1024)
	for _, ch := range channels {
		ps := rdb.SSubscribe(ctx, ch)
		t.Cleanup(func() { ps.Close() })
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		go func() {
			for m := range ps.Channel() {
				out <- m
			}
		}()
	}
	return out
}
