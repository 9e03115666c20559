package main

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/handlers"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/metricslint"
	"github.com/synckairos/synckairos/servertest"
)

// backends: the embedded dev-mode Redis and the machine's real one.
var apiBackends = []struct {
	name string
	env  map[string]string
}{
	{"embedded", nil},
	{"redis", map[string]string{"REDIS_URL": "redis://" + servertest.RedisAddr()}},
}

func TestAPILifecycle(t *testing.T) {
	for _, be := range apiBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := startAPI(t, be.env, nil)
			id, parts, body := newSessionBody(3, `,"total_time_ms":200000`)
			u := s.base + "/v1/sessions/" + id

			r := doReq(t, "POST", s.base+"/v1/sessions", body)
			if r.status != 201 {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			st := r.state(t)
			if st["status"] != "pending" || num(st["version"]) != 1 || num(st["total_time_ms"]) != 200000 || st["session_id"] != id {
				t.Fatalf("created state: %v", st)
			}
			if r.header.Get("Content-Type") != "application/json" || r.header.Get("X-Request-Id") == "" {
				t.Fatalf("headers: %v", r.header)
			}

			r = doReq(t, "GET", u, "")
			if r.status != 200 || num(r.state(t)["version"]) != 1 {
				t.Fatalf("get: %d %s", r.status, r.body)
			}
			r = doReq(t, "POST", u+"/start", "")
			if st = r.state(t); r.status != 200 || st["status"] != "running" || st["active_participant_id"] != parts[0] {
				t.Fatalf("start: %d %s", r.status, r.body)
			}
			r = doReq(t, "POST", u+"/switch", `{"expected_version":2}`)
			if st = r.state(t); r.status != 200 || st["active_participant_id"] != parts[1] || num(st["version"]) != 3 ||
				st["cycle_started_at"] == nil || len(st["participants"].([]any)) != 3 {
				t.Fatalf("switch: %d %s", r.status, r.body)
			}
			r = doReq(t, "POST", u+"/switch", `{"next_participant_id":"`+parts[0]+`","current_participant_id":"`+parts[1]+`"}`)
			if st = r.state(t); r.status != 200 || st["active_participant_id"] != parts[0] {
				t.Fatalf("switch to chosen: %d %s", r.status, r.body)
			}
			r = doReq(t, "POST", u+"/pause", "", "If-Match", `"4"`)
			if st = r.state(t); r.status != 200 || st["status"] != "paused" {
				t.Fatalf("pause: %d %s", r.status, r.body)
			}
			r = doReq(t, "POST", u+"/resume", `{"expected_version":5}`)
			if st = r.state(t); r.status != 200 || st["status"] != "running" {
				t.Fatalf("resume: %d %s", r.status, r.body)
			}
			r = doReq(t, "POST", u+"/complete", "")
			if st = r.state(t); r.status != 200 || st["status"] != "completed" || st["session_completed_at"] == nil {
				t.Fatalf("complete: %d %s", r.status, r.body)
			}
			r = doReq(t, "DELETE", u, "")
			if r.status != 204 || len(r.body) != 0 {
				t.Fatalf("delete: %d %q", r.status, r.body)
			}
			if r = doReq(t, "GET", u, ""); r.status != 404 {
				t.Fatalf("get after delete: %d %s", r.status, r.body)
			}
			if r = doReq(t, "DELETE", u, ""); r.status != 204 {
				t.Fatalf("delete again: %d %s", r.status, r.body)
			}
		})
	}
}

