package main

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/google/uuid"

	"github.com/synckairos/synckairos/auth"
)

// FuzzAuthToken throws arbitrary Authorization headers and ?token= values
// at a jwt-mode server: no panic (no 500), and never a 2xx or an upgrade
// unless the input holds a token valid for the session. The seeds run in
// every `go test`; fuzz with
//
//	go test -run '^$' -fuzz FuzzAuthToken -fuzztime 30s -fuzzminimizetime 100x .
//
// (the default minimization, 60 s per new input at a few ms per run, would
// stall the fuzzing).
func FuzzAuthToken(f *testing.F) {
	env := authEnv(f, map[string]string{"LOG_REQUESTS": "false"})
	s := startAPI(f, env, nil)
	id, _, _ := authSession(f, s, "running", 2)
	cfg, err := loadConfig(apiEnv(env))
	if err != nil {
		f.Fatal(err)
	}
	v, err := auth.New(f.Context(), cfg.Auth, nil)
	if err != nil {
		f.Fatal(err)
	}
	// valid reports whether tok would be accepted for reading id.
	valid := func(tok string) bool {
		c, err := v.Verify(strings.TrimSpace(tok))
		return err == nil && c.Covers(id)
	}
	good := mint(f, auth.RoleHost, []string{id}, "", time.Hour)
	for _, seed := range []string{
		"", "Bearer", "Bearer ", "Bearer abc", "bearer a.b.c", "Basic dXNlcjpwYXNz",
		"Bearer " + good, "Bearer " + good + "x", "Bearer " + good[:len(good)-2], "Bearer  " + good + " ",
		"Bearer " + mint(f, auth.RoleHost, []string{uuid.NewString()}, "", time.Hour),
		"Bearer " + strings.Replace(good, good[:strings.IndexByte(good, '.')], "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", 1),
		"Bearer eyJ.eyJ.", "Bearer ....", "Bearer \x00\xff", strings.Repeat("Bearer ", 200),
	} {
		f.Add(seed)
	}
	dialer := &websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	f.Fuzz(func(t *testing.T, header string) {
		token := header
		if len(token) >= 7 && strings.EqualFold(token[:7], "bearer ") {
			token = token[7:]
		}
		ok := len(header) >= 7 && strings.EqualFold(header[:7], "bearer ") && valid(token)
		for _, rt := range []struct{ method, path string }{
			{"GET", "/v1/sessions/" + id},
			{"POST", "/v1/sessions/" + id + "/switch"},
		} {
			r, err := tryReq(rt.method, s.base+rt.path, "", "Authorization", header)
			if err != nil {
				continue // not sendable as a header value
			}
			if r.status >= 500 || r.status/100 == 2 && !ok {
				t.Fatalf("%s %s with Authorization %q: %d %s", rt.method, rt.path, header, r.status, r.body)
			}
		}
		u := "ws" + strings.TrimPrefix(s.base, "http") + "/ws?sessionId=" + id + "&token=" + url.QueryEscape(header)
		c, res, _ := dialer.Dial(u, nil)
		if c != nil {
			c.Close()
			if !valid(header) {
				t.Fatalf("upgraded with token %q", header)
			}
			return
		}
		if res != nil && res.StatusCode >= 500 {
			t.Fatalf("WebSocket with token %q: %d", header, res.StatusCode)
		}
	})
}
