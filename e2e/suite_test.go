package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/pgtest"
	"github.com/synckairos/synckairos/servertest"
)

// The black-box suite's rows for each backend: the same binary and
// requests on the single Redis and on the real 3-master Cluster.

// TestLifecycle: one session through every transition, the calls spread
// over two instances.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	eachBackend(t, testLifecycle)
}

func testLifecycle(t *testing.T, be backend) {
	insts := []string{be.start(t).addr, be.start(t).addr}
	// 24 sessions: every master of the Cluster serves some
	for i := range 24 {
		id, parts, body := servertest.SessionBody(3, "")
		url := func(k int, op string) string { return "http://" + insts[k%2] + "/v1/sessions/" + id + op }
		if r := doReq(t, "POST", "http://"+insts[i%2]+"/v1/sessions", body); r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		steps := []struct {
			method, op, body string
			status           string
			version          int64
			active           string // participant_id expected active; "" for none
		}{
			{"POST", "/start", "", "running", 2, parts[0]},
			{"POST", "/switch", "{}", "running", 3, parts[1]},
			{"POST", "/switch", `{"current_participant_id":"` + parts[1] + `"}`, "running", 4, parts[2]},
			{"POST", "/pause", "", "paused", 5, parts[2]},
			{"POST", "/resume", "", "running", 6, parts[2]},
			{"POST", "/switch", "{}", "running", 7, parts[0]},
			{"POST", "/complete", "", "completed", 8, ""},
			{"GET", "", "", "completed", 8, ""},
		}
		for k, st := range steps {
			r := doReq(t, st.method, url(i+k, st.op), st.body)
			if r.Status != 200 {
				t.Fatalf("session %d step %d %s%s: %d %s", i, k, st.method, st.op, r.Status, r.Body)
			}
			s := r.State(t)
			if s["status"] != st.status || servertest.Num(s["version"]) != st.version || activeOf(s) != st.active {
				t.Fatalf("session %d after %s%s: status %v version %v active %q, want %s %d %q",
					i, st.method, st.op, s["status"], s["version"], activeOf(s), st.status, st.version, st.active)
			}
		}
		if r := doReq(t, "DELETE", url(i, ""), ""); r.Status != 204 && r.Status != 200 {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		if r := doReq(t, "GET", url(i+1, ""), ""); r.Status != 404 || r.Err(t).Error.Code != "SESSION_NOT_FOUND" {
			t.Fatalf("get after delete: %d %s", r.Status, r.Body)
		}
	}
}

func activeOf(s map[string]any) string {
	ps, _ := s["participants"].([]any)
	for _, p := range ps {
		if m, _ := p.(map[string]any); m["is_active"] == true {
			id, _ := m["participant_id"].(string)
			return id
		}
	}
	return ""
}

// TestErrors: refused requests get their v1 error and change nothing.
func TestErrors(t *testing.T) {
	t.Parallel()
	eachBackend(t, testErrors)
}

func testErrors(t *testing.T, be backend) {
	base := "http://" + be.start(t).addr + "/v1/sessions"
	id, _, body := servertest.SessionBody(2, "")
	if r := doReq(t, "POST", base, body); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	absent := base + "/" + "00000000-0000-4000-8000-0000000000c3"
	cases := []struct {
		name, method, url, body string
		hdr                     []string
		status                  int
		code                    string
	}{
		{"create twice", "POST", base, body, nil, 409, "SESSION_EXISTS"},
		{"bad body", "POST", base, `{"session_id":`, nil, 400, "VALIDATION_ERROR"},
		{"switch before start", "POST", base + "/" + id + "/switch", "{}", nil, 400, "INVALID_STATE_TRANSITION"},
		{"pause before start", "POST", base + "/" + id + "/pause", "", nil, 400, "INVALID_STATE_TRANSITION"},
		{"start absent", "POST", absent + "/start", "", nil, 404, "SESSION_NOT_FOUND"},
		{"get absent", "GET", absent, "", nil, 404, "SESSION_NOT_FOUND"},
		{"bad id", "GET", base + "/not-a-uuid", "", nil, 400, "VALIDATION_ERROR"},
		{"stale If-Match", "POST", base + "/" + id + "/start", "", []string{"If-Match", "7"}, 409, "CONFLICT"},
	}
	for _, c := range cases {
		r := doReq(t, c.method, c.url, c.body, c.hdr...)
		if r.Status != c.status || r.Err(t).Error.Code != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.Status, r.Body, c.status, c.code)
		}
	}
	r := doReq(t, "GET", base+"/"+id, "")
	if s := r.State(t); s["status"] != "pending" || servertest.Num(s["version"]) != 1 || activeOf(s) != "" {
		t.Errorf("the refused calls changed the session: %s", r.Body)
	}
}