// apiSession creates (and with start, starts) a 2-participant session.
func apiSession(t *testing.T, s *apiServer, start bool) (string, []string) {
	t.Helper()
	id, parts, body := newSessionBody(2, "")
	if r := doReq(t, "POST", s.base+"/v1/sessions", body); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if start {
		if r := doReq(t, "POST", s.base+"/v1/sessions/"+id+"/start", ""); r.status != 200 {
			t.Fatalf("start: %d %s", r.status, r.body)
		}
	}
	return id, parts
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	s := startAPI(t, map[string]string{"BODY_LIMIT_BYTES": "4096"}, nil)
	sess := func(start bool) string { id, _ := apiSession(t, s, start); return s.base + "/v1/sessions/" + id }
	_, _, validBody := newSessionBody(2, "")
	if r := doReq(t, "POST", s.base+"/v1/sessions", validBody); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	cases := []struct {
		name           string
		method, url    string
		body           string
		hdr            []string
		status         int
		code           string
		detailContains []string
	}{
		{"unknown session", "GET", s.base + "/v1/sessions/" + uuid.NewString(), "", nil, 404, "SESSION_NOT_FOUND", []string{"session_id"}},
		{"unknown session start", "POST", s.base + "/v1/sessions/" + uuid.NewString() + "/start", "", nil, 404, "SESSION_NOT_FOUND", nil},
		{"bad uuid in path", "GET", s.base + "/v1/sessions/abc", "", nil, 400, "VALIDATION_ERROR", []string{`"field":"id"`}},
		{"bad uuid in path switch", "POST", s.base + "/v1/sessions/abc/switch", "", nil, 400, "VALIDATION_ERROR", []string{`"field":"id"`}},
		{"invalid create lists every field", "POST", s.base + "/v1/sessions", `{"session_id":"x","sync_mode":"y","participants":[],"bogus":1}`, nil, 400, "VALIDATION_ERROR",
			[]string{`"field":"session_id"`, `"field":"sync_mode"`, `"field":"participants"`, `"field":"body"`}},
		{"malformed JSON", "POST", s.base + "/v1/sessions", `{"session_id":`, nil, 400, "VALIDATION_ERROR", []string{"Malformed JSON"}},
		{"ill-typed switch", "POST", sess(true) + "/switch", `{"expected_version":"2"}`, nil, 400, "VALIDATION_ERROR", []string{"expected_version"}},
		{"unknown switch field", "POST", sess(true) + "/switch", `{"next":"x"}`, nil, 400, "VALIDATION_ERROR", []string{"Unrecognized"}},
		{"oversize body", "POST", s.base + "/v1/sessions", `{"metadata":"` + strings.Repeat("x", 5000) + `"}`, nil, 400, "VALIDATION_ERROR", []string{"size limit"}},
		{"existing session", "POST", s.base + "/v1/sessions", validBody, nil, 409, "SESSION_EXISTS", []string{"session_id"}},
		{"start twice", "POST", sess(true) + "/start", "", nil, 400, "INVALID_STATE_TRANSITION", []string{"from"}},
		{"pause pending", "POST", sess(false) + "/pause", "", nil, 400, "INVALID_STATE_TRANSITION", nil},
		{"switch pending", "POST", sess(false) + "/switch", "", nil, 400, "INVALID_STATE_TRANSITION", nil},
		{"resume running", "POST", sess(true) + "/resume", "", nil, 400, "INVALID_STATE_TRANSITION", nil},
		{"unknown participant", "POST", sess(true) + "/switch", `{"next_participant_id":"` + uuid.NewString() + `"}`, nil, 400, "PARTICIPANT_NOT_FOUND", []string{"participant_id"}},
		{"stale version", "POST", sess(true) + "/switch", `{"expected_version":1}`, nil, 409, "CONFLICT", []string{`"expected_version":1`, `"actual_version":2`}},
		{"stale If-Match", "POST", sess(true) + "/pause", "", []string{"If-Match", `"7"`}, 409, "CONFLICT", []string{`"expected_version":7`, `"actual_version":2`}},
		{"not your turn", "POST", sess(true) + "/switch", `{"current_participant_id":"` + uuid.NewString() + `"}`, nil, 409, "CONFLICT", []string{"active_participant_id", "actual_version"}},
		{"If-Match disagrees with body", "POST", sess(true) + "/pause", `{"expected_version":2}`, []string{"If-Match", "3"}, 400, "VALIDATION_ERROR", []string{"If-Match"}},
		{"unknown route", "GET", s.base + "/v2/nothing", "", nil, 404, "NOT_FOUND", nil},
		{"wrong method", "PUT", s.base + "/v1/sessions", "", nil, 405, "METHOD_NOT_ALLOWED", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := doReq(t, tc.method, tc.url, tc.body, tc.hdr...)
			e := r.errCode(t)
			if r.status != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Errorf("no X-Request-Id on %d %s", r.status, r.body)
			}
			for _, want := range tc.detailContains {
				if !bytes.Contains(e.Error.Details, []byte(want)) {
					t.Errorf("details %s lack %q", e.Error.Details, want)
				}
			}
			if tc.code == "VALIDATION_ERROR" {
				var list []handlers.FieldError
				if err := json.Unmarshal(e.Error.Details, &list); err != nil || len(list) == 0 {
					t.Errorf("validation details %s are not [{field,message}]: %v", e.Error.Details, err)
				}
			}
		})
	}
	t.Run("unreadable requests are counted", func(t *testing.T) {
		m := string(doReq(t, "GET", s.base+"/metrics", "").body)
		if !strings.Contains(m, `synckairos_http_requests_total{method="ANY",route="unreadable",status_code="400"} 1`) {
			t.Errorf("the oversize body is not counted:\n%s", grepLines(m, "http_requests_total"))
		}
	})
	t.Run("complete from pending", func(t *testing.T) {
		r := doReq(t, "POST", sess(false)+"/complete", "")
		if r.status != 200 || r.state(t)["status"] != "completed" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("errors are logged with request id and cause", func(t *testing.T) {
		doReq(t, "GET", s.base+"/v1/sessions/"+uuid.NewString(), "", "X-Request-Id", "trace-me-42")
		waitFor(t, 2*time.Second, "log line", func() bool {
			for _, l := range strings.Split(s.logs.String(), "\n") {
				if strings.Contains(l, `"request_id":"trace-me-42"`) && strings.Contains(l, `"error":"SESSION_NOT_FOUND`) &&
					strings.Contains(l, `"route":"/v1/sessions/{id}"`) && strings.Contains(l, `"status":404`) {
					return true
				}
			}
			return false
		})
	})
}

// TestAPIStreamFull: a full audit stream refuses transitions with 503.
func TestAPIStreamFull(t *testing.T) {
	t.Parallel()
	s := startCappedAPI(t, 1) // the create fills the shard's stream
	id, _ := apiSession(t, s, false)
	r := doReq(t, "POST", s.base+"/v1/sessions/"+id+"/start", "")
	if e := r.errCode(t); r.status != 503 || e.Error.Code != "STREAM_FULL" || r.header.Get("Retry-After") == "" {
		t.Fatalf("got %d %s %v", r.status, r.body, r.header)
	}
}

// startCappedAPI runs a server on a Redis of its own whose audit flag says
// a cap of n events per shard's stream.
func startCappedAPI(t *testing.T, n int) *apiServer {
	t.Helper()
	addr, _ := startRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if err := rdb.Set(context.Background(), keyspace.Audit, n, 0).Err(); err != nil {
		t.Fatal(err)
	}
	return startAPI(t, map[string]string{"REDIS_URL": "redis://" + addr}, nil)
}

// TestAPIInternalErrors: panics become 500 INTERNAL_ERROR, with the cause
// in the body only with DEBUG_ERRORS=true (and never in production); the
// log has it, with the request id, either way.
func TestAPIInternalErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		show bool
	}{
		{"default", nil, false},
		{"DEBUG_ERRORS", map[string]string{"DEBUG_ERRORS": "true"}, true},
		{"PRODUCTION=false", map[string]string{"PRODUCTION": "false"}, false},
		{"PRODUCTION_wins", map[string]string{"DEBUG_ERRORS": "true", "PRODUCTION": "true"}, false},
		{"NODE_ENV_wins", map[string]string{"DEBUG_ERRORS": "true", "NODE_ENV": "production"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startAPI(t, tc.env, func(*Config) {})
			s.app.handle("GET", "/test/panic", handlers.RouteOpts{}, func(*fasthttp.RequestCtx) { panic(errors.New("secret detail")) })
			s.app.handle("GET", "/test/fail", handlers.RouteOpts{}, func(ctx *fasthttp.RequestCtx) {
				s.app.errs.Write(ctx, errors.New("dial tcp: secret detail"))
			})
			for _, path := range []string{"/test/panic", "/test/fail"} {
				r := doReq(t, "GET", s.base+path, "", "X-Request-Id", "req-"+tc.name+path)
				e := r.errCode(t)
				if r.status != 500 || e.Error.Code != "INTERNAL_ERROR" {
					t.Fatalf("%s: %d %s", path, r.status, r.body)
				}
				if shown := strings.Contains(e.Error.Message, "secret"); shown != tc.show {
					t.Fatalf("%s: message %q, want the cause shown: %v", path, e.Error.Message, tc.show)
				}
				if line := grepLines(s.logs.String(), `"request_id":"req-`+tc.name+path+`"`); !strings.Contains(line, "secret detail") {
					t.Fatalf("%s: the log line lacks the cause: %q", path, line)
				}
			}
			// a panic is counted and logged like any other request
			m := string(doReq(t, "GET", s.base+"/metrics", "").body)
			if !strings.Contains(m, `synckairos_http_requests_total{method="GET",route="/test/panic",status_code="500"} 1`) {
				t.Errorf("the panic is not counted:\n%s", grepLines(m, "http_requests_total"))
			}
			if !strings.Contains(s.logs.String(), `"route":"/test/panic","status":500`) {
				t.Errorf("the panic has no request log line:\n%s", s.logs.String())
			}
		})
	}
}

