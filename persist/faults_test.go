package persist

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"

	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/session"
)

// exactlyOnce checks n rows, versions 1..k contiguous for every session,
// and a total_cycles that matches the rows (a counted duplicate would show).
func exactlyOnce(t *testing.T, db *testDB, rows int64) {
	t.Helper()
	if n := db.count(t, `SELECT count(*) FROM sync_events`); n != rows {
		t.Fatalf("rows = %d, want %d", n, rows)
	}
	if n := db.count(t, `SELECT count(*) FROM (SELECT session_id FROM sync_events GROUP BY session_id
		HAVING min(version) <> 1 OR max(version) <> count(*)) g`); n != 0 {
		t.Fatalf("%d sessions with gaps or duplicates in their versions", n)
	}
	if n := db.count(t, `SELECT count(*) FROM sync_sessions s WHERE total_cycles <> (SELECT count(*) FROM sync_events e
		WHERE e.session_id = s.session_id AND event_type IN ('cycle_switched', 'participant_expired'))
		OR last_version <> (SELECT max(version) FROM sync_events e WHERE e.session_id = s.session_id)`); n != 0 {
		t.Fatalf("%d sessions whose summary disagrees with their events", n)
	}
}

// TestPostgresUnreachable: while PostgreSQL is cut off, transitions still
// succeed, their events wait in the streams, the lag grows and Health
// reports degraded; once it is back every event lands exactly once.
func TestPostgresUnreachable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, db, d := setup(t, 10000)
	px := newProxy(t, pgAddr)
	pool := db.pool(t, px.Addr())
	w := NewWorker(rdb, pool, quietLog(), testConfig())
	store := NewStore(pool)
	stop := run(w)
	defer stop()

	ids := d.sessions(ctx, t, 8, 2, "startSession")
	servertest.WaitFor(t, 10*time.Second, "first events written", func() bool {
		return db.count(t, `SELECT count(*) FROM sync_events`) == 16
	})
	if err := store.Health(ctx, w); err != nil {
		t.Fatalf("healthy before the cut: %v", err)
	}

	px.Cut()
	const switches = 25
	for r := 0; r < switches; r++ {
		for _, id := range ids {
			if err := d.op(ctx, "switchCycle", id); err != nil {
				t.Fatalf("a transition failed while PostgreSQL was down: %v", err)
			}
		}
	}
	servertest.WaitFor(t, 10*time.Second, "degraded", func() bool { return store.Health(ctx, w) != nil && w.Err() != nil })
	servertest.WaitFor(t, 10*time.Second, "lag visible", func() bool { return w.Lag() > 0 })
	if n := streamLen(t, rdb); n != switches*int64(len(ids)) {
		t.Fatalf("stream holds %d entries, want all %d events waiting", n, switches*len(ids))
	}
	if n := db.count(t, `SELECT count(*) FROM sync_events`); n != 16 {
		t.Fatalf("rows while down = %d", n)
	}

	px.Restore()
	total := int64(16 + switches*len(ids))
	servertest.WaitFor(t, 20*time.Second, "every event written", func() bool {
		return db.count(t, `SELECT count(*) FROM sync_events`) >= total
	})
	servertest.WaitFor(t, 10*time.Second, "healthy again", func() bool { return store.Health(ctx, w) == nil })
	servertest.WaitFor(t, 10*time.Second, "streams trimmed", func() bool { return streamLen(t, rdb) == 0 })
	servertest.WaitFor(t, 10*time.Second, "lag back to zero", func() bool { return w.Lag() == 0 })
	exactlyOnce(t, db, total)
}

// TestWorkerKilledMidBatch: a worker dies before or after its commit; a
// new worker (another consumer name) claims the abandoned entries, and every
// event lands exactly once.
func TestWorkerKilledMidBatch(t *testing.T) {
	t.Parallel()
	for _, stage := range []Stage{BeforeCommit, AfterCommit} {
		t.Run(string(stage), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb, db, d := setup(t, 10000)
			turns := slices.Repeat([]string{"switchCycle"}, 10)
			d.sessions(ctx, t, 5, 3, append([]string{"startSession"}, turns...)...)
			const total = 5 * 12 // create, start and ten switches each

			cfg := testConfig()
			cfg.Lanes = 1 // one batch in flight, so the crash leaves every entry pending
			cfg.CrashAt = func(s Stage) bool { return s == stage }
			first := NewWorker(rdb, db.pool(t, pgAddr), quietLog(), cfg)
			if err := first.Run(ctx); !errors.Is(err, ErrCrashed) {
				t.Fatalf("first worker: %v", err)
			}
			rows := db.count(t, `SELECT count(*) FROM sync_events`)
			if (stage == AfterCommit) != (rows == total) || (stage == BeforeCommit && rows != 0) {
				t.Fatalf("rows after the crash at %s = %d", stage, rows)
			}
			pending := int64(0)
			for _, s := range keyspace.Streams() {
				p, err := rdb.XPending(ctx, s, "persist").Result()
				if err != nil {
					t.Fatal(err)
				}
				pending += p.Count
			}
			if pending != total {
				t.Fatalf("pending after the crash = %d, want %d", pending, total)
			}

			second := NewWorker(rdb, db.pool(t, pgAddr), quietLog(), testConfig())
			stop := run(second)
			servertest.WaitFor(t, 10*time.Second, "claimed and acknowledged", func() bool {
				for _, s := range keyspace.Streams() {
					if p, err := rdb.XPending(ctx, s, "persist").Result(); err != nil || p.Count != 0 {
						return false
					}
				}
				return streamLen(t, rdb) == 0
			})
			must(t, stop())
			exactlyOnce(t, db, total)
			if stage == AfterCommit && second.m.duplicates.Get() != total {
				t.Errorf("the redelivered batch should be skipped whole: duplicates = %d", second.m.duplicates.Get())
			}
		})
	}
}

