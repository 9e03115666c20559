package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/google/uuid"

	"github.com/synckairos/synckairos/auth"
)

// wsConnected dials with token and reads CONNECTED.
func wsConnected(t *testing.T, s *apiServer, id, token string) *websocket.Conn {
	t.Helper()
	st, c := wsDial(t, s, id, token)
	if st != 101 {
		t.Fatalf("handshake: %d", st)
	}
	if m := wsRead(t, c); m.Type != "CONNECTED" {
		t.Fatalf("first message: %s", m.Raw)
	}
	return c
}

func wsSend(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// TestAuthWSViewer: no token is refused before the upgrade; a viewer's
// token is enough to watch, and the viewer gets every update.
func TestAuthWSViewer(t *testing.T) {
	t.Parallel()
	s := startAPI(t, authEnv(t, nil), nil)
	id, _, v := authSession(t, s, "running", 2)
	if st, c := wsDial(t, s, id, ""); st != 401 || c != nil {
		t.Fatalf("no token: %d", st)
	}
	c := wsConnected(t, s, id, mint(t, auth.RoleViewer, []string{id}, "", time.Hour))
	host := mint(t, auth.RoleHost, []string{id}, "", time.Hour)
	if r := doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch", "", bearerH(host)...); r.status != 200 {
		t.Fatalf("switch: %d %s", r.status, r.body)
	}
	if m := wsRead(t, c); m.Type != "STATE_UPDATE" || m.Version != v+1 {
		t.Fatalf("viewer got %s", m.Raw)
	}
	// A viewer may not act through REST on the same token.
	if r := doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch", "", bearerH(mint(t, auth.RoleViewer, []string{id}, "", time.Hour))...); r.status != 403 {
		t.Fatalf("viewer switch: %d", r.status)
	}
}

// TestAuthWSExpiry: when the held token expires the connection is closed
// with 4001 "token expired".
func TestAuthWSExpiry(t *testing.T) {
	t.Parallel()
	s := startAPI(t, authEnv(t, map[string]string{"AUTH_JWT_LEEWAY": "0s"}), nil)
	id := uuid.NewString()
	// exp has one-second precision: 2 s leaves at least one.
	c := wsConnected(t, s, id, mint(t, auth.RoleViewer, []string{id}, "", 2*time.Second))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err == nil {
			t.Logf("message before the close: %s", b)
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4001 || ce.Text != "token expired" {
			t.Fatalf("want close 4001 \"token expired\", got %v", err)
		}
		break
	}
	if !strings.Contains(metricsText(t, s), `synckairos_ws_clients_dropped_total{reason="token_expired"} 1`) {
		t.Fatal("token_expired drop not counted")
	}
}

func metricsText(t *testing.T, s *apiServer) string {
	return string(doReq(t, "GET", s.base+"/metrics", "").body)
}

// TestAuthWSRefresh: AUTH with a fresh token of the same sub keeps the
// connection open past the first token's expiry; a bad, foreign or
// other-session token is answered ERROR and changes nothing.
func TestAuthWSRefresh(t *testing.T) {
	t.Parallel()
	s := startAPI(t, authEnv(t, map[string]string{"AUTH_JWT_LEEWAY": "0s"}), nil)
	id, _, v := authSession(t, s, "running", 2)
	short := mint(t, auth.RoleViewer, []string{id}, "", 2*time.Second)
	c := wsConnected(t, s, id, short)
	other, err := auth.Mint([]byte(authSecret), auth.Token{Subject: "someone-else", Role: auth.RoleViewer,
		Sessions: []string{id}, TTL: time.Hour, Issuer: authIssuer, Audience: authAudience}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, msg, code string }{
		{"garbage", `{"type":"AUTH","token":"nope"}`, "UNAUTHENTICATED"},
		{"no token", `{"type":"AUTH"}`, "UNAUTHENTICATED"},
		{"another sub", `{"type":"AUTH","token":"` + other + `"}`, "FORBIDDEN"},
		{"another session", `{"type":"AUTH","token":"` + mint(t, auth.RoleViewer, []string{uuid.NewString()}, "", time.Hour) + `"}`, "FORBIDDEN"},
	} {
		wsSend(t, c, tc.msg)
		if m := wsRead(t, c); m.Type != "ERROR" || !strings.Contains(string(m.Raw), `"code":"`+tc.code+`"`) {
			t.Fatalf("%s: %s", tc.name, m.Raw)
		}
	}
	long := mint(t, auth.RoleViewer, []string{id}, "", time.Hour)
	wsSend(t, c, `{"type":"AUTH","token":"`+long+`"}`)
	if m := wsRead(t, c); m.Type != "AUTH_OK" || !strings.Contains(string(m.Raw), `"expires_at":`) {
		t.Fatalf("AUTH: %s", m.Raw)
	}
	// Past the first token's exp (at most 2 s away), kept busy with PINGs.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		wsSend(t, c, `{"type":"PING"}`)
		if m := wsRead(t, c); m.Type != "PONG" {
			t.Fatalf("PING: %s", m.Raw)
		}
	}
	host := mint(t, auth.RoleHost, []string{id}, "", time.Hour)
	if r := doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch", "", bearerH(host)...); r.status != 200 {
		t.Fatalf("switch: %d %s", r.status, r.body)
	}
	if m := wsRead(t, c); m.Type != "STATE_UPDATE" || m.Version != v+1 {
		t.Fatalf("after the first token's expiry: %s", m.Raw)
	}
	if strings.Contains(s.logs.String(), long) || strings.Contains(s.logs.String(), short) {
		t.Fatal("a token reached the log")
	}
}

// TestAuthWSOff: with AUTH_MODE=off, AUTH is an unknown type, as before.
func TestAuthWSOff(t *testing.T) {
	t.Parallel()
	s := startAPI(t, nil, nil)
	c := wsConnected(t, s, uuid.NewString(), "")
	wsSend(t, c, `{"type":"AUTH","token":"x"}`)
	if m := wsRead(t, c); m.Type != "ERROR" || !strings.Contains(string(m.Raw), "UNKNOWN_MESSAGE_TYPE") {
		t.Fatalf("AUTH with auth off: %s", m.Raw)
	}
}