// TestAPIConcurrentSwitches: 50 switches carrying the same expected_version
// at once: exactly one wins, 49 get 409.
func TestAPIConcurrentSwitches(t *testing.T) {
	for _, be := range apiBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			s := startAPI(t, be.env, nil)
			id, _ := apiSession(t, s, true)
			var wg sync.WaitGroup
			codes := make([]int, 50)
			start := make(chan struct{})
			for i := range codes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					r, err := tryReq("POST", s.base+"/v1/sessions/"+id+"/switch", `{"expected_version":2}`)
					if err != nil {
						t.Error(err)
						return
					}
					codes[i] = r.status
				}()
			}
			close(start)
			wg.Wait()
			count := map[int]int{}
			for _, c := range codes {
				count[c]++
			}
			if count[200] != 1 || count[409] != 49 {
				t.Fatalf("statuses %v, want one 200 and 49 409", count)
			}
			if r := doReq(t, "GET", s.base+"/v1/sessions/"+id, ""); num(r.state(t)["version"]) != 3 {
				t.Fatalf("version after the race: %s", r.body)
			}
		})
	}
}

func TestAPIRateLimits(t *testing.T) {
	t.Run("per IP", func(t *testing.T) {
		t.Parallel()
		s := startAPI(t, map[string]string{"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_IP_MAX": "3", "RATE_LIMIT_IP_WINDOW": "1500ms"}, nil)
		u := s.base + "/v1/sessions/" + uuid.NewString()
		for i := 0; i < 3; i++ {
			r := doReq(t, "GET", u, "")
			if r.status != 404 || r.header.Get("RateLimit-Limit") != "3" || r.header.Get("RateLimit-Remaining") != strconv.Itoa(2-i) {
				t.Fatalf("request %d: %d %v", i, r.status, r.header)
			}
		}
		r := doReq(t, "GET", u, "")
		ra, _ := strconv.Atoi(r.header.Get("Retry-After"))
		if r.status != 429 || r.errCode(t).Error.Code != "RATE_LIMITED" || ra < 1 || r.header.Get("RateLimit-Remaining") != "0" {
			t.Fatalf("4th: %d %s %v", r.status, r.body, r.header)
		}
		for _, p := range []string{"/v1/time", "/health", "/ready", "/metrics"} {
			if r := doReq(t, "GET", s.base+p, ""); r.status != 200 {
				t.Fatalf("exempt %s: %d", p, r.status)
			}
		}
		time.Sleep(time.Duration(ra) * time.Second)
		if r := doReq(t, "GET", u, ""); r.status != 404 {
			t.Fatalf("after Retry-After: %d %s", r.status, r.body)
		}
	})
	// The budget is the client's (clientip.Of): its X-Forwarded-For entry
	// behind a trusted proxy, else the peer, whatever the header says.
	for _, trust := range []bool{true, false} {
		t.Run("per IP, TRUST_PROXY="+strconv.FormatBool(trust), func(t *testing.T) {
			t.Parallel()
			s := startAPI(t, map[string]string{"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_IP_MAX": "1",
				"RATE_LIMIT_IP_WINDOW": "1m", "TRUST_PROXY": strconv.FormatBool(trust)}, nil)
			u := s.base + "/v1/sessions/" + uuid.NewString()
			want := []int{404, 429, 404}
			if !trust {
				want = []int{404, 429, 429}
			}
			for i, xff := range []string{"203.0.113.1", "203.0.113.1, 10.0.0.9", "203.0.113.2"} {
				if r := doReq(t, "GET", u, "", "X-Forwarded-For", xff); r.status != want[i] {
					t.Errorf("X-Forwarded-For %s: %d, want %d", xff, r.status, want[i])
				}
			}
		})
	}
	// On a single Redis the switch charges the caller's budget in its own
	// script call (one EVALSHA, not the limiter's and then the switch's),
	// and answers as the limiter did: every request costs one, a switch the
	// server refuses before Redis (a bad body or id) included, and a spent
	// budget is a 429 that changes nothing, whatever the request.
	t.Run("per IP, charged by the switch itself", func(t *testing.T) {
		t.Parallel()
		addr, _ := startRedisServer(t)
		s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + addr, "RATE_LIMIT_ENABLED": "true",
			"RATE_LIMIT_IP_MAX": "7", "RATE_LIMIT_IP_WINDOW": "1h", "RATE_LIMIT_SWITCH_MAX": "100"}, nil)
		free := startAPI(t, map[string]string{"REDIS_URL": "redis://" + addr}, nil) // limits off: to look
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		defer rdb.Close()
		id, _ := apiSession(t, s, true) // 2 of the 7
		sw := s.base + "/v1/sessions/" + id + "/switch"
		steps := []struct {
			name, url, body string
			status          int
			remaining       string
			version         int64 // the session's after the request
		}{
			{"a switch", sw, "", 200, "4", 3},
			{"a bad body", sw, `{"next_participant_id":5}`, 400, "3", 3},
			{"a bad id", s.base + "/v1/sessions/not-a-uuid/switch", "", 400, "2", 3},
			{"a switch", sw, "", 200, "1", 4},
			{"the last", sw, "", 200, "0", 5},
			{"spent", sw, "", 429, "0", 5},
			{"spent, a bad body", sw, `{"next_participant_id":5}`, 429, "0", 5},
		}
		for _, st := range steps {
			before, err := servertest.CommandStats(context.Background(), rdb)
			if err != nil {
				t.Fatal(err)
			}
			r := doReq(t, "POST", st.url, st.body)
			after, _ := servertest.CommandStats(context.Background(), rdb)
			if r.status != st.status || r.header.Get("RateLimit-Limit") != "7" || r.header.Get("RateLimit-Remaining") != st.remaining {
				t.Fatalf("%s: %d %s %v, want %d remaining %s", st.name, r.status, r.body, r.header, st.status, st.remaining)
			}
			if st.status == 429 && (r.errCode(t).Error.Code != "RATE_LIMITED" || r.header.Get("Retry-After") == "") {
				t.Fatalf("%s: %s %v", st.name, r.body, r.header)
			}
			if n := after["evalsha"].Calls - before["evalsha"].Calls; n != 1 {
				t.Errorf("%s: %d script calls, want 1", st.name, n)
			}
			if v := num(doReq(t, "GET", free.base+"/v1/sessions/"+id, "").state(t)["version"]); v != st.version {
				t.Fatalf("%s: version %d, want %d", st.name, v, st.version)
			}
		}
	})
	t.Run("per session switch", func(t *testing.T) {
		t.Parallel()
		s := startAPI(t, map[string]string{"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_SWITCH_MAX": "2", "RATE_LIMIT_SWITCH_WINDOW": "1s"}, nil)
		a, _ := apiSession(t, s, true)
		b, _ := apiSession(t, s, true)
		for i := 0; i < 2; i++ {
			if r := doReq(t, "POST", s.base+"/v1/sessions/"+a+"/switch", ""); r.status != 200 {
				t.Fatalf("switch %d: %d %s", i, r.status, r.body)
			}
		}
		r := doReq(t, "POST", s.base+"/v1/sessions/"+a+"/switch", "")
		if r.status != 429 || r.header.Get("Retry-After") != "1" {
			t.Fatalf("3rd switch: %d %v", r.status, r.header)
		}
		if r := doReq(t, "POST", s.base+"/v1/sessions/"+b+"/switch", ""); r.status != 200 {
			t.Fatalf("other session: %d %s", r.status, r.body)
		}
		if r := doReq(t, "GET", s.base+"/v1/sessions/"+a, ""); r.status != 200 || num(r.state(t)["version"]) != 4 {
			t.Fatalf("the refused switch ran: %s", r.body)
		}
	})
}

