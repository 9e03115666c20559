package main

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/pgtest"
	"github.com/synckairos/synckairos/servertest"
)

// persistSchema creates a PostgreSQL schema of the test's own and returns
// its name; dropped at cleanup.
func persistSchema(t *testing.T) string { return pgtest.Schema(t, "main_t_") }

// persistURL is the tests' PostgreSQL reached at addr (pgtest.Addr(), or a
// proxy in front of it) with schema as search_path.
func persistURL(addr, schema string) string { return pgtest.Via(addr, schema) }

// persistingAPI runs a server with DATABASE_URL on a schema of its own, and
// on a Redis of its own.
func persistingAPI(t *testing.T) (s *apiServer, redisAddr, schema string) {
	t.Helper()
	redisAddr, _ = startRedisServer(t)
	schema = persistSchema(t)
	s = startAPI(t, map[string]string{"REDIS_URL": "redis://" + redisAddr,
		"DATABASE_URL": persistURL(pgtest.Addr(), schema)}, nil)
	return s, redisAddr, schema
}

// pgPool is a pool on the PostgreSQL at url, closed when the test ends.
func pgPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// cuttableProxy relays TCP to PostgreSQL until cut.
type cuttableProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func newCuttableProxy(t *testing.T, target string) *cuttableProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttableProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			up, err := net.Dial("tcp", target)
			if down || err != nil {
				c.Close()
				if up != nil {
					up.Close()
				}
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
			go func() { _, _ = io.Copy(c, up); up.Close(); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.set(true) })
	return p
}

func (p *cuttableProxy) set(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// TestPersistThroughAPI: PostgreSQL goes away while clients keep switching.
// The API keeps answering, /ready says persistence is degraded (200), a
// full stream refuses with 503 STREAM_FULL, and once PostgreSQL is back
// every accepted transition is in the history exactly once.
func TestPersistThroughAPI(t *testing.T) {
	t.Parallel()
	redisAddr, _ := startRedisServer(t)
	schema := persistSchema(t)
	px := newCuttableProxy(t, pgtest.Addr())
	const streamMax = 40
	s := startAPI(t, map[string]string{
		"REDIS_URL": "redis://" + redisAddr, "DATABASE_URL": persistURL(px.ln.Addr().String(), schema),
		"EVENT_STREAM_MAX": strconv.Itoa(streamMax),
	}, nil)

	id, _, body := newSessionBody(2, "")
	if r := doReq(t, "POST", s.base+"/v1/sessions", body); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	doReq(t, "POST", s.base+"/v1/sessions/"+id+"/start", "")
	accepted := 2
	for range 3 {
		if r := doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch", "{}"); r.status != 200 {
			t.Fatalf("switch: %d %s", r.status, r.body)
		}
		accepted++
	}
	versions := func() []int64 {
		var out []int64
		after := int64(0)
		for {
			r := doReq(t, "GET", s.base+"/v1/sessions/"+id+"/events?limit=7&after_version="+strconv.FormatInt(after, 10), "")
			if r.status != 200 {
				return nil
			}
			var page servertest.EventsPage
			if err := json.Unmarshal(r.body, &page); err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Data {
				out = append(out, e.Version)
			}
			if page.Next == nil {
				return out
			}
			after = *page.Next
		}
	}
	waitFor(t, 10*time.Second, "first events in PostgreSQL", func() bool { return len(versions()) == accepted })
	if r := doReq(t, "GET", s.base+"/ready", ""); r.status != 200 || !strings.Contains(string(r.body), `"status":"ready"`) {
		t.Fatalf("ready before the cut: %d %s", r.status, r.body)
	}

	px.set(true)
	var full apiResp
	for i := 0; i < 2*streamMax; i++ {
		r := doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch", "{}")
		if r.status == 503 {
			full = r
			break
		}
		if r.status != 200 {
			t.Fatalf("switch while PostgreSQL is down: %d %s", r.status, r.body)
		}
		accepted++
	}
	if full.status != 503 || full.errCode(t).Error.Code != "STREAM_FULL" || full.header.Get("Retry-After") == "" {
		t.Fatalf("a full stream should refuse with 503 STREAM_FULL: %d %s", full.status, full.body)
	}
	if r := doReq(t, "GET", s.base+"/v1/sessions/"+id, ""); r.status != 200 || num(r.state(t)["version"]) != int64(accepted) {
		t.Fatalf("GET while down: %d %s (want version %d)", r.status, r.body, accepted)
	}
	r := doReq(t, "GET", s.base+"/ready", "")
	if r.status != 200 || !strings.Contains(string(r.body), `"status":"degraded","degraded":["persistence"]`) {
		t.Fatalf("ready while PostgreSQL is down: %d %s", r.status, r.body)
	}

	px.set(false)
	waitFor(t, 30*time.Second, "every accepted event in PostgreSQL", func() bool { return len(versions()) >= accepted })
	got := versions()
	if len(got) != accepted {
		t.Fatalf("history has %d events, want %d", len(got), accepted)
	}
	for i, v := range got {
		if v != int64(i+1) {
			t.Fatalf("versions not contiguous: %v", got)
		}
	}
	waitFor(t, 10*time.Second, "ready again", func() bool {
		r := doReq(t, "GET", s.base+"/ready", "")
		return r.status == 200 && strings.Contains(string(r.body), `"status":"ready"`)
	})
	waitFor(t, 10*time.Second, "stream trimmed", func() bool {
		rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
		defer rdb.Close()
		return rdb.XLen(context.Background(), keyspace.For(id).Stream).Val() == 0
	})
	if r := doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch", "{}"); r.status != 200 {
		t.Fatalf("switch after the drain: %d %s", r.status, r.body)
	}
}

