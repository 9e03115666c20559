package persist

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/metricslint"
	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/session"
)

// TestWorkerRecordsEveryTransition drives every kind of transition through
// the real scripts and checks the rows, the session summary, the read side
// and that the streams end up trimmed.
func TestWorkerRecordsEveryTransition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, db, d := setup(t, 1000)

	small, large, gone := newUUID(), newUUID(), newUUID()
	must(t, d.create(ctx, small, 3))
	must(t, d.create(ctx, large, 40)) // above FULL_MAX: its states are deltas
	must(t, d.create(ctx, gone, 2))
	for _, op := range []string{"startSession", "switchCycle", "switchCycle", "pauseSession", "resumeSession",
		"switchCycle", "completeSession"} {
		must(t, d.op(ctx, op, small))
		must(t, d.op(ctx, op, large))
	}
	must(t, d.op(ctx, "deleteSession", gone))
	const total = 2*8 + 2

	w := NewWorker(rdb, db.pool(t, pgAddr), quietLog(), testConfig())
	stop := run(w)
	servertest.WaitFor(t, 10*time.Second, "all events written", func() bool {
		return db.count(t, `SELECT count(*) FROM sync_events`) == total
	})
	servertest.WaitFor(t, 5*time.Second, "streams trimmed", func() bool { return streamLen(t, rdb) == 0 })
	must(t, stop())

	type summary struct {
		status             string
		cycles, version    int64
		participants       *int32
		started, completed bool
		mode               *string
	}
	for _, tc := range []struct {
		id   string
		want summary
	}{
		{small, summary{"completed", 3, 8, ptr(int32(3)), true, true, ptr("per_participant")}},
		{large, summary{"completed", 3, 8, ptr(int32(40)), true, true, ptr("per_participant")}},
		{gone, summary{"deleted", 0, 2, ptr(int32(2)), false, false, ptr("per_participant")}},
	} {
		var got summary
		err := db.admin.QueryRow(ctx, `SELECT final_status, total_cycles, last_version, total_participants,
			started_at IS NOT NULL, completed_at IS NOT NULL, sync_mode FROM sync_sessions WHERE session_id = $1`, tc.id).
			Scan(&got.status, &got.cycles, &got.version, &got.participants, &got.started, &got.completed, &got.mode)
		if err != nil {
			t.Fatal(err)
		}
		if got.status != tc.want.status || got.cycles != tc.want.cycles || got.version != tc.want.version ||
			deref(got.participants) != deref(tc.want.participants) || got.started != tc.want.started ||
			got.completed != tc.want.completed || deref(got.mode) != deref(tc.want.mode) {
			t.Errorf("session %s summary = %+v (participants %d, mode %q), want %+v", tc.id, got,
				deref(got.participants), deref(got.mode), tc.want)
		}
	}
	if n := db.count(t, `SELECT count(*) FROM sync_sessions WHERE metadata->>'game' = 'chess'`); n != 3 {
		t.Errorf("sessions with metadata = %d, want 3", n)
	}

	// Read side: pages of 3 in version order, then the end.
	store := NewStore(db.pool(t, pgAddr))
	var versions []int64
	after := int64(0)
	for pages := 0; ; pages++ {
		body, found, err := store.Events(ctx, large, after, 3)
		if err != nil || !found {
			t.Fatalf("events: found=%v err=%v", found, err)
		}
		var page servertest.EventsPage
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		for _, e := range page.Data {
			versions = append(versions, e.Version)
			if e.StateKind != "delta" || !strings.HasSuffix(e.Timestamp, "Z") || len(e.State) == 0 {
				t.Errorf("event %+v", e)
			}
		}
		if page.Next == nil {
			break
		}
		after = *page.Next
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if len(versions) != 8 {
		t.Fatalf("versions = %v, want 1..8", versions)
	}
	for i, v := range versions {
		if v != int64(i+1) {
			t.Fatalf("versions = %v, want 1..8", versions)
		}
	}
	if _, found, err := store.Events(ctx, newUUID(), 0, 10); found || err != nil {
		t.Errorf("unknown session: found=%v err=%v", found, err)
	}
	if _, found, err := store.Events(ctx, "not-a-uuid", 0, 10); found || err != nil {
		t.Errorf("bad id: found=%v err=%v", found, err)
	}
	if err := store.Health(ctx, w); err != nil {
		t.Errorf("health: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// TestDeadLetter: an entry that cannot be decoded goes to the shard's
// dead-letter stream, is counted, and does not hold back its neighbours.
func TestDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, db, d := setup(t, 1000)
	id := d.session(ctx, t, 2)
	stream := keyspace.For(id).Stream
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"type", "session_started", "session_id", id,
		"version", "two", "timestamp", "1"}}).Err(); err != nil {
		t.Fatal(err)
	}
	must(t, d.op(ctx, "startSession", id))
	w := NewWorker(rdb, db.pool(t, pgAddr), quietLog(), testConfig())
	stop := run(w)
	defer stop()
	servertest.WaitFor(t, 10*time.Second, "good events written", func() bool {
		return db.count(t, `SELECT count(*) FROM sync_events WHERE session_id = $1`, id) == 2
	})
	servertest.WaitFor(t, 5*time.Second, "stream trimmed", func() bool { return streamLen(t, rdb) == 0 })
	dead, err := rdb.XRange(ctx, DeadLetterStream(stream), "-", "+").Result()
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters = %v, %v", dead, err)
	}
	if dead[0].Values["reason"] != "bad version" || dead[0].Values["f:version"] != "two" {
		t.Errorf("dead letter = %v", dead[0].Values)
	}
	if got := w.m.deadLetters.Get(); got != 1 {
		t.Errorf("dead letter metric = %d", got)
	}
	var out bytes.Buffer
	w.Metrics().WritePrometheus(&out)
	for _, want := range []string{"synckairos_persist_dead_letters_total 1", "synckairos_persist_events_written_total 2",
		"synckairos_persist_consumer_lag_seconds ", `synckairos_persist_batch_size_bucket{le="+Inf"}`,
		"synckairos_persist_batch_duration_seconds_count"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, out.String())
		}
	}
	problems, err := metricslint.Check(out.Bytes())
	if err != nil {
		t.Fatalf("metrics format: %v\n%s", err, out.String())
	}
	for _, p := range problems {
		t.Errorf("metrics lint: %s", p)
	}
}

