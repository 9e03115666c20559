package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/pgtest"
)

// TestAuditEveryInstanceRecords: three instances share one Redis, and only
// one has DATABASE_URL. One without it started before the persisting one
// (it records from its next read of the audit flag), one after it (it
// records from its start). Every transition, whichever instance served it,
// lands in PostgreSQL exactly once.
func TestAuditEveryInstanceRecords(t *testing.T) {
	t.Parallel()
	redisAddr, _ := startRedisServer(t)
	schema := persistSchema(t)
	rurl := "redis://" + redisAddr
	early := startAPI(t, map[string]string{"REDIS_URL": rurl, "AUDIT_REFRESH": "50ms"}, nil)
	if c := early.app.engine.EventCap(); c != 0 {
		t.Fatalf("an instance without DATABASE_URL on a Redis no persisting instance announced itself on records with cap %d", c)
	}
	persisting := startAPI(t, map[string]string{"REDIS_URL": rurl, "DATABASE_URL": persistURL(pgtest.Addr(), schema)}, nil)
	late := startAPI(t, map[string]string{"REDIS_URL": rurl}, nil) // default AUDIT_REFRESH: 5 s
	if c := late.app.engine.EventCap(); c != 100_000 {
		t.Fatalf("an instance started after a persisting one records with cap %d, want its EVENT_STREAM_MAX 100000", c)
	}
	waitFor(t, 5*time.Second, "the early instance to read the audit flag", func() bool {
		return early.app.engine.EventCap() == 100_000
	})
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	if ttl := rdb.PTTL(context.Background(), keyspace.Audit).Val(); ttl != -1 {
		t.Fatalf("the audit flag's PTTL is %v; it should be sticky (no TTL)", ttl)
	}

	// Each session goes round the three instances, one transition each.
	servers := []*apiServer{early, persisting, late}
	steps := []struct{ method, path, body string }{
		{"POST", "/start", ""}, {"POST", "/switch", "{}"}, {"POST", "/switch", "{}"}, {"POST", "/pause", ""},
		{"POST", "/resume", ""}, {"POST", "/switch", "{}"}, {"POST", "/complete", ""},
	}
	want := map[string]int64{}
	for i := range servers {
		id, _, body := newSessionBody(2, "")
		r := doReq(t, "POST", servers[i].base+"/v1/sessions", body)
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		for j, st := range steps {
			s := servers[(i+j+1)%len(servers)]
			if r = doReq(t, st.method, s.base+"/v1/sessions/"+id+st.path, st.body); r.status != 200 {
				t.Fatalf("%s %s: %d %s", st.method, st.path, r.status, r.body)
			}
		}
		want[id] = num(r.state(t)["version"])
	}

	pool := pgPool(t, persistURL(pgtest.Addr(), schema))
	counts := func(id string) map[int64]int {
		rows, err := pool.Query(context.Background(),
			`SELECT version, count(*) FROM sync_events WHERE session_id = $1 GROUP BY version`, id)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[int64]int{}
		for rows.Next() {
			var v int64
			var n int
			if err := rows.Scan(&v, &n); err != nil {
				t.Fatal(err)
			}
			out[v] = n
		}
		return out
	}
	for id, last := range want {
		waitFor(t, 20*time.Second, "the events of "+id, func() bool { return len(counts(id)) >= int(last) })
		got := counts(id)
		for v := int64(1); v <= last; v++ {
			if got[v] != 1 {
				t.Errorf("session %s version %d is recorded %d times, want once (all: %v)", id, v, got[v], got)
			}
		}
		if len(got) != int(last) {
			t.Errorf("session %s: %d versions recorded, want 1..%d: %v", id, len(got), last, got)
		}
	}
}

