package main

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestAPIIdempotencyKey drives the header over HTTP: a repeat gets the
// same status and body with Idempotent-Replayed, another request under the
// key is 422, a bad key is 400, and none of them changes the session.
func TestAPIIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := startAPI(t, nil, nil)
	id, parts, body := newSessionBody(2, "")
	key := []string{"Idempotency-Key", "create-" + id}
	first := doReq(t, "POST", s.base+"/v1/sessions", body, key...)
	again := doReq(t, "POST", s.base+"/v1/sessions", body, key...)
	if first.status != 201 || again.status != 201 || !bytes.Equal(first.body, again.body) {
		t.Fatalf("create twice under one key: %d %s / %d %s", first.status, first.body, again.status, again.body)
	}
	if first.header.Get("Idempotent-Replayed") != "" || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("Idempotent-Replayed: %q then %q", first.header.Get("Idempotent-Replayed"), again.header.Get("Idempotent-Replayed"))
	}
	// the draft's quoted form names the same key
	if r := doReq(t, "POST", s.base+"/v1/sessions", body, "Idempotency-Key", `"create-`+id+`"`); r.status != 201 || !bytes.Equal(r.body, first.body) {
		t.Errorf("quoted key: %d %s", r.status, r.body)
	}
	doReq(t, "POST", s.base+"/v1/sessions/"+id+"/start", "")
	sw := s.base + "/v1/sessions/" + id + "/switch"
	swKey := []string{"Idempotency-Key", "switch-1"}
	a := doReq(t, "POST", sw, `{"current_participant_id":"`+parts[0]+`"}`, swKey...)
	b := doReq(t, "POST", sw, `{"current_participant_id":"`+parts[0]+`"}`, swKey...)
	if a.status != 200 || b.status != 200 || !bytes.Equal(a.body, b.body) || b.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("switch twice under one key: %d %s / %d %s", a.status, a.body, b.status, b.body)
	}
	cases := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code                     string
	}{
		{"another body", "POST", "/switch", `{"current_participant_id":"` + parts[1] + `"}`, swKey, 422, "IDEMPOTENCY_KEY_REUSED"},
		{"another route", "POST", "/pause", "", swKey, 422, "IDEMPOTENCY_KEY_REUSED"},
		{"another precondition", "POST", "/switch", `{"current_participant_id":"` + parts[0] + `"}`,
			append([]string{"If-Match", "2"}, swKey...), 422, "IDEMPOTENCY_KEY_REUSED"},
		{"key too long", "POST", "/pause", "", []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, "VALIDATION_ERROR"},
		{"empty quoted key", "POST", "/pause", "", []string{"Idempotency-Key", `""`}, 400, "VALIDATION_ERROR"},
	}
	for _, c := range cases {
		r := doReq(t, c.method, s.base+"/v1/sessions/"+id+c.path, c.body, c.hdr...)
		if r.status != c.status || r.errCode(t).Error.Code != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
		}
	}
	if st := doReq(t, "GET", s.base+"/v1/sessions/"+id, "").state(t); num(st["version"]) != 3 || st["status"] != "running" {
		t.Errorf("after the refusals: version %v status %v, want 3 running", st["version"], st["status"])
	}
	// delete: 204 twice, the second replayed
	for i, want := range []string{"", "true"} {
		r := doReq(t, "DELETE", s.base+"/v1/sessions/"+id, "", "Idempotency-Key", "del-1")
		if r.status != 204 || r.header.Get("Idempotent-Replayed") != want {
			t.Errorf("delete %d: %d replayed %q", i, r.status, r.header.Get("Idempotent-Replayed"))
		}
	}
}

// stalled is a service on a private Redis that the test can freeze with
// SIGSTOP. Calls time out after 300 ms, so a stall is quick to provoke.
type stalled struct {
	api *apiServer
	pid int
}

func startStalled(t *testing.T) *stalled {
	t.Helper()
	addr, cmd := startRedisServer(t)
	s := &stalled{pid: cmd.Process.Pid}
	s.api = startAPI(t, map[string]string{"REDIS_URL": "redis://" + addr, "REDIS_TIMEOUT": "300ms"}, nil)
	t.Cleanup(func() { _ = syscall.Kill(s.pid, syscall.SIGCONT) })
	return s
}

