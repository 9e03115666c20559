package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	json "github.com/goccy/go-json"
	"github.com/google/uuid"

	"github.com/synckairos/synckairos/pgtest"
	"github.com/synckairos/synckairos/servertest"
)

// TestAPIIDCase: upper- and lower-case spellings of a UUID are one
// session: one state in Redis, one WebSocket audience, one history in
// PostgreSQL.
func TestAPIIDCase(t *testing.T) {
	t.Parallel()
	s, _, schema := persistingAPI(t)
	id, p1, p2, g := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	up := strings.ToUpper
	body := `{"session_id":"` + up(id) + `","sync_mode":"per_group","participants":[` +
		`{"participant_id":"` + up(p1) + `","participant_index":0,"total_time_ms":60000,"group_id":"` + up(g) + `"},` +
		`{"participant_id":"` + p2 + `","participant_index":1,"total_time_ms":60000,"group_id":"` + g + `"}]}`
	r := doReq(t, "POST", s.base+"/v1/sessions", body)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	st := r.state(t)
	parts := st["participants"].([]any)
	if st["session_id"] != id || parts[0].(map[string]any)["participant_id"] != p1 ||
		parts[0].(map[string]any)["group_id"] != g {
		t.Fatalf("ids not lower-cased: %s", r.body)
	}
	if r := doReq(t, "POST", s.base+"/v1/sessions", strings.Replace(body, up(id), id, 1)); r.status != 409 {
		t.Fatalf("create again in lower case: %d %s, want 409 SESSION_EXISTS", r.status, r.body)
	}
	if r := doReq(t, "GET", s.base+"/v1/sessions/"+id, ""); r.status != 200 {
		t.Fatalf("GET in lower case: %d %s", r.status, r.body)
	}

	addr := strings.TrimPrefix(s.base, "http://")
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?sessionId="+up(id), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if m := wsRead(t, c); m.Type != "CONNECTED" || m.SessionID != id {
		t.Fatalf("connected: %s", m.Raw)
	}
	if r := doReq(t, "POST", s.base+"/v1/sessions/"+up(id)+"/start", ""); r.status != 200 {
		t.Fatalf("start in upper case: %d %s", r.status, r.body)
	}
	r = doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch",
		`{"current_participant_id":"`+up(p1)+`","next_participant_id":"`+up(p2)+`"}`)
	if r.status != 200 || r.state(t)["active_participant_id"] != p2 {
		t.Fatalf("switch in lower case naming upper-case participants: %d %s", r.status, r.body)
	}
	for _, want := range []int64{2, 3} {
		if m := wsRead(t, c); m.Type != "STATE_UPDATE" || m.Version != want {
			t.Fatalf("client on the upper-case id, want version %d: %.200s", want, m.Raw)
		}
	}

	waitFor(t, 10*time.Second, "3 events in the history", func() bool {
		r := doReq(t, "GET", s.base+"/v1/sessions/"+up(id)+"/events", "")
		var page struct {
			Data []json.RawMessage `json:"data"`
		}
		_ = json.Unmarshal(r.body, &page)
		return r.status == 200 && len(page.Data) == 3
	})
	pool := pgPool(t, persistURL(pgtest.Addr(), schema))
	var ids []string
	rows, err := pool.Query(context.Background(), "SELECT DISTINCT session_id::text FROM sync_events")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s)
	}
	if rows.Err() != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("sync_events holds session ids %v (%v), want only %s", ids, rows.Err(), id)
	}
}

// rawReq sends body with exactly the Content-Type given ("" sends none).
func rawReq(t *testing.T, method, url, body, contentType string) apiResp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := servertest.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return apiResp{status: res.StatusCode, header: res.Header, body: b}
}