// TestRateLimitedSwitch: with limits on, every request costs the caller one
// on both backends, a switch refused before Redis included, and a spent
// budget refuses the switch unchanged. (On the single Redis the switch's
// own script charges the budget; on the Cluster the limiter does, before.)
func TestRateLimitedSwitch(t *testing.T) {
	t.Parallel()
	eachBackend(t, testRateLimitedSwitch)
}

func testRateLimitedSwitch(t *testing.T, be backend) {
	base := "http://" + be.start(t, "RATE_LIMIT_ENABLED=true", "RATE_LIMIT_IP_MAX=5", "RATE_LIMIT_IP_WINDOW=1h",
		"TRUST_PROXY=true").addr + "/v1/sessions"
	// a client address of this run's own, so no other test spends its budget
	ip := fmt.Sprintf("198.51.100.%d", time.Now().UnixNano()%250+1)
	other := fmt.Sprintf("203.0.113.%d", time.Now().UnixNano()%250+1)
	t.Cleanup(func() { be.client(t).Del(context.Background(), "sk:rl:ip:"+ip, "sk:rl:ip:"+other) })
	id, _, body := servertest.SessionBody(2, "")
	sw := base + "/" + id + "/switch"
	steps := []struct {
		name, url, body string
		status          int
		remaining       string
	}{
		{"create", base, body, 201, "4"},
		{"start", base + "/" + id + "/start", "", 200, "3"},
		{"switch", sw, "{}", 200, "2"},
		{"a bad body", sw, `{"next_participant_id":5}`, 400, "1"},
		{"switch", sw, "{}", 200, "0"},
		{"spent", sw, "{}", 429, "0"},
	}
	for _, st := range steps {
		r := doReq(t, "POST", st.url, st.body, "X-Forwarded-For", ip)
		if r.Status != st.status || r.Header.Get("RateLimit-Remaining") != st.remaining {
			t.Fatalf("%s: %d %s %v, want %d remaining %s", st.name, r.Status, r.Body, r.Header, st.status, st.remaining)
		}
	}
	r := doReq(t, "GET", base+"/"+id, "", "X-Forwarded-For", other)
	if v := servertest.Num(r.State(t)["version"]); v != 4 {
		t.Fatalf("version %d after a start and two switches: %s", v, r.Body)
	}
}

// TestRace: two instances race switches on one session, each naming the
// version it saw: every version is won by exactly one call, and the
// session ends at its start version plus the wins.
func TestRace(t *testing.T) {
	t.Parallel()
	eachBackend(t, testRace)
}

