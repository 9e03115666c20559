package main

import (
	"bytes"
	"testing"

	"github.com/fasthttp/websocket"
)

// /ws is mounted in the in-process server too, including dev mode on the
// embedded Redis.
func TestWSMountedEmbeddedRedis(t *testing.T) {
	t.Parallel()
	s := startAPI(t, nil, nil)
	addr := s.base[len("http://"):]
	id, _, body := newSessionBody(2, "")
	c := wsConnect(t, addr, id) // before create: allowed
	if r := doReq(t, "POST", s.base+"/v1/sessions", body); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if m := wsRead(t, c); m.Type != "STATE_UPDATE" || m.Version != 1 {
		t.Fatalf("got %s", m.Raw)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"RECONNECT"}`)); err != nil {
		t.Fatal(err)
	}
	if m := wsRead(t, c); m.Type != "STATE_SYNC" || m.Version != 1 {
		t.Fatalf("got %s", m.Raw)
	}
	r := doReq(t, "GET", s.base+"/metrics", "")
	if !bytes.Contains(r.body, []byte("synckairos_ws_clients 1")) {
		t.Fatalf("/metrics lacks the relay's series:\n%s", r.body)
	}
}
