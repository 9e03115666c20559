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
)

// row is one recorded event as the tests compare them: where it is, which
// stream entry it came from, and its incarnation's created_at (ms; only
// for sync_events_superseded).
type row struct {
	table, entry, typ string
	version, inc      int64
}

func (r row) String() string {
	return fmt.Sprintf("%s %s v%d %s inc=%d", r.table, r.entry, r.version, r.typ, r.inc)
}

// entriesOf returns the stream entries of session id after `after` (an
// entry id, "-" for all), as the rows they should become in table, with
// incarnation created_at inc.
func entriesOf(t *testing.T, rdb *redis.Client, id, after, table string, inc int64) []row {
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
		v, _ := strconv.ParseInt(m.Values["version"].(string), 10, 64)
		out = append(out, row{table, m.ID, m.Values["type"].(string), v, inc})
	}
	return out
}

func lastEntry(rows []row) string { return rows[len(rows)-1].entry }

// recorded lists every row of session id in both tables, in stream order.
func recorded(t *testing.T, db *testDB, id string) []row {
	t.Helper()
	rs, err := db.admin.Query(context.Background(), `
		SELECT 'current', stream_id, event_type, version, 0 FROM sync_events WHERE session_id = $1
		UNION ALL
		SELECT 'superseded', stream_id, event_type, version,
		       coalesce((extract(epoch FROM incarnation_created_at) * 1000)::int8, -1)
		FROM sync_events_superseded WHERE session_id = $1`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		must(t, rs.Scan(&r.table, &r.entry, &r.typ, &r.version, &r.inc))
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
func createdAt(t *testing.T, rdb *redis.Client, id string) int64 {
	t.Helper()
	ms, err := rdb.HGet(context.Background(), keyspace.For(id).Meta, "created_at").Int64()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// checkCurrent asserts what readers see: sync_sessions describes want (the
// current incarnation, versions 1..n) and the events endpoint returns it.
func checkCurrent(t *testing.T, db *testDB, id string, want []row, status string, cycles, created int64) {
	t.Helper()
	ctx := context.Background()
	var gotTypes, wantTypes []string
	for i, r := range want {
		if r.version != int64(i+1) {
			t.Fatalf("test bug: current incarnation versions %v", want)
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
		t.Errorf("events endpoint returns %v, want the current incarnation %v", gotTypes, wantTypes)
	}
}

// checkRows asserts that every stream entry landed exactly once, in the
// table (and incarnation) it belongs to.
func checkRows(t *testing.T, db *testDB, id string, want []row) {
	t.Helper()
	got := recorded(t, db, id)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("recorded rows:\n  %v\nwant:\n  %v", got, want)
	}
}

// TestRecreatedSession: a session id created again after a delete, or
// after its keys expired, starts a new incarnation at version 1. Both
// incarnations' events land exactly once: the current one in sync_events,
// the earlier ones in sync_events_superseded under their created_at.
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
				created = createdAt(t, rdb, id)
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
				table, inc := "superseded", created
				if i == len(tc.lives)-1 {
					table, inc = "current", 0
				}
				rows := entriesOf(t, rdb, id, after, table, inc)
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
					eventually(t, 10*time.Second, fmt.Sprintf("life %d written", i), func() bool {
						return db.count(t, `SELECT count(*) FROM sync_events WHERE session_id = $1`, id) == int64(n)
					})
				}
			}
			if !tc.workerFirst {
				stop = run(w)
			}
			eventually(t, 10*time.Second, "streams drained", func() bool { return streamLen(t, rdb) == 0 })
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

// TestOldIncarnationRedelivered: entries of the old incarnation that a
// dead worker left pending are claimed only after the new incarnation
// took over sync_events. They must land in sync_events_superseded, once,
// and nothing of the new incarnation may move.
func TestOldIncarnationRedelivered(t *testing.T) {
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
			id := newUUID()
			pool := db.pool(t, pgAddr)

			must(t, d.create(ctx, id, 2))
			oldCreated := createdAt(t, rdb, id)
			for _, op := range []string{"startSession", "switchCycle", "pauseSession"} {
				must(t, d.op(ctx, op, id))
			}
			cfg := testConfig()
			cfg.Lanes = 1
			old := entriesOf(t, rdb, id, "-", "superseded", oldCreated) // before a worker trims them
			if tc.stage == "delete only" {
				w0 := NewWorker(rdb, pool, quietLog(), cfg)
				stop := run(w0)
				eventually(t, 10*time.Second, "old life written", func() bool {
					return db.count(t, `SELECT count(*) FROM sync_events`) == 4 && pendingCount(t, rdb, id) == 0
				})
				must(t, stop())
				must(t, d.op(ctx, "deleteSession", id))
				old = append(old, entriesOf(t, rdb, id, lastEntry(old), "superseded", oldCreated)...)
				must(t, rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "persist", Consumer: "ghost",
					Streams: []string{keyspace.For(id).Stream, ">"}, Count: 10}).Err())
			} else {
				must(t, d.op(ctx, "deleteSession", id))
				old = entriesOf(t, rdb, id, "-", "superseded", oldCreated)
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
			newCreated := createdAt(t, rdb, id)
			for _, op := range []string{"startSession", "switchCycle"} {
				must(t, d.op(ctx, op, id))
			}
			cur := entriesOf(t, rdb, id, lastEntry(old), "current", 0)

			// The second worker never claims: it writes the new life only.
			cfg2 := testConfig()
			cfg2.ClaimIdle = time.Hour
			w2 := NewWorker(rdb, pool, quietLog(), cfg2)
			stop := run(w2)
			eventually(t, 10*time.Second, "new life acknowledged", func() bool {
				g, err := rdb.XInfoGroups(ctx, keyspace.For(id).Stream).Result()
				return err == nil && len(g) == 1 && g[0].LastDeliveredID == lastEntry(cur) &&
					pendingCount(t, rdb, id) == tc.pending
			})
			must(t, stop())

			// The third claims the old entries.
			w3 := NewWorker(rdb, pool, quietLog(), testConfig())
			stop = run(w3)
			eventually(t, 10*time.Second, "old entries claimed and acknowledged", func() bool {
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

// TestClassify covers the placements the integration tests cannot stage
// with the real scripts: two lives created in the same millisecond, a
// newer life whose events come before its create, rows from before
// migration 0002.
func TestClassify(t *testing.T) {
	t.Parallel()
	const s1, s2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
	// ev: session, entry id, version, type (c: created, d: deleted, else a
	// switch), created_at (0: none, as a delete).
	ev := func(sid, entry string, v int64, typ string, ca int64) event {
		e := event{sessionID: sid, id: entry, version: v, typ: map[string]string{
			"c": "session_created", "d": "session_deleted"}[typ]}
		if e.typ == "" {
			e.typ = "cycle_switched"
		}
		e.pos, _ = parsePos(entry)
		e.createdAt, e.hasCreatedAt = ca, ca != 0
		return e
	}
	rec := func(ca, firstV int64, first string, lastV int64, last string, deleted bool) incarnation {
		c := incarnation{createdAt: ca, hasCreatedAt: ca != 0, firstV: firstV, lastV: lastV, deleted: deleted}
		c.first, c.hasFirst = parsePos(first)
		c.last, c.hasLast = parsePos(last)
		return c
	}
	tests := []struct {
		name     string
		recorded map[string]incarnation
		evs      []event
		want     string // per event: cur, old@<created_at>, old@? (to be looked up)
		switched []string
		lives    int
	}{
		{"new session", nil, []event{ev(s1, "1-0", 1, "c", 100), ev(s1, "1-1", 2, "s", 100)},
			"cur cur", nil, 0},
		{"redelivered, within the recorded range",
			map[string]incarnation{s1: rec(100, 1, "1-0", 3, "1-2", false)},
			[]event{ev(s1, "1-1", 2, "s", 100), ev(s1, "1-2", 3, "s", 100)}, "cur cur", nil, 0},
		{"same millisecond, one batch", nil, []event{
			ev(s1, "1-0", 1, "c", 100), ev(s1, "1-1", 2, "s", 100), ev(s1, "1-2", 3, "d", 0),
			ev(s1, "1-3", 1, "c", 100), ev(s1, "1-4", 2, "s", 100)},
			"old@100 old@100 old@100 cur cur", nil, 1},
		{"same millisecond, the old life recorded and deleted",
			map[string]incarnation{s1: rec(100, 1, "1-0", 3, "1-2", true)},
			[]event{ev(s1, "1-3", 1, "c", 100)}, "cur", []string{s1}, 1},
		{"same millisecond, a late event of the old life",
			map[string]incarnation{s1: rec(100, 1, "1-3", 2, "1-4", false)},
			[]event{ev(s1, "1-1", 2, "s", 100), ev(s1, "1-2", 3, "d", 0)}, "old@100 old@100", nil, 0},
		{"expired: a create after a life that never ended with a delete",
			map[string]incarnation{s1: rec(100, 1, "1-0", 4, "1-3", false)},
			[]event{ev(s1, "9-0", 1, "c", 900), ev(s1, "9-1", 2, "s", 900)}, "cur cur", []string{s1}, 1},
		{"late old delete alone: its life is looked up",
			map[string]incarnation{s1: rec(200, 1, "2-0", 2, "2-1", false)},
			[]event{ev(s1, "1-3", 4, "d", 0)}, "old@?", nil, 0},
		{"late old delete with an unrelated old event before it",
			map[string]incarnation{s1: rec(300, 1, "3-0", 2, "3-1", false)},
			[]event{ev(s1, "1-1", 2, "s", 100), ev(s1, "2-5", 7, "d", 0)}, "old@100 old@?", nil, 0},
		{"a newer life's event before its create",
			map[string]incarnation{s1: rec(100, 1, "1-0", 3, "1-2", false)},
			[]event{ev(s1, "2-3", 4, "s", 200)}, "cur", []string{s1}, 1},
		{"then its create, late",
			map[string]incarnation{s1: rec(200, 4, "2-3", 4, "2-3", false)},
			[]event{ev(s1, "2-0", 1, "c", 200), ev(s1, "2-1", 2, "s", 200)}, "cur cur", nil, 0},
		{"a delete after a version the current life has",
			map[string]incarnation{s1: rec(100, 1, "1-0", 5, "1-4", false)},
			[]event{ev(s1, "2-0", 3, "d", 0)}, "cur", []string{s1}, 1},
		{"an event after a recorded delete",
			map[string]incarnation{s1: rec(0, 5, "1-4", 5, "1-4", true)},
			[]event{ev(s1, "2-0", 1, "c", 200)}, "cur", []string{s1}, 1},
		{"a delete before the current life's last event",
			map[string]incarnation{s1: rec(200, 2, "2-0", 3, "2-9", false)},
			[]event{ev(s1, "2-5", 5, "d", 0)}, "old@?", nil, 0},
		{"a created_at that contradicts its place (after an ambiguous delete)",
			map[string]incarnation{s1: rec(100, 1, "1-0", 4, "2-5", true)},
			[]event{ev(s1, "2-0", 1, "c", 900), ev(s1, "2-1", 2, "s", 900)}, "old@900 old@900", nil, 0},
		{"rows from before migration 0002: created_at decides",
			map[string]incarnation{s1: {createdAt: 100, hasCreatedAt: true, firstV: 1, lastV: 5}},
			[]event{ev(s1, "5-0", 3, "s", 50), ev(s1, "5-1", 6, "s", 100), ev(s1, "5-2", 7, "d", 0),
				ev(s1, "5-3", 1, "c", 200)},
			"old@50 old@100 old@100 cur", []string{s1}, 1},
		{"three lives in one batch", nil, []event{
			ev(s1, "1-0", 1, "c", 100), ev(s1, "1-1", 2, "d", 0),
			ev(s1, "1-2", 1, "c", 100), ev(s1, "1-3", 2, "s", 100), ev(s1, "1-4", 3, "d", 0),
			ev(s1, "2-0", 1, "c", 200)},
			"old@100 old@100 old@100 old@100 old@100 cur", nil, 2},
		{"sessions are independent",
			map[string]incarnation{s1: rec(100, 1, "1-0", 2, "1-1", true), s2: rec(100, 1, "1-2", 1, "1-2", false)},
			[]event{ev(s2, "1-3", 2, "s", 100), ev(s1, "2-0", 1, "c", 200), ev(s2, "2-1", 3, "s", 100)},
			"cur cur cur", []string{s1}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := classify(tc.evs, tc.recorded)
			var got []string
			for _, pl := range p.place {
				switch {
				case !pl.superseded:
					got = append(got, "cur")
				case pl.inc == nil:
					got = append(got, "old@?")
				default:
					got = append(got, "old@"+strconv.FormatInt(*pl.inc, 10))
				}
			}
			if strings.Join(got, " ") != tc.want || fmt.Sprint(p.switched) != fmt.Sprint(tc.switched) || p.lives != tc.lives {
				t.Errorf("got %v, switched %v, lives %d; want %s, %v, %d", got, p.switched, p.lives,
					tc.want, tc.switched, tc.lives)
			}
		})
	}
}

// TestAmbiguousDeleteLosesNothing stages the one case stream order cannot
// settle: a re-created session's delete is written while every other event
// of its life waits in a dead worker's pending list, so it is taken for the
// old life's. Its life's other events, claimed later, must still land,
// once: in sync_events_superseded by their created_at; or, when that
// matches too, those under versions the old life has because their stream
// entries differ from the rows there, and the rest (misplaced, but kept)
// in sync_events.
func TestAmbiguousDeleteLosesNothing(t *testing.T) {
	t.Parallel()
	const created = "2026-01-01T00:00:00.000Z"
	xadd := func(t *testing.T, rdb *redis.Client, id string, v int, typ string) {
		t.Helper()
		state, kind := "", ""
		if typ != "session_deleted" {
			state = `{"session_id":"` + id + `","sync_mode":"per_participant","status":"pending","version":` +
				strconv.Itoa(v) + `,"created_at":"` + created + `","participants":[]}`
			kind = "full"
		}
		if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: keyspace.For(id).Stream, Values: []any{
			"type", typ, "session_id", id, "version", strconv.Itoa(v), "participant_id", "", "group_id", "",
			"time_remaining_ms", "", "time_elapsed_ms", "", "cycle_number", "", "timestamp", "1767225600000",
			"state_kind", kind, "state", state}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	type phases [3]func(t *testing.T, rdb *redis.Client, d *driver, id string)
	tests := []struct {
		name string
		// old life (written), the new life's first events (left pending by
		// a dead consumer), its delete (written next)
		phases phases
		tagged bool // the pending ones keep their created_at (else: unknown)
	}{
		{"keys expired, then re-created: created_at tells", phases{
			func(t *testing.T, _ *redis.Client, d *driver, id string) {
				for _, err := range []error{d.create(context.Background(), id, 2), d.op(context.Background(), "startSession", id)} {
					if err != nil {
						t.Fatal(err)
					}
				}
			},
			func(t *testing.T, rdb *redis.Client, d *driver, id string) {
				k := keyspace.For(id)
				ctx := context.Background()
				for _, err := range []error{rdb.Del(ctx, k.Meta, k.Parts, k.Index).Err(), d.create(ctx, id, 2),
					d.op(ctx, "startSession", id), d.op(ctx, "switchCycle", id)} {
					if err != nil {
						t.Fatal(err)
					}
				}
			},
			func(t *testing.T, _ *redis.Client, d *driver, id string) {
				must(t, d.op(context.Background(), "deleteSession", id))
			},
		}, true},
		{"same created_at: the entries tell", phases{
			func(t *testing.T, rdb *redis.Client, _ *driver, id string) {
				xadd(t, rdb, id, 1, "session_created")
				xadd(t, rdb, id, 2, "session_started")
			},
			func(t *testing.T, rdb *redis.Client, _ *driver, id string) {
				xadd(t, rdb, id, 1, "session_created")
				xadd(t, rdb, id, 2, "session_started")
				xadd(t, rdb, id, 3, "cycle_switched")
			},
			func(t *testing.T, rdb *redis.Client, _ *driver, id string) {
				xadd(t, rdb, id, 4, "session_deleted")
			},
		}, false},
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
			oldLife := entriesOf(t, rdb, id, "-", "current", 0)
			stop := run(NewWorker(rdb, pool, quietLog(), cfg))
			eventually(t, 10*time.Second, "old life written", func() bool {
				return db.count(t, `SELECT count(*) FROM sync_events`) == int64(len(oldLife)) && pendingCount(t, rdb, id) == 0
			})
			must(t, stop())

			tc.phases[1](t, rdb, d, id)
			tag := int64(-1)
			if tc.tagged {
				tag = createdAt(t, rdb, id)
			}
			pending := entriesOf(t, rdb, id, lastEntry(oldLife), "superseded", tag)
			for i, r := range pending {
				if !tc.tagged && r.version > int64(len(oldLife)) {
					pending[i].table, pending[i].inc = "current", 0
				}
			}
			if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "persist", Consumer: "ghost",
				Streams: []string{keyspace.For(id).Stream, ">"}, Count: 100}).Err(); err != nil {
				t.Fatal(err)
			}
			tc.phases[2](t, rdb, d, id)
			del := entriesOf(t, rdb, id, lastEntry(pending), "current", 0)
			stop = run(NewWorker(rdb, pool, quietLog(), cfg))
			eventually(t, 10*time.Second, "the delete written", func() bool {
				return db.count(t, `SELECT count(*) FROM sync_events`) == int64(len(oldLife)+1)
			})
			must(t, stop())

			w := NewWorker(rdb, pool, quietLog(), testConfig())
			stop = run(w)
			eventually(t, 10*time.Second, "pending entries claimed", func() bool { return pendingCount(t, rdb, id) == 0 })
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
	eventually(t, 30*time.Second, "every entry recorded", func() bool {
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