// stop freezes Redis. It first leaves idle connections in the pool, as a
// busy service has: a re-send would go out on one of those (a fresh one
// would stall in its handshake before sending anything).
func (s *stalled) stop(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); doReq(t, "GET", s.api.base+"/v1/sessions/"+uuid.NewString(), "") }()
	}
	wg.Wait()
	if err := syscall.Kill(s.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

func (s *stalled) resume(t *testing.T) {
	if err := syscall.Kill(s.pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// TestStalledRedisAppliesOnce: a switch sent while Redis is frozen answers
// 503 OUTCOME_UNKNOWN, and once Redis runs again it has been applied
// exactly once (go-redis used to re-send it after its read timeout, and
// Redis then ran both). With an Idempotency-Key the retry gets the kept
// reply; without one, re-reading the state shows one turn passed. 20
// rounds of each.
func TestStalledRedisAppliesOnce(t *testing.T) {
	t.Parallel()
	st := startStalled(t)
	base := st.api.base
	for _, withKey := range []bool{true, false} {
		id, parts, body := newSessionBody(2, "")
		if r := doReq(t, "POST", base+"/v1/sessions", body); r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		if r := doReq(t, "POST", base+"/v1/sessions/"+id+"/start", ""); r.status != 200 {
			t.Fatalf("start: %d %s", r.status, r.body)
		}
		for round := range 20 {
			version := int64(round) + 2 // created at 1, started at 2
			key := []string{"Idempotency-Key", id + "-" + strconv.Itoa(round)}
			if !withKey {
				key = nil
			}
			// no current_participant_id: that guard alone would refuse a
			// second run as CONFLICT, and most clients do not send it
			sw := ""
			st.stop(t)
			r := doReq(t, "POST", base+"/v1/sessions/"+id+"/switch", sw, key...)
			// Retry-After is the advice; the stall outlasts it here
			time.Sleep(100 * time.Millisecond)
			st.resume(t)
			if r.status != 503 || r.errCode(t).Error.Code != "OUTCOME_UNKNOWN" || r.header.Get("Retry-After") == "" {
				t.Fatalf("key=%v round %d: switch in a stall: %d %s", withKey, round, r.status, r.body)
			}
			if withKey {
				again := doReq(t, "POST", base+"/v1/sessions/"+id+"/switch", sw, key...)
				if again.status != 200 || again.header.Get("Idempotent-Replayed") != "true" ||
					num(again.state(t)["version"]) != version+1 {
					t.Fatalf("round %d: retry under the key: %d %s", round, again.status, again.body)
				}
			}
			got := doReq(t, "GET", base+"/v1/sessions/"+id, "").state(t)
			if num(got["version"]) != version+1 || got["active_participant_id"] != parts[(round+1)%2] {
				t.Fatalf("key=%v round %d: version %v active %v, want %d %s: applied %d times",
					withKey, round, got["version"], got["active_participant_id"], version+1, parts[(round+1)%2],
					num(got["version"])-version)
			}
		}
	}
	// a create in a stall is not answered 409 for the session it made
	id, _, body := newSessionBody(2, "")
	key := []string{"Idempotency-Key", "create-" + id}
	st.stop(t)
	r := doReq(t, "POST", base+"/v1/sessions", body, key...)
	st.resume(t)
	if r.status != 503 {
		t.Fatalf("create in a stall: %d %s", r.status, r.body)
	}
	if r := doReq(t, "POST", base+"/v1/sessions", body, key...); r.status != 201 || r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("create retried under its key: %d %s", r.status, r.body)
	}
}

// TestReadyDuringStall: /ready answers 503 within its bound while Redis
// hangs, and a read answers 503 UNAVAILABLE.
func TestReadyDuringStall(t *testing.T) {
	t.Parallel()
	st := startStalled(t)
	st.stop(t)
	defer st.resume(t)
	var wg sync.WaitGroup
	var ready, get apiResp
	var readyTook time.Duration
	wg.Add(2)
	go func() {
		defer wg.Done()
		start := time.Now()
		ready = doReq(t, "GET", st.api.base+"/ready", "")
		readyTook = time.Since(start)
	}()
	go func() {
		defer wg.Done()
		get = doReq(t, "GET", st.api.base+"/v1/sessions/"+uuid.NewString(), "")
	}()
	wg.Wait()
	// the bound is readyTimeout; the margin is for a loaded machine, and
	// before the fix the probe hung for the 3 s read timeout plus retries
	if ready.status != 503 || readyTook > readyTimeout+900*time.Millisecond {
		t.Errorf("/ready in a stall: %d after %v (bound %v)", ready.status, readyTook, readyTimeout)
	}
	if get.status != 503 || get.errCode(t).Error.Code != "UNAVAILABLE" {
		t.Errorf("GET in a stall: %d %s", get.status, get.body)
	}
}

// TestRedisUnreachable: with Redis gone, every route that needs it
// answers 503 UNAVAILABLE with Retry-After, and no address or driver text
// reaches the client.
func TestRedisUnreachable(t *testing.T) {
	t.Parallel()
	addr, cmd := startRedisServer(t)
	s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + addr}, nil)
	id, _, body := newSessionBody(2, "")
	if r := doReq(t, "POST", s.base+"/v1/sessions", body); r.status != 201 {
		t.Fatalf("create: %d", r.status)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/sessions", body},
		{"GET", "/v1/sessions/" + id, ""},
		{"POST", "/v1/sessions/" + id + "/start", ""},
		{"POST", "/v1/sessions/" + id + "/switch", ""},
		{"DELETE", "/v1/sessions/" + id, ""},
	} {
		r := doReq(t, c.method, s.base+c.path, c.body)
		if r.status != 503 || r.errCode(t).Error.Code != "UNAVAILABLE" || r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
		}
		if strings.Contains(string(r.body), "127.0.0.1") || strings.Contains(string(r.body), "dial") {
			t.Errorf("%s %s leaks the cause: %s", c.method, c.path, r.body)
		}
	}
	if !strings.Contains(s.logs.String(), "connection refused") {
		t.Error("the log lost the cause")
	}
}