// TestAuditOff: AUDIT=off records nothing, even where the deployment
// persists, and an instance with DATABASE_URL and AUDIT=off does not turn
// recording on for the others.
func TestAuditOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name     string
		flag     string // the audit flag before the instance starts ("" = none)
		database bool
	}{
		{"without DATABASE_URL, the deployment persisting", "100000", false},
		{"with DATABASE_URL", "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			redisAddr, _ := startRedisServer(t)
			rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
			defer rdb.Close()
			if c.flag != "" {
				rdb.Set(ctx, keyspace.Audit, c.flag, 0)
			}
			env := map[string]string{"REDIS_URL": "redis://" + redisAddr, "AUDIT": "off", "AUDIT_REFRESH": "20ms"}
			if c.database {
				env["DATABASE_URL"] = persistURL(pgtest.Addr(), persistSchema(t))
			}
			s := startAPI(t, env, nil)
			id, _ := apiSession(t, s, true)
			time.Sleep(100 * time.Millisecond) // several refresh periods, had there been a refresh
			doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch", "{}")
			if n := rdb.XLen(ctx, keyspace.For(id).Stream).Val(); n != 0 {
				t.Errorf("AUDIT=off: the stream holds %d events", n)
			}
			if got, _ := rdb.Get(ctx, keyspace.Audit).Result(); got != c.flag {
				t.Errorf("the audit flag is %q, want %q as before", got, c.flag)
			}
		})
	}
}

// TestAuditFlagChanges: an instance without DATABASE_URL follows the flag
// as it changes: a value that is no cap, or none, records nothing.
func TestAuditFlagChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	redisAddr, _ := startRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + redisAddr, "AUDIT_REFRESH": "20ms"}, nil)
	for _, c := range []struct {
		flag string // "" deletes it
		want int64
	}{{"250", 250}, {"bogus", 0}, {"7", 7}, {"-3", 0}, {"", 0}} {
		if c.flag == "" {
			rdb.Del(ctx, keyspace.Audit)
		} else {
			rdb.Set(ctx, keyspace.Audit, c.flag, 0)
		}
		waitFor(t, 5*time.Second, "cap "+strconv.FormatInt(c.want, 10)+" after flag "+strconv.Quote(c.flag), func() bool {
			return s.app.engine.EventCap() == c.want
		})
	}
}

// TestPersistRefusedURL: a DATABASE_URL PostgreSQL refuses for good stops
// the start with a message that says so; one that is only unreachable
// starts, degraded, and keeps retrying.
func TestPersistRefusedURL(t *testing.T) {
	t.Parallel()
	schema := persistSchema(t)
	cases := []struct {
		name, url string
		want      []string // in the start error; none: it starts
	}{
		{"unknown role", pgtest.With("synckairos_no_such_role", ""),
			[]string{"DATABASE_URL: PostgreSQL refused the credentials (SQLSTATE 28000)", "synckairos_no_such_role"}},
		{"unknown database", pgtest.With("", "synckairos_no_such_db"),
			[]string{"DATABASE_URL: the database does not exist (SQLSTATE 3D000)", "synckairos_no_such_db"}},
		{"unreachable", persistURL("127.0.0.1:"+strconv.Itoa(freePort(t)), schema), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.want == nil {
				s := startAPI(t, map[string]string{"DATABASE_URL": c.url}, nil)
				r := doReq(t, "GET", s.base+"/ready", "")
				if r.status != 200 || !strings.Contains(string(r.body), `"degraded":["persistence"]`) {
					t.Fatalf("ready: %d %s", r.status, r.body)
				}
				return
			}
			env := apiEnv(map[string]string{"DATABASE_URL": c.url, "PORT": strconv.Itoa(freePort(t))})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- run(ctx, nil, env, &syncBuffer{}) }()
			defer func() { cancel(); <-done }() // stops it, had it started
			select {
			case err := <-done:
				done <- err
				for _, w := range c.want {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Fatalf("start error %v, want it to say %q", err, w)
					}
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the service started with a DATABASE_URL PostgreSQL refuses")
			}
		})
	}
}

// TestAuditConfig: AUDIT is auto or off, and off zeroes the start cap.
func TestAuditConfig(t *testing.T) {
	for _, c := range []struct {
		audit, db string
		off       bool
		cap       int64
		bad       bool
	}{
		{"", "postgres://x", false, 100_000, false},
		{"auto", "postgres://x", false, 100_000, false},
		{"OFF", "postgres://x", true, 0, false},
		{"", "", false, 0, false}, // the audit flag decides
		{"on", "", false, 0, true},
	} {
		cfg, err := loadConfig(apiEnv(map[string]string{"AUDIT": c.audit, "DATABASE_URL": c.db}))
		if (err != nil) != c.bad || cfg.AuditOff != c.off || cfg.EventStreamMax != c.cap {
			t.Errorf("AUDIT=%q DATABASE_URL=%q: off=%v cap=%d err=%v", c.audit, c.db, cfg.AuditOff, cfg.EventStreamMax, err)
		}
	}
}