func testRace(t *testing.T, be backend) {
	insts := []string{be.start(t).addr, be.start(t).addr}
	id, _, body := servertest.SessionBody(4, "")
	base := "http://" + insts[0] + "/v1/sessions/" + id
	if r := doReq(t, "POST", "http://"+insts[0]+"/v1/sessions", body); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	if r := doReq(t, "POST", base+"/start", ""); r.Status != 200 {
		t.Fatalf("start: %d %s", r.Status, r.Body)
	}
	const workers, rounds = 6, 15
	var mu sync.Mutex
	won := map[int64]int{} // version reached → winners
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				url := "http://" + insts[w%2] + "/v1/sessions/" + id
				r, err := servertest.Try("GET", url, "")
				if err != nil || r.Status != 200 {
					t.Errorf("get: %v %d", err, r.Status)
					return
				}
				v := servertest.Num(r.State(t)["version"])
				r, err = servertest.Try("POST", url+"/switch", "{}", "If-Match", strconv.FormatInt(v, 10))
				switch {
				case err != nil:
					t.Errorf("switch: %v", err)
					return
				case r.Status == 200:
					got := servertest.Num(r.State(t)["version"])
					if got != v+1 {
						t.Errorf("switch at version %d answered version %d", v, got)
					}
					mu.Lock()
					won[got]++
					mu.Unlock()
				case r.Status == 409 && r.Err(t).Error.Code == "CONFLICT":
				default:
					t.Errorf("switch: %d %s", r.Status, r.Body)
				}
			}
		}()
	}
	wg.Wait()
	r := doReq(t, "GET", base, "")
	final := servertest.Num(r.State(t)["version"])
	if int64(len(won)) != final-2 {
		t.Errorf("final version %d after %d winning switches from version 2", final, len(won))
	}
	for v, n := range won {
		if n != 1 || v < 3 || v > final {
			t.Errorf("version %d won by %d switches (final %d)", v, n, final)
		}
	}
}

// TestPersistence: two instances with DATABASE_URL record the switches of
// sessions on many shards; PostgreSQL ends with every version of every
// session exactly once.
func TestPersistence(t *testing.T) {
	t.Parallel()
	eachBackend(t, testPersistence)
}

func testPersistence(t *testing.T, be backend) {
	schema := pgtest.Schema(t, "e2e_p_")
	env := []string{"DATABASE_URL=" + pgtest.Via("", schema)}
	if be.name == "redis" {
		// persisting instances set the audit flag: not on the shared Redis
		addr, _ := servertest.StartRedis(t)
		env = append(env, "REDIS_URL=redis://"+addr)
	} else {
		t.Cleanup(func() { be.client(t).Del(context.Background(), keyspace.Audit) })
	}
	insts := []string{be.start(t, env...).addr, be.start(t, env...).addr}
	const n, switches = 16, 12
	want := map[string]int64{} // session → final version
	for i := range n {
		id, _, body := servertest.SessionBody(2, "")
		base := "http://" + insts[i%2] + "/v1/sessions"
		if r := doReq(t, "POST", base, body); r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		var v int64
		for k := range switches + 1 {
			op := "/switch"
			if k == 0 {
				op = "/start"
			}
			r := doReq(t, "POST", "http://"+insts[(i+k)%2]+"/v1/sessions/"+id+op, "{}")
			if r.Status != 200 {
				t.Fatalf("%s: %d %s", op, r.Status, r.Body)
			}
			v = servertest.Num(r.State(t)["version"])
		}
		want[id] = v
	}
	pool, err := pgxpool.New(context.Background(), pgtest.Via("", schema))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	type row struct{ rows, distinct, top int64 }
	read := func(id string) row {
		var r row
		_ = pool.QueryRow(context.Background(),
			`SELECT count(*), count(DISTINCT version), coalesce(max(version), 0) FROM sync_events WHERE session_id = $1`, id).
			Scan(&r.rows, &r.distinct, &r.top)
		return r
	}
	servertest.WaitFor(t, 20*time.Second, "every event in PostgreSQL", func() bool {
		for id, v := range want {
			if read(id).rows < v {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // room for a duplicate
	for id, v := range want {
		if r := read(id); r.rows != v || r.distinct != v || r.top != v {
			t.Errorf("%s: %d rows, %d distinct versions, top %d; want versions 1..%d once each", id, r.rows, r.distinct, r.top, v)
		}
	}
}
