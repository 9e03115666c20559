package keyspace

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// CheckShards makes sure the Redis behind rdb is laid out in Shards
// shards, before anything is written: a different count would put a
// session's keys under another tag and split its data. The first instance
// records Shards in ShardsKey, and a Redis that records another count is
// refused with what to do. Builds from before the record used 16 shards
// with one-digit tags (sk:{a}:events); such keys cannot be told from a
// test's leftovers without reading them, so they are returned for the
// caller to warn about rather than refused.
func CheckShards(ctx context.Context, rdb redis.UniversalClient) (oldLayout []string, err error) {
	got, err := rdb.Get(ctx, ShardsKey).Result()
	if err == nil {
		return nil, sameShards(got)
	}
	if !errors.Is(err, redis.Nil) {
		return nil, err
	}
	// One EXISTS per key: on a Cluster each is in its own slot.
	cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, d := range hexDigits {
			for _, what := range []string{"events", "deadlines"} {
				p.Exists(ctx, "sk:{"+string(d)+"}:"+what)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, c := range cmds {
		if c.(*redis.IntCmd).Val() > 0 {
			oldLayout = append(oldLayout, c.Args()[1].(string))
		}
	}
	ok, err := rdb.SetNX(ctx, ShardsKey, Shards, 0).Result()
	if err != nil || ok {
		return oldLayout, err
	}
	// Another instance recorded it meanwhile.
	if got, err = rdb.Get(ctx, ShardsKey).Result(); err != nil {
		return oldLayout, err
	}
	return oldLayout, sameShards(got)
}

func sameShards(recorded string) error {
	if recorded == strconv.Itoa(Shards) {
		return nil
	}
	return fmt.Errorf("this Redis is laid out in %q shards (key %s), but this build uses %d: every instance "+
		"and client sharing a Redis must use the same count (lua/README.md \"Keys\")", recorded, ShardsKey, Shards)
}
