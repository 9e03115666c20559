package persist

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/servertest"
)

// row is one recorded event as the tests compare them: where it is, which
// stream entry it came from, and its life.
type row struct {
	table, entry, typ string
	life, version     int64
}

func (r row) String() string {
	return fmt.Sprintf("%s %s life %d v%d %s", r.table, r.entry, r.life, r.version, r.typ)
}

// entriesOf returns the stream entries of session id after `after` (an
// entry id, "-" for all), as the rows they should become in table.
func entriesOf(t *testing.T, rdb *redis.Client, id, after, table string) []row {
	t.Helper()
	start := after
	if after != "-" {
		start = "(" + after
	}
	msgs, err := rdb.XRange(context.Background(), keyspace.For(id).Stream, start, "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []row
	for _, m := range msgs {
		if m.Values["session_id"] != id {
			continue
		}
		var err error
		if m.Values, err = Fields(m.Values); err != nil {
			t.Fatal(err)
		}
		v, _ := strconv.ParseInt(m.Values["version"].(string), 10, 64)
		life, _ := m.Values["life"].(string) // absent: an event from before lives, life 0
		l, _ := strconv.ParseInt(life, 10, 64)
		out = append(out, row{table, m.ID, m.Values["type"].(string), l, v})
	}
	return out
}

func lastEntry(rows []row) string { return rows[len(rows)-1].entry }

// recorded lists every row of session id in both tables, in stream order.
func recorded(t *testing.T, db *testDB, id string) []row {
	t.Helper()
	rs, err := db.admin.Query(context.Background(), `
		SELECT 'current', stream_id, event_type, life, version FROM sync_events WHERE session_id = $1
		UNION ALL
		SELECT 'superseded', stream_id, event_type, life, version FROM sync_events_superseded WHERE session_id = $1`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		must(t, rs.Scan(&r.table, &r.entry, &r.typ, &r.life, &r.version))
		out = append(out, r)
	}
	must(t, rs.Err())
	// Stream ids order as (ms, seq) pairs, not as text.
	sort.SliceStable(out, func(i, j int) bool {
		a, _ := parsePos(out[i].entry)
		b, _ := parsePos(out[j].entry)
		return a.less(b)
	})
	return out
}

// createdAt is the session's created_at (ms) as Redis holds it now.
func createdAt(t *testing.T, d *driver, id string) int64 {
	t.Helper()
	raw, err := d.e.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		CreatedAt time.Time `json:"created_at"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	return st.CreatedAt.UnixMilli()
}

// checkCurrent asserts what readers see: sync_sessions describes want (the
// current life, versions 1..n) and the events endpoint returns it.
func checkCurrent(t *testing.T, db *testDB, id string, want []row, status string, cycles, created int64) {
	t.Helper()
	ctx := context.Background()
	var gotTypes, wantTypes []string
	for i, r := range want {
		if r.version != int64(i+1) {
			t.Fatalf("test bug: current life versions %v", want)
		}
		wantTypes = append(wantTypes, r.typ)
	}
	var lastVersion, totalCycles, createdMS int64
	var finalStatus string
	err := db.admin.QueryRow(ctx, `SELECT final_status, last_version, total_cycles,
		(extract(epoch FROM created_at) * 1000)::int8 FROM sync_sessions WHERE session_id = $1`, id).
		Scan(&finalStatus, &lastVersion, &totalCycles, &createdMS)
	if err != nil {
		t.Fatal(err)
	}
	if finalStatus != status || lastVersion != int64(len(want)) || totalCycles != cycles || createdMS != created {
		t.Errorf("sync_sessions: status %q, last_version %d, total_cycles %d, created_at %d; want %q, %d, %d, %d",
			finalStatus, lastVersion, totalCycles, createdMS, status, len(want), cycles, created)
	}
	body, found, err := NewStore(db.admin).Events(ctx, id, 0, 100)
	if err != nil || !found {
		t.Fatalf("events: found=%v err=%v", found, err)
	}
	var page struct {
		Data []struct {
			Version   int64  `json:"version"`
			EventType string `json:"event_type"`
		} `json:"data"`
	}
	must(t, json.Unmarshal(body, &page))
	for i, e := range page.Data {
		if e.Version != int64(i+1) {
			t.Errorf("events endpoint versions not 1..n: %s", body)
		}
		gotTypes = append(gotTypes, e.EventType)
	}
	if strings.Join(gotTypes, ",") != strings.Join(wantTypes, ",") {
		t.Errorf("events endpoint returns %v, want the current life %v", gotTypes, wantTypes)
	}
}

// checkRows asserts that every stream entry landed exactly once, in the
// table (and life) it belongs to.
func checkRows(t *testing.T, db *testDB, id string, want []row) {
	t.Helper()
	got := recorded(t, db, id)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("recorded rows:\n  %v\nwant:\n  %v", got, want)
	}
}

// TestRecreatedSession: a session id created again after a delete, or
// after its keys expired, starts a new life at version 1, with a higher
// life number. Every life's events land exactly once: the current one in
// sync_events, the earlier ones in sync_events_superseded under their life.
func TestRecreatedSession(t *testing.T) {
	t.Parallel()
	// Each life: the transitions after create, and how it ends
	// ("deleteSession", "expire": its keys vanish as a TTL would make
	// them, or "" for the current one).
	type life struct {
		ops []string
		end string
	}
	tests := []struct {
		name        string
		lives       []life
		workerFirst bool // the worker runs throughout, so each life lands before the next begins
		status      string
		cycles      int64
	}{
		{"deleted, both in one batch", []life{
			{[]string{"startSession", "switchCycle", "pauseSession"}, "deleteSession"},
			{[]string{"startSession", "switchCycle", "switchCycle"}, ""},
		}, false, "running", 2},
		{"deleted, the old one written first", []life{
			{[]string{"startSession", "switchCycle", "pauseSession"}, "deleteSession"},
			{[]string{"startSession", "switchCycle", "switchCycle"}, ""},
		}, true, "running", 2},
		{"keys expired, the old one written first", []life{
			{[]string{"startSession", "switchCycle", "completeSession"}, "expire"},
			{[]string{"startSession"}, ""},
		}, true, "running", 0},
		{"keys expired, both in one batch", []life{
			{nil, "expire"},
			{[]string{"startSession", "switchCycle", "switchCycle", "completeSession"}, ""},
		}, false, "completed", 2},
		{"three lives, one batch", []life{
			{[]string{"startSession", "switchCycle"}, "deleteSession"},
			{[]string{"startSession", "switchCycle", "switchCycle", "switchCycle"}, "deleteSession"},
			{nil, ""},
		}, false, "pending", 0},
		{"three lives, written one by one, the last deleted", []life{
			{[]string{"startSession"}, "deleteSession"},
			{[]string{"startSession", "switchCycle"}, "expire"},
			{[]string{"startSession", "completeSession"}, "deleteSession"},
		}, true, "deleted", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb, db, d := setup(t, 1000)
			id := newUUID()
			w := NewWorker(rdb, db.pool(t, pgAddr), quietLog(), testConfig())
			var stop func() error
			if tc.workerFirst {
				stop = run(w)
			}
			var want, current []row
			var created int64
			after := "-"
			for i, l := range tc.lives {
				if err := d.create(ctx, id, 2); err != nil {
					t.Fatalf("life %d: create: %v", i, err)
				}
				created = createdAt(t, d, id)
				for _, op := range l.ops {
					if err := d.op(ctx, op, id); err != nil {
						t.Fatalf("life %d: %s: %v", i, op, err)
					}
				}
				switch l.end {
				case "deleteSession":
					must(t, d.op(ctx, "deleteSession", id))
				case "expire":
					k := keyspace.For(id)
					must(t, rdb.Del(ctx, k.Meta, k.Parts, k.Index).Err())
				}
				table := "superseded"
				if i == len(tc.lives)-1 {
					table = "current"
				}
				rows := entriesOf(t, rdb, id, after, table)
				for _, r := range rows {
					if r.life != rows[0].life || len(want) > 0 && r.life <= want[len(want)-1].life {
						t.Fatalf("life %d: entries %v after %v: want one life, above the one before", i, rows, want)
					}
				}
				n := 1 + len(l.ops)
				if l.end == "deleteSession" {
					n++
				}
				if len(rows) != n {
					t.Fatalf("life %d: %d stream entries, want %d", i, len(rows), n)
				}
				after = lastEntry(rows)
				want = append(want, rows...)
				if table == "current" {
					current = rows
				}
				if tc.workerFirst {
					servertest.WaitFor(t, 10*time.Second, fmt.Sprintf("life %d written", i), func() bool {
						return db.count(t, `SELECT count(*) FROM sync_events WHERE session_id = $1`, id) == int64(n)
					})
				}
			}
			if !tc.workerFirst {
				stop = run(w)
			}
			servertest.WaitFor(t, 10*time.Second, "streams drained", func() bool { return streamLen(t, rdb) == 0 })
			must(t, stop())
			checkCurrent(t, db, id, current, tc.status, tc.cycles, created)
			checkRows(t, db, id, want)
			if got := int64(w.m.written.Get()); got != int64(len(want)) {
				t.Errorf("written metric = %d, want %d", got, len(want))
			}
		})
	}
}

// pendingCount is how many entries of the session's stream the persist
// group delivered and nobody acknowledged.
func pendingCount(t *testing.T, rdb *redis.Client, id string) int64 {
	t.Helper()
	p, err := rdb.XPending(context.Background(), keyspace.For(id).Stream, "persist").Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Count
}

// TestOldLifeRedelivered: entries of the old life that a dead worker left
// pending are claimed only after the new life took over sync_events. They
// must land in sync_events_superseded, once, and nothing of the new life
// may move.
func TestOldLifeRedelivered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// stage where the first worker dies with every old entry pending
		// ("after_commit": written, not acknowledged; "before_commit": not
		// written); "delete only": the old life was written and acknowledged
		// but its delete, read by a consumer that died, stays pending.
		stage           string
		pending         int64 // old entries left pending
		written, copies int64 // the third worker's metrics
	}{
		{"written, not acknowledged", "after_commit", 5, 0, 5},
		{"never written", "before_commit", 5, 5, 0},
		{"only the delete pending", "delete only", 1, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb, db, d := setup(t, 1000)
			id := d.session(ctx, t, 2, "startSession", "switchCycle", "pauseSession")
			pool := db.pool(t, pgAddr)
			cfg := testConfig()
			cfg.Lanes = 1
			old := entriesOf(t, rdb, id, "-", "superseded") // before a worker trims them
			if tc.stage == "delete only" {
				w0 := NewWorker(rdb, pool, quietLog(), cfg)
				stop := run(w0)
				servertest.WaitFor(t, 10*time.Second, "old life written", func() bool {
					return db.count(t, `SELECT count(*) FROM sync_events`) == 4 && pendingCount(t, rdb, id) == 0
				})
				must(t, stop())
				must(t, d.op(ctx, "deleteSession", id))
				old = append(old, entriesOf(t, rdb, id, lastEntry(old), "superseded")...)
				must(t, rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "persist", Consumer: "ghost",
					Streams: []string{keyspace.For(id).Stream, ">"}, Count: 10}).Err())
			} else {
				must(t, d.op(ctx, "deleteSession", id))
				old = entriesOf(t, rdb, id, "-", "superseded")
				cfg.CrashAt = func(s Stage) bool { return s == Stage(tc.stage) }
				w1 := NewWorker(rdb, pool, quietLog(), cfg)
				if err := w1.Run(ctx); !errors.Is(err, ErrCrashed) {
					t.Fatalf("first worker: %v", err)
				}
			}
			if len(old) != 5 {
				t.Fatalf("old life: %d entries", len(old))
			}
			if n := pendingCount(t, rdb, id); n != tc.pending {
				t.Fatalf("pending after the crash = %d, want %d", n, tc.pending)
			}

			must(t, d.create(ctx, id, 2))
			newCreated := createdAt(t, d, id)
			for _, op := range []string{"startSession", "switchCycle"} {
				must(t, d.op(ctx, op, id))
			}
			cur := entriesOf(t, rdb, id, lastEntry(old), "current")

			// The second worker never claims: it writes the new life only.
			cfg2 := testConfig()
			cfg2.ClaimIdle = time.Hour
			w2 := NewWorker(rdb, pool, quietLog(), cfg2)
			stop := run(w2)
			servertest.WaitFor(t, 10*time.Second, "new life acknowledged", func() bool {
				g, err := rdb.XInfoGroups(ctx, keyspace.For(id).Stream).Result()
				return err == nil && len(g) == 1 && g[0].LastDeliveredID == lastEntry(cur) &&
					pendingCount(t, rdb, id) == tc.pending
			})
			must(t, stop())

			// The third claims the old entries.
			w3 := NewWorker(rdb, pool, quietLog(), testConfig())
			stop = run(w3)
			servertest.WaitFor(t, 10*time.Second, "old entries claimed and acknowledged", func() bool {
				return pendingCount(t, rdb, id) == 0
			})
			must(t, stop())

			checkCurrent(t, db, id, cur, "running", 1, newCreated)
			checkRows(t, db, id, append(old, cur...))
			if w, c := int64(w3.m.written.Get()), int64(w3.m.duplicates.Get()); w != tc.written || c != tc.copies {
				t.Errorf("redelivery: written %d, duplicates %d; want %d, %d", w, c, tc.written, tc.copies)
			}
		})
	}
}

// TestClassify covers placements the integration tests cannot stage with
// the real scripts: a newer life whose events come before its create, a
// late event of an older life, events from before lives.
func TestClassify(t *testing.T) {
	t.Parallel()
	const s1, s2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
	ev := func(sid string, life, v int64) event { return event{sessionID: sid, life: life, version: v} }
	tests := []struct {
		name     string
		recorded map[string]int64 // the life of each session's rows in sync_events
		evs      []event
		want     string // per event: cur or old
		switched []string
		lives    int
	}{
		{"new session", nil, []event{ev(s1, 5, 1), ev(s1, 5, 2)}, "cur cur", nil, 0},
		{"redelivered", map[string]int64{s1: 5}, []event{ev(s1, 5, 2), ev(s1, 5, 3)}, "cur cur", nil, 0},
		{"two lives in one batch", nil, []event{ev(s1, 5, 1), ev(s1, 5, 2), ev(s1, 5, 3), ev(s1, 9, 1), ev(s1, 9, 2)},
			"old old old cur cur", nil, 1},
		{"a newer life supersedes the recorded one", map[string]int64{s1: 5}, []event{ev(s1, 9, 1)},
			"cur", []string{s1}, 1},
		{"a newer life's delete before its other events (once ambiguous)", map[string]int64{s1: 5},
			[]event{ev(s1, 9, 4)}, "cur", []string{s1}, 1},
		{"then its create, late", map[string]int64{s1: 9}, []event{ev(s1, 9, 1), ev(s1, 9, 2)}, "cur cur", nil, 0},
		{"a late event of an older life", map[string]int64{s1: 9}, []event{ev(s1, 5, 2), ev(s1, 5, 3)},
			"old old", nil, 0},
		{"an older life after the newer one in the batch", nil, []event{ev(s1, 9, 1), ev(s1, 5, 3)}, "cur old", nil, 0},
		{"rows from before lives (life 0), then a stamped life", map[string]int64{s1: 0},
			[]event{ev(s1, 0, 6), ev(s1, 3, 1)}, "old cur", []string{s1}, 1},
		{"three lives in one batch", nil, []event{ev(s1, 1, 1), ev(s1, 1, 2), ev(s1, 2, 1), ev(s1, 2, 2), ev(s1, 3, 1)},
			"old old old old cur", nil, 2},
		{"sessions are independent", map[string]int64{s1: 1, s2: 4},
			[]event{ev(s2, 4, 2), ev(s1, 2, 1), ev(s2, 4, 3)}, "cur cur cur", []string{s1}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := classify(tc.evs, tc.recorded)
			var got []string
			for _, sup := range p.superseded {
				got = append(got, map[bool]string{false: "cur", true: "old"}[sup])
			}
			if strings.Join(got, " ") != tc.want || fmt.Sprint(p.switched) != fmt.Sprint(tc.switched) || p.lives != tc.lives {
				t.Errorf("got %v, switched %v, lives %d; want %s, %v, %d", got, p.switched, p.lives,
					tc.want, tc.switched, tc.lives)
			}
		})
	}
}

// TestDeleteBeforeItsLife stages what stream order and created_at could
// not settle before lives: a re-created session's delete is written while
// every other event of its life waits in a dead worker's pending list. Its
// life says it is the newer life's, so it supersedes the old life's rows,
// and the pending events, claimed later, join it. Events from before lives
// (life 0) keep the older rule: a stream entry under a version already
// recorded is kept in sync_events_superseded, nothing is lost.
func TestDeleteBeforeItsLife(t *testing.T) {
	t.Parallel()
	xadd := func(t *testing.T, rdb *redis.Client, id string, life string, v int, typ string) {
		t.Helper()
		state, kind := "", ""
		if typ != "session_deleted" {
			state = `{"session_id":"` + id + `","sync_mode":"per_participant","status":"pending","version":` +
				strconv.Itoa(v) + `,"created_at":"2026-01-01T00:00:00.000Z","participants":[]}`
			kind = "full"
		}
		vals := []any{"type", typ, "session_id", id, "version", strconv.Itoa(v), "participant_id", "", "group_id", "",
			"time_remaining_ms", "", "time_elapsed_ms", "", "cycle_number", "", "timestamp", "1767225600000",
			"state_kind", kind, "state", state}
		if life != "" {
			vals = append(vals, "life", life)
		}
		must(t, rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: keyspace.For(id).Stream, Values: vals}).Err())
	}
	// written by hand: lives a and b, "" for events from before lives
	byHand := func(a, b string) [3]func(t *testing.T, rdb *redis.Client, d *driver, id string) {
		return [3]func(t *testing.T, rdb *redis.Client, d *driver, id string){
			func(t *testing.T, rdb *redis.Client, _ *driver, id string) {
				xadd(t, rdb, id, a, 1, "session_created")
				xadd(t, rdb, id, a, 2, "session_started")
			},
			func(t *testing.T, rdb *redis.Client, _ *driver, id string) {
				xadd(t, rdb, id, b, 1, "session_created")
				xadd(t, rdb, id, b, 2, "session_started")
				xadd(t, rdb, id, b, 3, "cycle_switched")
			},
			func(t *testing.T, rdb *redis.Client, _ *driver, id string) { xadd(t, rdb, id, b, 4, "session_deleted") },
		}
	}
	tests := []struct {
		name string
		// old life (written), the new life's first events (left pending by
		// a dead consumer), its delete (written next)
		phases [3]func(t *testing.T, rdb *redis.Client, d *driver, id string)
		lives  bool // the events carry lives (else: from before lives)
	}{
		{"keys expired, then re-created", [3]func(t *testing.T, rdb *redis.Client, d *driver, id string){
			func(t *testing.T, _ *redis.Client, d *driver, id string) {
				must(t, d.create(context.Background(), id, 2))
				must(t, d.op(context.Background(), "startSession", id))
			},
			func(t *testing.T, rdb *redis.Client, d *driver, id string) {
				k := keyspace.For(id)
				ctx := context.Background()
				must(t, rdb.Del(ctx, k.Meta, k.Parts, k.Index).Err())
				must(t, d.create(ctx, id, 2))
				must(t, d.op(ctx, "startSession", id))
				must(t, d.op(ctx, "switchCycle", id))
			},
			func(t *testing.T, _ *redis.Client, d *driver, id string) {
				must(t, d.op(context.Background(), "deleteSession", id))
			},
		}, true},
		{"the same created_at, told apart by life", byHand("7", "8"), true},
		{"from before lives: the entries tell", byHand("", ""), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb, db, d := setup(t, 1000)
			id := newUUID()
			pool := db.pool(t, pgAddr)
			cfg := testConfig()
			cfg.ClaimIdle = time.Hour // claims nothing

			tc.phases[0](t, rdb, d, id)
			oldLife := entriesOf(t, rdb, id, "-", "current")
			stop := run(NewWorker(rdb, pool, quietLog(), cfg))
			servertest.WaitFor(t, 10*time.Second, "old life written", func() bool {
				return db.count(t, `SELECT count(*) FROM sync_events`) == int64(len(oldLife)) && pendingCount(t, rdb, id) == 0
			})
			must(t, stop())

			tc.phases[1](t, rdb, d, id)
			pending := entriesOf(t, rdb, id, lastEntry(oldLife), "current")
			if tc.lives {
				for i := range oldLife {
					oldLife[i].table = "superseded"
				}
			} else {
				for i, r := range pending {
					if r.version <= int64(len(oldLife)) {
						pending[i].table = "superseded" // under a version recorded, by another entry
					}
				}
			}
			must(t, rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "persist", Consumer: "ghost",
				Streams: []string{keyspace.For(id).Stream, ">"}, Count: 100}).Err())
			tc.phases[2](t, rdb, d, id)
			del := entriesOf(t, rdb, id, lastEntry(pending), "current")
			stop = run(NewWorker(rdb, pool, quietLog(), cfg))
			servertest.WaitFor(t, 10*time.Second, "the delete written", func() bool {
				return db.count(t, `SELECT count(*) FROM sync_events WHERE event_type = 'session_deleted'`) == 1
			})
			must(t, stop())

			w := NewWorker(rdb, pool, quietLog(), testConfig())
			stop = run(w)
			servertest.WaitFor(t, 10*time.Second, "pending entries claimed", func() bool { return pendingCount(t, rdb, id) == 0 })
			must(t, stop())
			want := append(append(append([]row{}, oldLife...), pending...), del...)
			checkRows(t, db, id, want)
			if got := int64(w.m.written.Get()); got != int64(len(pending)) || w.m.duplicates.Get() != 0 {
				t.Errorf("claimed: written %d, duplicates %d; want %d, 0", got, w.m.duplicates.Get(), len(pending))
			}
		})
	}
}

// TestTwoWorkersRecreatedSessions: two workers share the streams in small
// batches, so a session's lives reach PostgreSQL split between concurrent
// transactions in either order. Every entry lands exactly once, with no
// failed write (the session locks are taken in one order).
func TestTwoWorkersRecreatedSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, db, d := setup(t, 100000)
	cfg := testConfig()
	cfg.Count = 3
	a, b := NewWorker(rdb, db.pool(t, pgAddr), quietLog(), cfg), NewWorker(rdb, db.pool(t, pgAddr), quietLog(), cfg)
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = newUUID()
	}
	for life := 0; life < 4; life++ {
		for _, op := range []string{"createSession", "startSession", "switchCycle", "deleteSession"} {
			if life == 3 && op == "deleteSession" {
				continue
			}
			for _, id := range ids {
				var err error
				if op == "createSession" {
					err = d.create(ctx, id, 2)
				} else {
					err = d.op(ctx, op, id)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	const total = 20 * (4*4 - 1)
	stopA, stopB := run(a), run(b)
	servertest.WaitFor(t, 30*time.Second, "every entry recorded", func() bool {
		return db.count(t, `SELECT (SELECT count(*) FROM sync_events) + (SELECT count(*) FROM sync_events_superseded)`) >= total &&
			streamLen(t, rdb) == 0
	})
	must(t, errors.Join(stopA(), stopB()))
	if n := db.count(t, `SELECT count(DISTINCT (session_id, stream_id)) FROM (SELECT session_id, stream_id FROM sync_events
		UNION ALL SELECT session_id, stream_id FROM sync_events_superseded) x`); n != total {
		t.Fatalf("distinct entries recorded = %d, want %d", n, total)
	}
	if n := db.count(t, `SELECT (SELECT count(*) FROM sync_events) + (SELECT count(*) FROM sync_events_superseded)`); n != total {
		t.Fatalf("rows = %d, want %d", n, total)
	}
	if e := a.m.writeErrors.Get() + b.m.writeErrors.Get(); e != 0 {
		t.Errorf("write errors: %d", e)
	}
}
