package ratelimit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/engine/ratelimit"
	"github.com/synckairos/synckairos/servertest"
)

func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	l := ratelimit.New(rdb)

	ctx := context.Background()
	key := "sk:rl:example:" + uuid.NewString()
	defer rdb.Del(ctx, key)
	perSecond := ratelimit.Limit{Max: 2, Window: time.Second}
	for i := 0; i < 3; i++ {
		r, err := l.Allow(ctx, key, perSecond)
		if err != nil {
			panic(err)
		}
		fmt.Println(r.Allowed, r.Remaining, ratelimit.Seconds(r.RetryAfter))
	}
	// Output:
	// true 1 1
	// true 0 1
	// false 0 1
}

func BenchmarkAllow(b *testing.B) {
	rdb := servertest.Redis(b)
	l := ratelimit.New(rdb)
	ctx := context.Background()
	if err := l.Load(ctx); err != nil {
		b.Fatal(err)
	}
	a, c := "sk:rl:bench:"+uuid.NewString(), "sk:rl:bench:"+uuid.NewString()
	defer rdb.Del(ctx, a, c)
	lim := ratelimit.Limit{Max: 1 << 40, Window: time.Second}
	b.Run("one", func(b *testing.B) {
		for b.Loop() {
			if _, err := l.Allow(ctx, a, lim); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("two", func(b *testing.B) {
		reqs := []ratelimit.Request{{Key: a, Limit: lim}, {Key: c, Limit: lim}}
		out := make([]ratelimit.Result, 2)
		for b.Loop() {
			if err := l.AllowAll(ctx, reqs, out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