// TestAPIContentType: a mutating request with a body must say it is JSON,
// so that a cross-origin form or text/plain POST (which no preflight
// stops) changes nothing; a request without a body needs no Content-Type.
func TestAPIContentType(t *testing.T) {
	t.Parallel()
	s := startAPI(t, nil, nil)
	id, _ := apiSession(t, s, false)
	u := s.base + "/v1/sessions/" + id
	if r := rawReq(t, "POST", u+"/start", "", ""); r.status != 200 {
		t.Fatalf("start with no body and no Content-Type: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		ct   string
		want int
	}{
		{"text/plain", 415},
		{"text/plain;charset=UTF-8", 415},
		{"application/x-www-form-urlencoded", 415},
		{"multipart/form-data; boundary=x", 415},
		{"", 415},
		{"application/jsonp", 415},
		{"application/json-seq", 415},
		{"application/json", 200},
		{"Application/JSON; charset=utf-8", 200},
		{"application/json ; charset=UTF-8", 200},
	} {
		t.Run(tc.ct, func(t *testing.T) {
			before := num(doReq(t, "GET", u, "").state(t)["version"])
			r := rawReq(t, "POST", u+"/switch", `{}`, tc.ct)
			after := num(doReq(t, "GET", u, "").state(t)["version"])
			if r.status != tc.want {
				t.Fatalf("switch with Content-Type %q: %d %s, want %d", tc.ct, r.status, r.body, tc.want)
			}
			if tc.want == 415 {
				if e := r.errCode(t); e.Error.Code != "UNSUPPORTED_MEDIA_TYPE" || !strings.Contains(e.Error.Message, "application/json") {
					t.Fatalf("415 body: %s", r.body)
				}
				if after != before {
					t.Fatalf("a refused switch changed the session: version %d -> %d", before, after)
				}
			} else if after != before+1 {
				t.Fatalf("an accepted switch: version %d -> %d", before, after)
			}
		})
	}
	// every mutating route, create and delete included
	nid, _, body := newSessionBody(2, "")
	for _, c := range []struct{ method, url, body string }{
		{"POST", s.base + "/v1/sessions", body},
		{"POST", u + "/pause", `{"expected_version":9}`},
		{"DELETE", u, `{}`},
	} {
		if r := rawReq(t, c.method, c.url, c.body, "text/plain"); r.status != 415 {
			t.Fatalf("%s %s as text/plain: %d %s", c.method, c.url, r.status, r.body)
		}
	}
	if r := doReq(t, "GET", s.base+"/v1/sessions/"+nid, ""); r.status != 404 {
		t.Fatalf("a text/plain create made the session: %d", r.status)
	}
	if r := doReq(t, "GET", u, ""); r.status != 200 || r.state(t)["status"] != "running" {
		t.Fatalf("a text/plain pause or delete applied: %d %s", r.status, r.body)
	}
	if r := rawReq(t, "POST", u+"/pause", "", "text/plain"); r.status != 200 || r.state(t)["status"] != "paused" {
		t.Fatalf("pause with no body, whatever its Content-Type: %d %s", r.status, r.body)
	}
}

// TestAPICORSPolicy: the default "*" lets any site read, never with
// credentials; named origins are echoed with credentials.
func TestAPICORSPolicy(t *testing.T) {
	t.Parallel()
	def := startAPI(t, nil, nil)
	named := startAPI(t, map[string]string{"CORS_ORIGINS": "https://App.example/, https://b.example"}, nil)
	mixed := startAPI(t, map[string]string{"CORS_ORIGINS": "https://a.example,*"}, nil)
	for _, tc := range []struct {
		name         string
		s            *apiServer
		origin       string
		allow, creds string
	}{
		{"default", def, "https://evil.example", "*", ""},
		{"named", named, "https://app.example", "https://app.example", "true"},
		{"named other", named, "https://evil.example", "", ""},
		{"mixed named", mixed, "https://a.example", "https://a.example", "true"},
		{"mixed other", mixed, "https://evil.example", "*", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := doReq(t, "GET", tc.s.base+"/health", "", "Origin", tc.origin)
			h := r.header
			if h.Get("Access-Control-Allow-Origin") != tc.allow || h.Get("Access-Control-Allow-Credentials") != tc.creds ||
				!strings.Contains(h.Get("Vary"), "Origin") {
				t.Fatalf("headers: %v", h)
			}
			if tc.allow != "" && !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Idempotent-Replayed") {
				t.Fatalf("expose headers: %v", h)
			}
			r = doReq(t, "OPTIONS", tc.s.base+"/v1/sessions/x/switch", "", "Origin", tc.origin,
				"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type,idempotency-key")
			allowH := r.header.Get("Access-Control-Allow-Headers")
			if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != tc.allow ||
				tc.allow != "" && !(strings.Contains(allowH, "Idempotency-Key") && strings.Contains(allowH, "Authorization")) {
				t.Fatalf("preflight: %d %v", r.status, r.header)
			}
		})
	}
}