func TestAPITimeAndHealth(t *testing.T) {
	t.Parallel()
	s := startAPI(t, nil, nil)
	if r := doReq(t, "GET", s.base+"/health", ""); r.status != 200 || string(r.body) != `{"status":"ok"}` {
		t.Fatalf("health: %d %s", r.status, r.body)
	}
	if r := doReq(t, "GET", s.base+"/ready", ""); r.status != 200 || !bytes.Contains(r.body, []byte(`"redis":"ok"`)) {
		t.Fatalf("ready: %d %s", r.status, r.body)
	}
	var prevMS, prevUS int64
	for i := 0; i < 200; i++ {
		r := doReq(t, "GET", s.base+"/v1/time", "")
		// int64 fields: a typed client of the original (Date.now()) must
		// decode timestamp_ms unchanged
		var tm struct {
			TS      int64  `json:"timestamp_ms"`
			Version string `json:"server_version"`
			Drift   int    `json:"drift_tolerance_ms"`
			US      int64  `json:"timestamp_us"`
			Recv    int64  `json:"server_received_us"`
			Sent    int64  `json:"server_sent_us"`
		}
		if err := json.Unmarshal(r.body, &tm); err != nil {
			t.Fatalf("%s: %v", r.body, err)
		}
		if tm.Version != "2.0.0" || tm.Drift != 50 || tm.TS != tm.US/1000 ||
			!(tm.Recv < tm.US && tm.US < tm.Sent) || tm.US <= prevUS || tm.TS < prevMS {
			t.Fatalf("time %d: %s (previous %d ms, %d µs)", i, r.body, prevMS, prevUS)
		}
		prevMS, prevUS = tm.TS, tm.US
	}
	// Same clock as the state: a session created now carries server_time_ms
	// between two /v1/time readings (ms resolution, both from Redis TIME).
	// (the GET's state is read at the GET, so the second reading follows it)
	before := timeMS(t, s)
	id, _ := apiSession(t, s, false)
	st := doReq(t, "GET", s.base+"/v1/sessions/"+id, "").state(t)
	after := timeMS(t, s)
	if c := num(st["server_time_ms"]); c < before-1 || c > after+1 {
		t.Fatalf("state time %v not within /v1/time readings [%v, %v]", c, before, after)
	}
}

