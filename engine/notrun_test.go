package engine

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/session"
)

// TestScriptErrClasses: each kind of failure maps to the status it proves.
// The error replies come from a real Redis (error_reply carries the exact
// text a Cluster node answers), so they are the redis.Error go-redis builds.
func TestScriptErrClasses(t *testing.T) {
	t.Parallel()
	rdb := newTestClient(t)
	reply := func(msg string) error {
		return rdb.Eval(context.Background(), "return redis.error_reply(ARGV[1])", nil, msg).Err()
	}
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, tc := range []struct {
		name             string
		err              error
		mutating, reader *session.Error // nil: passed through unchanged
	}{
		{"MOVED", reply("MOVED 3999 127.0.0.1:7001"), session.ErrUnavailable, session.ErrUnavailable},
		{"ASK", reply("ASK 3999 127.0.0.1:7001"), session.ErrUnavailable, session.ErrUnavailable},
		{"TRYAGAIN", reply("TRYAGAIN Multiple keys request during rehashing of slot"), session.ErrUnavailable, session.ErrUnavailable},
		{"CLUSTERDOWN", reply("CLUSTERDOWN The cluster is down"), session.ErrUnavailable, session.ErrUnavailable},
		{"LOADING", reply("LOADING Redis is loading the dataset in memory"), session.ErrUnavailable, session.ErrUnavailable},
		{"READONLY", reply("READONLY You can't write against a read only replica."), session.ErrUnavailable, session.ErrUnavailable},
		{"MASTERDOWN", reply("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), session.ErrUnavailable, session.ErrUnavailable},
		{"script code", reply("CONFLICT version 3"), session.ErrConflict, session.ErrConflict},
		{"other reply", reply("OOPS x"), nil, nil},
		{"no connection", dial, session.ErrUnavailable, session.ErrUnavailable},
		{"pool timeout", redis.ErrPoolTimeout, session.ErrUnavailable, session.ErrUnavailable},
		{"no reply", io.EOF, session.ErrOutcomeUnknown, session.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				mutating bool
				want     *session.Error
			}{{true, tc.mutating}, {false, tc.reader}} {
				got := scriptErr(tc.err, c.mutating)
				if c.want == nil {
					if got != tc.err {
						t.Errorf("mutating=%v: %v, want it passed through", c.mutating, got)
					}
					continue
				}
				if !errors.Is(got, c.want) {
					t.Errorf("mutating=%v: %v, want %s", c.mutating, got, c.want.Code)
				}
				if c.want == session.ErrUnavailable && !errors.Is(got, tc.err) {
					t.Errorf("mutating=%v: %v does not wrap the cause", c.mutating, got)
				}
			}
		})
	}
}

// TestClusterMovedIsUnavailable sends transitions to a Cluster master that
// does not own the session's slot, as a client with a stale slot map
// would: the node answers MOVED without running the script, so the caller
// gets UNAVAILABLE (retry is safe), and nothing was written.
func TestClusterMovedIsUnavailable(t *testing.T) {
	c := servertest.SharedCluster(t)
	ctx := context.Background()
	cc := c.Client(t)
	id := uuid.NewString()
	owner, err := cc.MasterForKey(ctx, keyspace.For(id).Meta)
	if err != nil {
		t.Fatal(err)
	}
	var wrong string
	for _, m := range c.Masters {
		if m != owner.Options().Addr {
			wrong = m
			break
		}
	}
	e := New(c.Node(t, wrong), Options{EventCap: testEventCap})
	if err := e.Load(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := &session.Config{ID: id, SyncMode: session.ModePerParticipant,
		Participants: []session.Participant{{ID: uuid.NewString(), TotalTimeMS: 1000}}}
	for _, call := range []struct {
		name string
		run  func() error
	}{
		{"create", func() error { _, err := e.Create(ctx, cfg); return err }},
		{"start", func() error { _, err := e.Start(ctx, id, 0); return err }},
		{"switch", func() error { _, err := e.Switch(ctx, id, session.SwitchArgs{}); return err }},
		{"get", func() error { _, err := e.Get(ctx, id); return err }},
		{"delete", func() error { _, err := e.Delete(ctx, id, 0); return err }},
	} {
		err := call.run()
		var re redis.Error
		if !errors.Is(err, session.ErrUnavailable) || !errors.As(err, &re) {
			t.Errorf("%s on %s (slot owner %s): %v, want UNAVAILABLE wrapping MOVED", call.name, wrong, owner.Options().Addr, err)
		}
	}
	if n, err := cc.Exists(ctx, keyspace.For(id).Meta).Result(); err != nil || n != 0 {
		t.Errorf("the session exists on the Cluster (%d, %v): a redirected script ran", n, err)
	}
}