// TestAPIBadInput: what the decoder would get wrong is refused before any
// script runs, naming the field.
func TestAPIBadInput(t *testing.T) {
	t.Parallel()
	s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + servertest.RedisAddr()}, nil)
	id, _, body := newSessionBody(3, "")
	live, _ := apiSession(t, s, true)
	t.Cleanup(func() { doReq(t, "DELETE", s.base+"/v1/sessions/"+live, "") }) // a running session has no TTL
	for _, tc := range []struct {
		name, url, body string
		fields          map[string]string // field -> message prefix
	}{
		{"duplicate key", "/v1/sessions", strings.Replace(body, `"sync_mode"`, `"sync_mode":"global","sync_mode"`, 1),
			map[string]string{"sync_mode": "Duplicate key 'sync_mode'"}},
		{"duplicate nested key", "/v1/sessions", strings.Replace(body, `"participant_index":1`, `"participant_index":1,"participant_index":2`, 1),
			map[string]string{"participants.1.participant_index": "Duplicate key"}},
		{"duplicate participant_index", "/v1/sessions", strings.Replace(body, `"participant_index":2`, `"participant_index":0`, 1),
			map[string]string{"participants.0.participant_index": "Duplicate participant_index 0 (also participants.2",
				"participants.2.participant_index": "Duplicate participant_index 0 (also participants.0"}},
		{"not JSON", "/v1/sessions", `oops`, map[string]string{"body": "Malformed JSON"}},
		{"duplicate switch key", "/v1/sessions/" + live + "/switch", `{"expected_version":2,"expected_version":3}`,
			map[string]string{"expected_version": "Duplicate key"}},
		{"switch not JSON", "/v1/sessions/" + live + "/switch", `oops`, map[string]string{"body": "Malformed JSON"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := doReq(t, "POST", s.base+tc.url, tc.body)
			e := r.errCode(t)
			var fields []struct{ Field, Message string }
			_ = json.Unmarshal(e.Error.Details, &fields)
			if r.status != 400 || e.Error.Code != "VALIDATION_ERROR" || len(fields) != len(tc.fields) {
				t.Fatalf("%d %s", r.status, r.body)
			}
			for _, f := range fields {
				if !strings.HasPrefix(f.Message, tc.fields[f.Field]) || tc.fields[f.Field] == "" {
					t.Fatalf("field %s: %q, want %q (%s)", f.Field, f.Message, tc.fields[f.Field], r.body)
				}
			}
		})
	}
	if r := doReq(t, "GET", s.base+"/v1/sessions/"+id, ""); r.status != 404 {
		t.Fatalf("a refused create made the session: %d %s", r.status, r.body)
	}
	if r := doReq(t, "GET", s.base+"/v1/sessions/"+live, ""); num(r.state(t)["version"]) != 2 {
		t.Fatalf("a refused switch applied: %s", r.body)
	}
}