// TestTenThousandTransitions: 100 sessions x 100 versions through the real
// scripts while the worker runs; exactly 10,000 rows, versions contiguous.
func TestTenThousandTransitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, db, d := setup(t, 100000)
	w := NewWorker(rdb, db.pool(t, pgAddr), quietLog(), testConfig())
	stop := run(w)
	defer stop()

	ids := make([]string, 100)
	for i := range ids {
		ids[i] = newUUID()
	}
	// One pipeline per round: each session moves one version per round.
	for round := 0; round < 100; round++ {
		cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, id := range ids {
				switch round {
				case 0:
					d.e.Batch(ctx, p).Create(d.config(id, 4))
				case 1:
					d.e.Batch(ctx, p).Start(id)
				default:
					d.e.Batch(ctx, p).Switch(id, session.SwitchArgs{})
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(cmds) != len(ids) {
			t.Fatalf("round %d ran %d commands", round, len(cmds))
		}
	}
	servertest.WaitFor(t, 60*time.Second, "10,000 rows", func() bool {
		return db.count(t, `SELECT count(*) FROM sync_events`) >= 10000
	})
	servertest.WaitFor(t, 10*time.Second, "streams trimmed", func() bool { return streamLen(t, rdb) == 0 })
	exactlyOnce(t, db, 10000)
	if n := db.count(t, `SELECT count(*) FROM sync_sessions WHERE total_cycles = 98 AND last_version = 100
		AND total_participants = 4 AND final_status = 'running'`); n != 100 {
		t.Fatalf("sessions with the expected summary = %d, want 100", n)
	}
}

// TestStreamFullRejectsNothingLost is the answer to "PostgreSQL down long
// enough to fill the stream": the scripts refuse with STREAM_FULL (the API
// answers 503) and change nothing; once the worker drains, every accepted
// event is in PostgreSQL and transitions are accepted again.
func TestStreamFullRejectsNothingLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const streamCap = 20
	rdb, db, d := setup(t, streamCap)
	// Every session in one shard, so one stream fills.
	var ids []string
	for len(ids) < 3 {
		id := newUUID()
		if keyspace.ShardOf(id) == 7 {
			ids = append(ids, id)
		}
	}
	accepted := 0
	for _, id := range ids {
		must(t, d.create(ctx, id, 2))
		must(t, d.op(ctx, "startSession", id))
		accepted += 2
	}
	var refused error
	for refused == nil {
		if refused = d.op(ctx, "switchCycle", ids[0]); refused == nil {
			accepted++
		}
		if accepted > streamCap {
			t.Fatal("the stream went past its cap")
		}
	}
	if accepted != streamCap || refused.Error() != `STREAM_FULL {"stream_max":20}` {
		t.Fatalf("accepted %d, refused with %v", accepted, refused)
	}
	version := func(id string) int64 {
		raw, err := d.e.Get(ctx, id)
		var st struct{ Version int64 }
		if err == nil {
			err = json.Unmarshal(raw, &st)
		}
		if err != nil {
			t.Fatal(err)
		}
		return st.Version
	}
	before := version(ids[1])
	for _, op := range []string{"switchCycle", "pauseSession", "completeSession", "deleteSession"} {
		if err := d.op(ctx, op, ids[1]); err == nil || err.Error() != `STREAM_FULL {"stream_max":20}` {
			t.Fatalf("%s on a full stream: %v", op, err)
		}
	}
	if err := d.create(ctx, ids[0][:35]+"0", 2); err != nil { // other shards are unaffected
		t.Fatalf("create in shard 0: %v", err)
	}
	if version(ids[1]) != before {
		t.Fatal("a refused transition changed the session")
	}

	w := NewWorker(rdb, db.pool(t, pgAddr), quietLog(), testConfig())
	stop := run(w)
	defer stop()
	servertest.WaitFor(t, 10*time.Second, "drained", func() bool {
		return db.count(t, `SELECT count(*) FROM sync_events`) == int64(accepted+1) && streamLen(t, rdb) == 0
	})
	exactlyOnce(t, db, int64(accepted+1))
	if err := d.op(ctx, "switchCycle", ids[1]); err != nil {
		t.Fatalf("after the drain: %v", err)
	}
}