// TestAPITimeFollowsRedis moves the embedded Redis's clock an hour away
// from the host's: /v1/time and the states follow Redis, not the host.
func TestAPITimeFollowsRedis(t *testing.T) {
	t.Parallel()
	s := startAPI(t, nil, nil)
	skew := time.Now().Add(time.Hour)
	s.app.embedded.SetTime(skew) // miniredis's TIME now reads skew (frozen)
	if err := s.app.clock.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := skew.UnixMilli()
	if got := timeMS(t, s); got < want || got > want+1000 {
		t.Fatalf("/v1/time %d, Redis TIME %d (host %d)", got, want, time.Now().UnixMilli())
	}
	id, _ := apiSession(t, s, false)
	st := doReq(t, "GET", s.base+"/v1/sessions/"+id, "").state(t)
	if got := num(st["server_time_ms"]); got != want {
		t.Fatalf("state server_time_ms %d, Redis TIME %d", got, want)
	}
}

func timeMS(t *testing.T, s *apiServer) int64 {
	var tm struct {
		TS int64 `json:"timestamp_ms"`
	}
	if err := json.Unmarshal(doReq(t, "GET", s.base+"/v1/time", "").body, &tm); err != nil {
		t.Fatal(err)
	}
	return tm.TS
}

func TestAPICORS(t *testing.T) {
	t.Parallel()
	s := startAPI(t, map[string]string{"CORS_ORIGINS": "https://a.example, https://b.example"}, nil)
	r := doReq(t, "GET", s.base+"/health", "", "Origin", "https://b.example")
	if r.header.Get("Access-Control-Allow-Origin") != "https://b.example" || r.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("allowed origin: %v", r.header)
	}
	if r := doReq(t, "GET", s.base+"/health", "", "Origin", "https://evil.example"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("other origin allowed: %v", r.header)
	}
	r = doReq(t, "OPTIONS", s.base+"/v1/sessions/x/switch", "", "Origin", "https://a.example", "Access-Control-Request-Method", "POST")
	if r.status != 204 || !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "If-Match") {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
}