// TestAPITransitionMessages: a refused transition names the session's
// status and the call that would help; details stay as the script gave them.
func TestAPITransitionMessages(t *testing.T) {
	t.Parallel()
	s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + servertest.RedisAddr()}, nil)
	pending, _ := apiSession(t, s, false)
	running, _ := apiSession(t, s, true)
	done, _ := apiSession(t, s, true)
	t.Cleanup(func() { doReq(t, "DELETE", s.base+"/v1/sessions/"+running, "") }) // a running session has no TTL
	if r := doReq(t, "POST", s.base+"/v1/sessions/"+done+"/complete", ""); r.status != 200 {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		id, call, message, details string
	}{
		{pending, "switch", "Session " + pending + " is pending: start it first (POST /v1/sessions/{id}/start)", `{"from":"pending","to":"running","version":1}`},
		{pending, "pause", "Session " + pending + " is pending: start it first (POST /v1/sessions/{id}/start)", `{"from":"pending","to":"paused","version":1}`},
		{running, "resume", "Session " + running + " is running: it is not paused, so there is nothing to resume; pause it first (POST /v1/sessions/{id}/pause)", `{"from":"running","to":"running","version":2}`},
		{running, "start", "Session " + running + " is running: it has already started; switch turns (POST /v1/sessions/{id}/switch) or pause it (POST /v1/sessions/{id}/pause)", `{"from":"running","to":"running","version":2}`},
		{done, "complete", "Session " + done + " is completed: it has ended and cannot complete; create a new session (POST /v1/sessions)", `{"from":"completed","to":"completed","version":3}`},
	} {
		r := doReq(t, "POST", s.base+"/v1/sessions/"+tc.id+"/"+tc.call, "")
		e := r.errCode(t)
		var got, want map[string]any
		_ = json.Unmarshal(e.Error.Details, &got)
		_ = json.Unmarshal([]byte(tc.details), &want)
		if r.status != 400 || e.Error.Code != "INVALID_STATE_TRANSITION" || e.Error.Message != tc.message || !reflect.DeepEqual(got, want) {
			t.Errorf("%s on %s: %d %s", tc.call, tc.id, r.status, r.body)
		}
	}
}

// TestAPIEventsWithoutPersistence: the history route exists without
// DATABASE_URL and says why it cannot answer.
func TestAPIEventsWithoutPersistence(t *testing.T) {
	t.Parallel()
	s := startAPI(t, nil, nil)
	r := doReq(t, "GET", s.base+"/v1/sessions/"+uuid.NewString()+"/events", "")
	e := r.errCode(t)
	if r.status != 503 || e.Error.Code != "PERSISTENCE_DISABLED" ||
		e.Error.Message != "Persistence is off: DATABASE_URL is not set on this instance" {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

// TestAPIReadyHidesCauses: /ready and 500 bodies name no address, user or
// database unless DEBUG_ERRORS=true; the log has the cause with the
// request id.
func TestAPIReadyHidesCauses(t *testing.T) {
	for _, debug := range []bool{false, true} {
		t.Run("debug="+strconv.FormatBool(debug), func(t *testing.T) {
			t.Parallel()
			redisAddr, cmd := startRedisServer(t)
			pgPort := freePort(t) // nobody listens: PostgreSQL unreachable
			s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + redisAddr,
				"DATABASE_URL":   "postgres://secretuser@127.0.0.1:" + strconv.Itoa(pgPort) + "/secretdb?connect_timeout=1",
				"DEBUG_ERRORS":   strconv.FormatBool(debug),
				"PERSIST_WORKER": "false"}, nil)
			leaks := func(b []byte) bool {
				return strings.Contains(string(b), "127.0.0.1") || strings.Contains(string(b), "secret") ||
					strings.Contains(string(b), strconv.Itoa(pgPort))
			}
			r := doReq(t, "GET", s.base+"/v1/sessions/"+uuid.NewString()+"/events", "", "X-Request-Id", "events-req")
			if r.status != 500 || leaks(r.body) != debug {
				t.Fatalf("events with PostgreSQL down: %d %s (debug %v)", r.status, r.body, debug)
			}
			if line := grepLines(s.logs.String(), `"request_id":"events-req"`); !strings.Contains(line, "secret") {
				t.Fatalf("the log lacks the cause: %q", line)
			}
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			r = doReq(t, "GET", s.base+"/ready", "", "X-Request-Id", "ready-req")
			var body struct{ Checks map[string]string }
			_ = json.Unmarshal(r.body, &body)
			if r.status != 503 || leaks(r.body) != debug {
				t.Fatalf("ready: %d %s (debug %v)", r.status, r.body, debug)
			}
			if !debug && (body.Checks["redis"] != "failed" || body.Checks["persistence"] != "degraded") {
				t.Fatalf("ready checks: %s", r.body)
			}
			if line := grepLines(s.logs.String(), `"request_id":"ready-req"`); !strings.Contains(line, redisAddr) {
				t.Fatalf("the /ready log line lacks the cause: %q", line)
			}
		})
	}
}

