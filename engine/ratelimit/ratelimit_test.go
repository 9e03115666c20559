package ratelimit

import (
	"context"

	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/lua"
	"github.com/synckairos/synckairos/servertest"
)

func newLimiter(t testing.TB) (*Limiter, *redis.Client) {
	t.Helper()
	rdb := servertest.Redis(t)
	l := New(rdb)
	if err := l.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l, rdb
}

// key is a fresh budget key on rdb, deleted when t ends.
func key(t testing.TB, rdb *redis.Client) string {
	k := "sk:rl:test:" + uuid.NewString()
	t.Cleanup(func() { rdb.Del(context.Background(), k) })
	return k
}

func TestAllowBurstThenRefuse(t *testing.T) {
	t.Parallel()
	l, rdb := newLimiter(t)
	ctx := context.Background()
	k := key(t, rdb)
	lim := Limit{Max: 5, Window: time.Minute} // one request back every 12 s
	for i := int64(0); i < 5; i++ {
		r, err := l.Allow(ctx, k, lim)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Allowed || r.Remaining != 4-i {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", i, r, 4-i)
		}
		if r.RetryAfter != 0 {
			t.Fatalf("allowed request has RetryAfter %v", r.RetryAfter)
		}
	}
	r, err := l.Allow(ctx, k, lim)
	if err != nil {
		t.Fatal(err)
	}
	if r.Allowed || r.Remaining != 0 {
		t.Fatalf("6th request: %+v, want refused", r)
	}
	// Refused about 12 s before the next token; allow for the time the test took.
	if r.RetryAfter <= 11*time.Second || r.RetryAfter > 12*time.Second {
		t.Fatalf("RetryAfter %v, want within (11s, 12s]", r.RetryAfter)
	}
	if r.ResetAfter <= 59*time.Second || r.ResetAfter > time.Minute {
		t.Fatalf("ResetAfter %v, want about 60s", r.ResetAfter)
	}
	if Seconds(r.RetryAfter) != 12 {
		t.Fatalf("Seconds(%v) = %d, want 12", r.RetryAfter, Seconds(r.RetryAfter))
	}
	// The key expires when the budget is full again.
	ttl := rdb.PTTL(ctx, k).Val()
	if ttl <= 59*time.Second || ttl > time.Minute {
		t.Fatalf("key TTL %v, want about 60s", ttl)
	}
}

func TestRefillAfterWindow(t *testing.T) {
	t.Parallel()
	l, rdb := newLimiter(t)
	ctx := context.Background()
	k := key(t, rdb)
	lim := Limit{Max: 2, Window: 200 * time.Millisecond}
	for i := 0; i < 2; i++ {
		if r, _ := l.Allow(ctx, k, lim); !r.Allowed {
			t.Fatalf("request %d refused", i)
		}
	}
	r, _ := l.Allow(ctx, k, lim)
	if r.Allowed {
		t.Fatal("third request allowed")
	}
	time.Sleep(r.RetryAfter + 5*time.Millisecond)
	if r, _ := l.Allow(ctx, k, lim); !r.Allowed {
		t.Fatalf("after RetryAfter: %+v, want allowed", r)
	}
}

// askTwice asks l for two budgets together, a (3 a minute) and b (1 a
// minute), checks the first answer allows both and returns the budgets and
// the second answer, where b is spent.
func askTwice(t *testing.T, l *Limiter, rdb *redis.Client) ([]Request, []Result) {
	t.Helper()
	ctx := context.Background()
	a, b := key(t, rdb), key(t, rdb)
	reqs := []Request{{a, Limit{Max: 3, Window: time.Minute}}, {b, Limit{Max: 1, Window: time.Minute}}}
	out := make([]Result, 2)
	for i := range 2 {
		if err := l.AllowAll(ctx, reqs, out); err != nil {
			t.Fatal(err)
		}
		if i == 0 && (!out[0].Allowed || out[0].Remaining != 2 || !out[1].Allowed || out[1].Remaining != 0) {
			t.Fatalf("first: %+v", out)
		}
	}
	return reqs, out
}

// TestAllowAllTwo: two budgets in one rateLimitBoth-2 call, all or nothing.
func TestAllowAllTwo(t *testing.T) {
	t.Parallel()
	l, rdb := newLimiter(t)
	ctx := context.Background()
	reqs, out := askTwice(t, l, rdb)
	if out[0].Allowed || out[1].Allowed || out[1].RetryAfter <= 59*time.Second || out[0].RetryAfter != 0 {
		t.Fatalf("second: %+v, want refused by b", out)
	}
	// The refusal charged neither: a still has 2 left.
	if out[0].Remaining != 2 {
		t.Fatalf("refused request charged a: %+v", out[0])
	}
	if r, _ := l.Allow(ctx, reqs[0].Key, reqs[0].Limit); !r.Allowed || r.Remaining != 1 {
		t.Fatalf("a after the refusal: %+v, want 1 remaining", r)
	}
}

// TestAllowAllPipelined: the Cluster path, rateLimit-1 per budget in a pipeline.
func TestAllowAllPipelined(t *testing.T) {
	t.Parallel()
	l, rdb := newLimiter(t)
	l.cluster = true
	ctx := context.Background()
	reqs, out := askTwice(t, l, rdb)
	a := reqs[0].Key
	if !out[0].Allowed || out[0].Remaining != 1 || out[1].Allowed {
		t.Fatalf("second: %+v, want a allowed, b refused", out)
	}
	// A script Redis has not seen (NOSCRIPT) is loaded and the pipeline retried.
	fresh := New(rdb)
	src, _ := lua.Source("rateLimit-1.lua")
	fresh.script = redis.NewScript(src + "\n-- variant " + uuid.NewString() + "\n")
	fresh.cluster = true
	c := key(t, rdb)
	if err := fresh.AllowAll(ctx, []Request{{c, reqs[0].Limit}, {a, reqs[0].Limit}}, out); err != nil {
		t.Fatalf("NOSCRIPT fallback: %v", err)
	}
	if !out[0].Allowed || out[0].Remaining != 2 {
		t.Fatalf("after fallback: %+v", out)
	}
}