func TestAPIMetrics(t *testing.T) {
	t.Parallel()
	s := startAPI(t, nil, nil)
	id, _ := apiSession(t, s, true)
	for i := 0; i < 3; i++ {
		doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch", "")
	}
	doReq(t, "GET", s.base+"/v1/sessions/"+uuid.NewString(), "")
	r := doReq(t, "GET", s.base+"/metrics", "")
	text := string(r.body)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("metrics: %d %v", r.status, r.header)
	}
	for _, want := range []string{
		`synckairos_http_requests_total{method="POST",route="/v1/sessions/{id}/switch",status_code="200"} 3`,
		`synckairos_http_requests_total{method="GET",route="/v1/sessions/{id}",status_code="404"} 1`,
		`synckairos_http_requests_total{method="POST",route="/v1/sessions",status_code="201"} 1`,
		`# TYPE synckairos_http_request_duration_ms histogram`,
		`synckairos_http_request_duration_ms_bucket{method="POST",route="/v1/sessions/{id}/switch",le="1000"} 3`,
		`synckairos_http_request_duration_ms_bucket{method="POST",route="/v1/sessions/{id}/switch",le="+Inf"} 3`,
		`synckairos_http_request_duration_ms_count{method="POST",route="/v1/sessions/{id}/switch"} 3`,
		`synckairos_http_request_duration_ms_sum{method="POST",route="/v1/sessions/{id}/switch"}`,
		`# TYPE synckairos_switch_cycle_duration_ms histogram`,
		`synckairos_switch_cycle_duration_ms_bucket{le="+Inf"} 3`, // not le="50": no timed assertions
		`synckairos_switch_cycle_duration_ms_count 3`,
		"go_goroutines ", "go_memstats_alloc_bytes ", "process_resident_memory_bytes ", "process_cpu_seconds_total ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, le := range []string{"1", "5", "10", "25", "50", "100", "250", "500", "1000"} {
		if !strings.Contains(text, `synckairos_http_request_duration_ms_bucket{method="POST",route="/v1/sessions/{id}/switch",le="`+le+`"}`) {
			t.Errorf("request duration lacks bucket le=%s", le)
		}
	}
	for _, le := range []string{"1", "2", "3", "5", "10", "25", "50"} {
		if !strings.Contains(text, `synckairos_switch_cycle_duration_ms_bucket{le="`+le+`"}`) {
			t.Errorf("switch duration lacks bucket le=%s", le)
		}
	}
	metricsCheck(t, r.body)
}

