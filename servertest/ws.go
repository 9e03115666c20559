package servertest

import (
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	json "github.com/goccy/go-json"
)

// WSMsg is one relay message, with its bytes.
type WSMsg struct {
	Type      string          `json:"type"`
	SessionID string          `json:"sessionId"`
	Version   int64           `json:"version"`
	State     json.RawMessage `json:"state"`
	Raw       []byte          `json:"-"`
}

// WSDial connects to the relay of the server at addr (host:port) for
// session id and reads its CONNECTED; the connection closes when t ends.
func WSDial(t testing.TB, addr, id string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?sessionId="+id, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if m := WSRead(t, c); m.Type != "CONNECTED" || m.SessionID != id {
		t.Fatalf("first message from %s: %s", addr, m.Raw)
	}
	return c
}

// WSRead reads one message, failing t after 10 s.
func WSRead(t testing.TB, c *websocket.Conn) WSMsg {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m WSMsg
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("bad message %q: %v", b, err)
	}
	m.Raw = b
	return m
}