// TestMigrateCommand: `synckairos migrate` creates the schema, and is
// idempotent; PERSIST_WORKER=false serves without consuming the streams.
func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	schema := persistSchema(t)
	env := apiEnv(map[string]string{"DATABASE_URL": persistURL(pgtest.Addr(), schema), "LOG_FORMAT": "text"})
	for i, want := range []string{"applied=0001_audit.sql", `applied=""`} {
		var out syncBuffer
		if err := run(context.Background(), []string{"migrate"}, env, &out); err != nil {
			t.Fatalf("migrate #%d: %v", i+1, err)
		}
		if !strings.Contains(out.String(), want) {
			t.Fatalf("migrate #%d logged %q, want %s", i+1, out.String(), want)
		}
	}
	if err := run(context.Background(), []string{"migrate"}, apiEnv(nil), io.Discard); err == nil {
		t.Fatal("migrate without DATABASE_URL should fail")
	}

	redisAddr, _ := startRedisServer(t)
	s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + redisAddr,
		"DATABASE_URL": persistURL(pgtest.Addr(), schema), "PERSIST_WORKER": "false"}, nil)
	id, _, body := newSessionBody(2, "")
	doReq(t, "POST", s.base+"/v1/sessions", body)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	time.Sleep(300 * time.Millisecond) // a worker, were one running, would have read it by now
	if n := rdb.XLen(context.Background(), keyspace.For(id).Stream).Val(); n != 1 {
		t.Fatalf("stream holds %d entries; with the worker off the event should wait", n)
	}
	if g := rdb.XInfoGroups(context.Background(), keyspace.For(id).Stream).Val(); len(g) != 0 {
		t.Fatalf("consumer groups %v; with the worker off there should be none", g)
	}
	if r := doReq(t, "GET", s.base+"/v1/sessions/"+id+"/events", ""); r.status != 404 {
		t.Fatalf("events of an unpersisted session: %d %s", r.status, r.body)
	}
	if r := doReq(t, "GET", s.base+"/ready", ""); r.status != 200 || !strings.Contains(string(r.body), `"persistence":"ok"`) {
		t.Fatalf("ready: %d %s", r.status, r.body)
	}
}