// metricsCheck fails the test when Prometheus's parser refuses the page or
// promlint finds a naming problem we could act on (metricslint.Accepted).
func metricsCheck(t *testing.T, text []byte) {
	t.Helper()
	problems, err := metricslint.Check(text)
	if err != nil {
		t.Fatalf("metrics format: %v\n%s", err, text)
	}
	for _, p := range problems {
		t.Errorf("metrics lint: %s", p)
	}
}

// TestAPIReadyRedisDown: /ready turns 503, naming redis, when Redis dies.
func TestAPIReadyRedisDown(t *testing.T) {
	t.Parallel()
	addr, cmd := startRedisServer(t)
	s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + addr}, nil)
	if r := doReq(t, "GET", s.base+"/ready", ""); r.status != 200 {
		t.Fatalf("ready: %d %s", r.status, r.body)
	}
	s.app.addReady("postgres", func(context.Context) error { return nil }) // a component's check joins the same list
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	r := doReq(t, "GET", s.base+"/ready", "")
	var body struct {
		Status string            `json:"status"`
		Failed []string          `json:"failed"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if r.status != 503 || body.Status != "unavailable" || len(body.Failed) != 1 || body.Failed[0] != "redis" || body.Checks["postgres"] != "ok" {
		t.Fatalf("ready with Redis down: %d %s", r.status, r.body)
	}
	if r := doReq(t, "GET", s.base+"/health", ""); r.status != 200 {
		t.Fatalf("health must not depend on Redis: %d", r.status)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAPIWarnsOnEvictingRedis: a Redis that may evict keys is named at
// start; noeviction is not.
func TestAPIWarnsOnEvictingRedis(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy string
		warn   bool
	}{{"noeviction", false}, {"allkeys-lru", true}} {
		t.Run(tc.policy, func(t *testing.T) {
			t.Parallel()
			addr, _ := startRedisServer(t)
			rdb := redis.NewClient(&redis.Options{Addr: addr})
			defer rdb.Close()
			if err := rdb.ConfigSet(context.Background(), "maxmemory-policy", tc.policy).Err(); err != nil {
				t.Fatal(err)
			}
			s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + addr}, nil)
			if got := strings.Contains(s.logs.String(), "maxmemory-policy is "+tc.policy); got != tc.warn {
				t.Errorf("policy %s: warned %v, want %v:\n%s", tc.policy, got, tc.warn, s.logs.String())
			}
		})
	}
}