// TestTrimKeepsEveryUnacked checks the trimming rule against a stream whose
// pending and undelivered entries the test sets up exactly.
func TestTrimKeepsEveryUnacked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		delivered int   // entries a (dead) consumer read
		acked     []int // which of them it acknowledged (0-based)
		wantFirst int   // index of the first entry left after trim; 10 = none
	}{
		{"nothing delivered", 0, nil, 0},
		{"delivered, none acked", 5, nil, 0},
		{"gap: 0,1,3 acked", 5, []int{0, 1, 3}, 2},
		{"all delivered acked, rest undelivered", 5, []int{0, 1, 2, 3, 4}, 5},
		{"everything acked", 10, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 10},
		{"only the last pending", 10, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}, 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := startRedis(t)
			const stream = "sk:{0}:events"
			w := NewWorker(rdb, nil, quietLog(), Config{Streams: []string{stream}})
			must(t, w.ensureGroups(ctx))
			var ids []string
			for i := range 10 {
				id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"i", i}}).Result()
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			if tc.delivered > 0 {
				if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "persist", Consumer: "ghost",
					Streams: []string{stream, ">"}, Count: int64(tc.delivered)}).Err(); err != nil {
					t.Fatal(err)
				}
			}
			for _, i := range tc.acked {
				rdb.XAck(ctx, stream, "persist", ids[i])
			}
			must(t, w.trim(ctx, stream))
			left, err := rdb.XRange(ctx, stream, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 10-tc.wantFirst || (len(left) > 0 && left[0].ID != ids[tc.wantFirst]) {
				t.Fatalf("left %d entries, want entries %d..9", len(left), tc.wantFirst)
			}
			// The invariant, whatever the case: no unacknowledged entry is gone.
			acked := map[int]bool{}
			for _, i := range tc.acked {
				acked[i] = true
			}
			kept := map[string]bool{}
			for _, m := range left {
				kept[m.ID] = true
			}
			for i, id := range ids {
				if !acked[i] && !kept[id] {
					t.Errorf("unacknowledged entry %d was trimmed", i)
				}
			}
		})
	}
}

// TestDrainOnShutdown: shutdown arriving between commit and ack still
// acknowledges the committed batch.
func TestDrainOnShutdown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, db, d := setup(t, 1000)
	id := d.session(ctx, t, 2)
	runCtx, cancel := context.WithCancel(ctx)
	cfg := testConfig()
	cfg.CrashAt = func(s Stage) bool {
		if s == AfterCommit {
			cancel() // the signal arrives now
		}
		return false
	}
	w := NewWorker(rdb, db.pool(t, pgAddr), quietLog(), cfg)
	must(t, w.Run(runCtx))
	pend, err := rdb.XPending(ctx, keyspace.For(id).Stream, "persist").Result()
	if err != nil {
		t.Fatal(err)
	}
	if pend.Count != 0 || db.count(t, `SELECT count(*) FROM sync_events`) != 1 || streamLen(t, rdb) != 0 {
		t.Fatalf("after drain: pending=%d rows=%d stream=%d", pend.Count,
			db.count(t, `SELECT count(*) FROM sync_events`), streamLen(t, rdb))
	}
}

