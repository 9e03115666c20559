// Package sessiontest keeps tests from leaving sessions behind in the Redis
// they share with other test runs. A running or paused session has no TTL,
// so one a test forgets stays there for good.
//
// Each test package holds one Tracker. Tracker.Hook on a test's Redis
// client records every session a script call names and deletes its keys
// when the test ends; Tracker.Track does the same for a session created
// some other way (over HTTP, say). Tracker.Run, in the package's TestMain,
// then fails the run if any session it recorded still has a key without a
// TTL: the leak of a test that bypassed the helpers. It looks at those
// sessions only, never the whole Redis, which other runs share.
package sessiontest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
)

// Tracker records the sessions of one test binary on one Redis.
type Tracker struct {
	addr    string
	rdb     *redis.Client
	ids     sync.Map // session id -> struct{}: what Check looks at
	deleted sync.Map // session id -> struct{}: a cleanup deletes it
}

// New tracks sessions on the Redis at addr (host:port).
func New(addr string) *Tracker {
	return &Tracker{addr: addr, rdb: redis.NewClient(&redis.Options{Addr: addr})}
}

// Note records id for the final check only.
func (tr *Tracker) Note(id string) { tr.ids.LoadOrStore(id, struct{}{}) }

// Track records id and deletes its keys when t ends. A session tracked
// again (by another call, or a later test) is deleted once, by the first.
func (tr *Tracker) Track(t testing.TB, id string) {
	tr.Note(id)
	if _, seen := tr.deleted.LoadOrStore(id, struct{}{}); seen {
		return
	}
	k := keyspace.For(id)
	t.Cleanup(func() { tr.rdb.Del(context.Background(), k.Meta, k.Parts, k.Index) })
}

// Hook returns a go-redis hook that Tracks, for t, the session of every
// script call whose first key is a session's meta key (every session
// script's KEYS[1]).
func (tr *Tracker) Hook(t testing.TB) redis.Hook { return hook{tr, t} }

type hook struct {
	tr *Tracker
	t  testing.TB
}

func (h hook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.see(cmd)
		return next(ctx, cmd)
	}
}

func (h hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.see(c)
		}
		return next(ctx, cmds)
	}
}

// see tracks the session an EVAL or EVALSHA names (args: command, script
// or sha, numkeys, KEYS[1], ...).
func (h hook) see(cmd redis.Cmder) {
	args := cmd.Args()
	if len(args) < 4 || !strings.HasPrefix(strings.ToLower(cmd.Name()), "eval") {
		return
	}
	if key, ok := args[3].(string); ok {
		if id, ok := sessionOf(key); ok {
			h.tr.Track(h.t, id)
		}
	}
}

// sessionOf returns the session whose meta key is key.
func sessionOf(key string) (string, bool) {
	const mid = ":session:"
	i := strings.Index(key, mid)
	if i < 0 {
		return "", false
	}
	id := key[i+len(mid):]
	return id, id != "" && keyspace.For(id).Meta == key
}

// Run runs the tests, then fails the run (a non-zero exit code) when a
// session they recorded was left with a key that has no TTL, or when the
// tests set the deployment's audit flag (keyspace.Audit) on the shared
// Redis: it is sticky, and would make every later instance there without
// DATABASE_URL record into streams nobody drains. Call it from TestMain:
// os.Exit(tracker.Run(m)).
func (tr *Tracker) Run(m *testing.M) int {
	ctx := context.Background()
	had := tr.rdb.Exists(ctx, keyspace.Audit).Val() == 1
	code := m.Run()
	if err := tr.Check(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		code = max(code, 1)
	}
	if !had && tr.rdb.Exists(ctx, keyspace.Audit).Val() == 1 {
		fmt.Fprintln(os.Stderr, "FAIL: a test set the audit flag "+keyspace.Audit+" on "+tr.addr+
			" (an instance with DATABASE_URL on the shared Redis): give it a Redis of its own, "+
			"and delete the key if no persisting instance uses that Redis")
		code = max(code, 1)
	}
	_ = tr.rdb.Close()
	return code
}

// Check returns an error naming every recorded session that still has its
// meta, parts or index key without a TTL (PTTL -1). A Redis nobody can
// reach holds no leak: then it returns nil.
func (tr *Tracker) Check(ctx context.Context) error {
	var ids []string
	tr.ids.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var leaked []string
	const batch = 500
	for lo := 0; lo < len(ids); lo += batch {
		part := ids[lo:min(lo+batch, len(ids))]
		pipe := tr.rdb.Pipeline()
		cmds := make([]*redis.DurationCmd, 0, 3*len(part))
		for _, id := range part {
			k := keyspace.For(id)
			for _, key := range []string{k.Meta, k.Parts, k.Index} {
				cmds = append(cmds, pipe.PTTL(ctx, key))
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			var ne *net.OpError
			if lo == 0 && errors.As(err, &ne) && ne.Op == "dial" {
				return nil // nothing reaches that Redis: nothing leaked there
			}
			return fmt.Errorf("sessiontest: checking %d sessions on %s: %w", len(ids), tr.addr, err)
		}
		for i, c := range cmds {
			if c.Val() == -1 { // -1 ns: the key exists and has no TTL
				leaked = append(leaked, part[i/3])
			}
		}
	}
	if len(leaked) == 0 {
		return nil
	}
	slices.Sort(leaked)
	leaked = slices.Compact(leaked)
	return fmt.Errorf("sessiontest: %d of the %d sessions these tests created are left on %s with a key "+
		"that has no TTL (delete them at cleanup: Tracker.Track or Tracker.Hook): %s",
		len(leaked), len(ids), tr.addr, strings.Join(leaked, " "))
}
