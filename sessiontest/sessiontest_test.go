package sessiontest

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/servertest"
)

// persistent writes a session's three keys without a TTL, as a running
// session has them, and deletes them at cleanup whatever the test did.
func persistent(t *testing.T, rdb *redis.Client, id string) keyspace.Session {
	t.Helper()
	k := keyspace.For(id)
	for _, key := range []string{k.Meta, k.Parts, k.Index} {
		if err := rdb.HSet(context.Background(), key, "f", "v").Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { rdb.Del(context.Background(), k.Meta, k.Parts, k.Index) })
	return k
}

// TestCheck: a recorded session with any key left without a TTL fails the
// check, by id; one with TTLs, or gone, passes; sessions not recorded are
// not looked at.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: servertest.RedisAddr()})
	t.Cleanup(func() { rdb.Close() }) // after persistent's cleanups, which use it
	tr := New(servertest.RedisAddr())
	defer tr.rdb.Close()

	leaked, expiring, gone, unrecorded := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	k := persistent(t, rdb, leaked)
	rdb.PExpire(ctx, k.Meta, time.Hour) // parts and index still have none
	e := persistent(t, rdb, expiring)
	for _, key := range []string{e.Meta, e.Parts, e.Index} {
		rdb.PExpire(ctx, key, time.Hour)
	}
	persistent(t, rdb, unrecorded)
	for _, id := range []string{leaked, expiring, gone} {
		tr.Note(id)
	}
	err := tr.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), leaked) || !strings.Contains(err.Error(), "1 of the 3 sessions") {
		t.Fatalf("Check = %v; want the one leaked session %s", err, leaked)
	}
	for _, id := range []string{expiring, gone, unrecorded} {
		if strings.Contains(err.Error(), id) {
			t.Errorf("Check names %s, which left no key without a TTL or was not recorded", id)
		}
	}
	rdb.Del(ctx, k.Meta, k.Parts, k.Index)
	if err := tr.Check(ctx); err != nil {
		t.Fatalf("Check after the delete = %v", err)
	}
}

// TestCheckUnreachable: a Redis nobody can reach holds no leak.
func TestCheckUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tr := New(addr)
	defer tr.rdb.Close()
	tr.Note(uuid.NewString())
	if err := tr.Check(context.Background()); err != nil {
		t.Fatalf("Check on a closed port = %v", err)
	}
}

// TestHookDeletesAtCleanup: a session a script call names through a hooked
// client, alone or in a pipeline, is deleted when the test that made it
// ends; Track does the same for a session created elsewhere.
func TestHookDeletesAtCleanup(t *testing.T) {
	ctx := context.Background()
	tr := New(servertest.RedisAddr())
	defer tr.rdb.Close()
	raw := redis.NewClient(&redis.Options{Addr: servertest.RedisAddr()})
	defer raw.Close()
	write := redis.NewScript(`for _, k in ipairs(KEYS) do redis.call('HSET', k, 'f', 'v') end return 1`)
	single, piped, tracked := uuid.NewString(), uuid.NewString(), uuid.NewString()
	keys := func(id string) []string { k := keyspace.For(id); return []string{k.Meta, k.Parts, k.Index} }

	t.Run("inner", func(t *testing.T) {
		rdb := redis.NewClient(&redis.Options{Addr: servertest.RedisAddr()})
		rdb.AddHook(tr.Hook(t))
		t.Cleanup(func() { rdb.Close() })
		if err := write.Run(ctx, rdb, keys(single)).Err(); err != nil {
			t.Fatal(err)
		}
		pipe := rdb.Pipeline()
		write.Eval(ctx, pipe, keys(piped))
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if err := write.Run(ctx, raw, keys(tracked)).Err(); err != nil {
			t.Fatal(err)
		}
		tr.Note(tracked) // as tryReq does before doReq Tracks it
		tr.Track(t, tracked)
		// a key that is no session's meta key is not tracked
		if err := write.Run(ctx, rdb, []string{"sessiontest:" + single}).Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Del(ctx, "sessiontest:"+single) })
		if n := raw.Exists(ctx, append(append(keys(single), keys(piped)...), keys(tracked)...)...).Val(); n != 9 {
			t.Fatalf("%d of the 9 keys exist before the cleanup", n)
		}
	})
	for _, id := range []string{single, piped, tracked} {
		if _, ok := tr.ids.Load(id); !ok {
			t.Errorf("session %s is not recorded for the final check", id)
		}
		if n := raw.Exists(ctx, keys(id)...).Val(); n != 0 {
			t.Errorf("session %s: %d keys left after the test that made it ended", id, n)
		}
	}
	n := 0
	tr.ids.Range(func(any, any) bool { n++; return true })
	if n != 3 {
		t.Errorf("%d sessions tracked, want 3 (a key outside the session keyspace is none)", n)
	}
}