// TestForgetDeadConsumers: a dead consumer's entries are claimed, then the
// consumer itself is removed once it owns nothing; a busy one stays.
func TestForgetDeadConsumers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := startRedis(t)
	const stream = "sk:{3}:events"
	w := NewWorker(rdb, nil, quietLog(), Config{Streams: []string{stream}, ClaimIdle: 20 * time.Millisecond, Lanes: 1})
	must(t, w.ensureGroups(ctx))
	for i := range 3 {
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"i", i}})
	}
	// "dead" read two entries and died; "idle" never owned anything.
	rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "persist", Consumer: "dead", Streams: []string{stream, ">"}, Count: 2})
	rdb.XGroupCreateConsumer(ctx, stream, "persist", "idle")
	time.Sleep(250 * time.Millisecond) // past 10 x ClaimIdle
	// "busy" just read the third entry: pending and not idle.
	rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "persist", Consumer: "busy", Streams: []string{stream, ">"}, Count: 1})

	ln := lane{streams: []string{stream}, consumer: "me"}
	got, err := w.claim(ctx, ln)
	if err != nil || len(got) != 1 || len(got[0].Messages) != 2 {
		t.Fatalf("claimed %v, %v; want the dead consumer's 2 entries", got, err)
	}
	names := map[string]int64{}
	for _, c := range rdb.XInfoConsumers(ctx, stream, "persist").Val() {
		names[c.Name] = c.Pending
	}
	if _, ok := names["dead"]; ok {
		t.Errorf("dead consumer still listed: %v", names)
	}
	if _, ok := names["idle"]; ok {
		t.Errorf("idle consumer still listed: %v", names)
	}
	if names["busy"] != 1 || names["me"] != 2 {
		t.Errorf("consumers = %v, want busy:1 me:2", names)
	}
}

// TestPoisonEventIsDeadLettered: entries that decode but that PostgreSQL
// refuses (a date it cannot read, a NUL in JSON) are isolated by splitting
// the batch and dead-lettered; everything else is written.
func TestPoisonEventIsDeadLettered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, db, d := setup(t, 1000)
	good := d.sessions(ctx, t, 4, 2)
	poison := []string{`{"created_at":"not a date"}`, `{"a":"\u0000"}`}
	for i, state := range poison {
		id := newUUID()
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keyspace.For(id).Stream, Values: []any{
			"type", "session_created", "session_id", id, "version", "1", "participant_id", "", "group_id", "",
			"time_remaining_ms", "", "time_elapsed_ms", "", "cycle_number", "", "timestamp", "1764100000000",
			"state_kind", "full", "state", state}}).Err(); err != nil {
			t.Fatal(err)
		}
		if err := d.op(ctx, "startSession", good[i]); err != nil { // good events after the poison
			t.Fatal(err)
		}
	}
	w := NewWorker(rdb, db.pool(t, pgAddr), quietLog(), testConfig())
	stop := run(w)
	defer stop()
	servertest.WaitFor(t, 10*time.Second, "good events written, streams trimmed", func() bool {
		return db.count(t, `SELECT count(*) FROM sync_events`) == 6 && streamLen(t, rdb) == 0
	})
	var dead int
	for _, s := range keyspace.Streams() {
		for _, m := range rdb.XRange(ctx, DeadLetterStream(s), "-", "+").Val() {
			dead++
			if r, _ := m.Values["reason"].(string); !strings.Contains(r, "SQLSTATE 22") {
				t.Errorf("dead letter reason %q", r)
			}
		}
	}
	if dead != 2 || w.m.deadLetters.Get() != 2 {
		t.Fatalf("dead letters = %d (metric %d), want 2", dead, w.m.deadLetters.Get())
	}
	exactlyOnce(t, db, 6)
}

// TestWorkerRecordsExpiry: an expiry applied by expireSession is recorded
// as session_expired, and the session's final status becomes expired.
func TestWorkerRecordsExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, db, d := setup(t, 1000)
	id := newUUID()
	total := int64(20)
	c := &session.Config{ID: id, SyncMode: session.ModeGlobal, TotalTimeMS: &total}
	for i := 0; i < 2; i++ {
		c.Participants = append(c.Participants, session.Participant{ID: newUUID(), Index: int64(i), TotalTimeMS: 600000})
	}
	if _, err := d.e.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	must(t, d.op(ctx, "startSession", id))
	time.Sleep(30 * time.Millisecond)
	must(t, d.op(ctx, "expireSession", id))
	w := NewWorker(rdb, db.pool(t, pgAddr), quietLog(), testConfig())
	stop := run(w)
	servertest.WaitFor(t, 10*time.Second, "all events written", func() bool {
		return db.count(t, `SELECT count(*) FROM sync_events WHERE session_id = '`+id+`'`) == 3
	})
	must(t, stop())
	var status, last string
	var completed bool
	err := db.admin.QueryRow(ctx, `SELECT s.final_status, s.completed_at IS NOT NULL, e.event_type
		FROM sync_sessions s JOIN sync_events e ON e.session_id = s.session_id AND e.version = 3
		WHERE s.session_id = $1`, id).Scan(&status, &completed, &last)
	if err != nil {
		t.Fatal(err)
	}
	if status != "expired" || !completed || last != "session_expired" {
		t.Errorf("final_status %q, completed_at set %v, last event %q", status, completed, last)
	}
}