// TestPersistStartsWithPostgresDown: an instance started during a
// PostgreSQL outage serves, says degraded, keeps the events in Redis, and
// catches up (migrations, then the worker) once PostgreSQL answers.
func TestPersistStartsWithPostgresDown(t *testing.T) {
	t.Parallel()
	redisAddr, _ := startRedisServer(t)
	schema := persistSchema(t)
	px := newCuttableProxy(t, pgtest.Addr())
	px.set(true)
	s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + redisAddr,
		"DATABASE_URL": persistURL(px.ln.Addr().String(), schema), "DEBUG_ERRORS": "true", "PERSIST_RETRY": "50ms"}, nil)

	id, _, body := newSessionBody(2, "")
	if r := doReq(t, "POST", s.base+"/v1/sessions", body); r.status != 201 {
		t.Fatalf("create while PostgreSQL is down: %d %s", r.status, r.body)
	}
	if r := doReq(t, "POST", s.base+"/v1/sessions/"+id+"/start", ""); r.status != 200 {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	r := doReq(t, "GET", s.base+"/ready", "")
	if r.status != 200 || !strings.Contains(string(r.body), `"persistence":"degraded: migrations not applied`) {
		t.Fatalf("ready: %d %s", r.status, r.body)
	}
	px.set(false)
	waitFor(t, 20*time.Second, "both events in PostgreSQL", func() bool {
		r := doReq(t, "GET", s.base+"/v1/sessions/"+id+"/events", "")
		return r.status == 200 && strings.Count(string(r.body), `"event_type"`) == 2
	})
	waitFor(t, 10*time.Second, "ready", func() bool {
		r := doReq(t, "GET", s.base+"/ready", "")
		return strings.Contains(string(r.body), `"status":"ready"`)
	})
}

// TestPersistRecreatedSession: a session deleted and created again under
// the same id. The history the API serves, and sync_sessions, describe the
// new life; the old one is kept in sync_events_superseded; every event of
// both is recorded exactly once.
func TestPersistRecreatedSession(t *testing.T) {
	t.Parallel()
	s, redisAddr, schema := persistingAPI(t)
	id, _, body := newSessionBody(2, "")
	steps := []struct{ method, path, body string }{
		{"POST", "", body}, {"POST", "/start", ""}, {"POST", "/switch", "{}"}, {"POST", "/pause", ""},
		{"DELETE", "", ""},
		{"POST", "", body}, {"POST", "/start", ""}, {"POST", "/switch", "{}"},
	}
	for _, st := range steps {
		u := s.base + "/v1/sessions"
		if st.method != "POST" || st.path != "" {
			u += "/" + id + st.path
		}
		if r := doReq(t, st.method, u, st.body); r.status >= 300 {
			t.Fatalf("%s %s: %d %s", st.method, u, r.status, r.body)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	waitFor(t, 10*time.Second, "stream drained", func() bool {
		return rdb.XLen(context.Background(), keyspace.For(id).Stream).Val() == 0
	})

	r := doReq(t, "GET", s.base+"/v1/sessions/"+id+"/events", "")
	var page struct {
		Data []struct {
			Version   int64  `json:"version"`
			EventType string `json:"event_type"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil || r.status != 200 {
		t.Fatalf("events: %d %s", r.status, r.body)
	}
	var got []string
	for _, e := range page.Data {
		got = append(got, strconv.FormatInt(e.Version, 10)+":"+e.EventType)
	}
	if want := "1:session_created 2:session_started 3:cycle_switched"; strings.Join(got, " ") != want {
		t.Errorf("history = %v, want %s", got, want)
	}

	pool := pgPool(t, persistURL(pgtest.Addr(), schema))
	var status string
	var last int64
	if err := pool.QueryRow(context.Background(), `SELECT final_status, last_version FROM sync_sessions
		WHERE session_id = $1`, id).Scan(&status, &last); err != nil || status != "running" || last != 3 {
		t.Errorf("sync_sessions: %q, %d, %v; want running, 3", status, last, err)
	}
	var old string
	if err := pool.QueryRow(context.Background(), `SELECT string_agg(version || ':' || event_type, ' ' ORDER BY version)
		FROM sync_events_superseded WHERE session_id = $1`, id).Scan(&old); err != nil ||
		old != "1:session_created 2:session_started 3:cycle_switched 4:session_paused 5:session_deleted" {
		t.Errorf("superseded = %q, %v", old, err)
	}
}