// TestFasthttpLoggerRateLimit: fasthttp's own lines pass at most
// fasthttpLogPerSecond a second; the dropped ones are counted and the
// count is logged with the next line let through.
func TestFasthttpLoggerRateLimit(t *testing.T) {
	var out syncBuffer
	now := time.Unix(1_000_000, 0)
	l := newFasthttpLogger(slog.New(slog.NewJSONHandler(&out, nil)), func() time.Time { return now })
	for i := range 100 {
		l.Printf("error when serving connection %d", i)
	}
	if n := strings.Count(out.String(), "fasthttp: error when serving"); n != fasthttpLogPerSecond {
		t.Fatalf("%d lines in one second, want %d", n, fasthttpLogPerSecond)
	}
	now = now.Add(999 * time.Millisecond)
	l.Printf("still the same second")
	now = now.Add(time.Millisecond)
	l.Printf("next second")
	want := `"msg":"fasthttp: warnings dropped by the log rate limit","dropped":91,"limit_per_second":10}`
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 12 ||
		!strings.Contains(lines[10], want) || !strings.Contains(lines[11], "fasthttp: next second") {
		t.Fatalf("after the window, want the dropped count then the line:\n%s", out.String())
	}
}

// TestAPIMalformedFlood: a flood of malformed requests logs at most the
// limit, and every line is either written or counted as dropped.
func TestAPIMalformedFlood(t *testing.T) {
	t.Parallel()
	s := startAPI(t, map[string]string{"LOG_REQUESTS": "false"}, nil)
	addr := strings.TrimPrefix(s.base, "http://")
	garbage := func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write([]byte("GARBAGE\r\n\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, _ := io.ReadAll(c); !strings.HasPrefix(string(b), "HTTP/1.1 400") {
			t.Fatalf("reply to garbage: %q", b)
		}
	}
	const flood = 5 * fasthttpLogPerSecond
	for range flood {
		garbage()
	}
	time.Sleep(1100 * time.Millisecond) // into the next window, so the count is logged
	garbage()
	var written, dropped int
	waitFor(t, 5*time.Second, "every malformed request accounted for", func() bool {
		written, dropped = 0, 0
		for _, line := range strings.Split(s.logs.String(), "\n") {
			switch {
			case strings.Contains(line, "fasthttp: error when serving connection"):
				written++
			case strings.Contains(line, "dropped by the log rate limit"):
				var l struct{ Dropped int }
				_ = json.Unmarshal([]byte(line), &l)
				dropped += l.Dropped
			}
		}
		return written+dropped == flood+1
	})
	if dropped == 0 || written >= flood {
		t.Fatalf("%d lines written, %d dropped: the flood was not limited", written, dropped)
	}
}

func TestConfigEdge(t *testing.T) {
	for _, tc := range []struct {
		env   map[string]string
		debug bool
		host  string
		bad   string
	}{
		{env: nil},
		{env: map[string]string{"DEBUG_ERRORS": "true"}, debug: true},
		{env: map[string]string{"DEBUG_ERRORS": "true", "PRODUCTION": "true"}},
		{env: map[string]string{"DEBUG_ERRORS": "true", "NODE_ENV": "production"}},
		{env: map[string]string{"DEBUG_ERRORS": "yes please"}, bad: "DEBUG_ERRORS"},
		{env: map[string]string{"HOST": "127.0.0.1"}, host: "127.0.0.1"},
		{env: map[string]string{"HOST": "::1"}, host: "::1"},
		{env: map[string]string{"HOST": "0.0.0.0:3000"}, bad: "HOST"},
	} {
		c, err := loadConfig(apiEnv(tc.env))
		switch {
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("%v: want an error naming %s, got %v", tc.env, tc.bad, err)
		case tc.bad == "" && (err != nil || c.DebugErrors != tc.debug || c.Host != tc.host):
			t.Errorf("%v: debug %v host %q err %v", tc.env, c.DebugErrors, c.Host, err)
		}
	}
}
