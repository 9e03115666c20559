package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fasthttp/websocket"

	"github.com/synckairos/synckairos/engine"
	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/wsrelay"
)

// The multi-instance tests run two real server processes on different
// ports, sharing the machine's Redis: a client on each, one change made
// through one of them.

// startProcessStop is startProcess, plus a func that sends SIGTERM and
// waits for the exit.
func startProcessStop(t *testing.T) (string, func()) {
	in := startInstance(t, servertest.RedisAddr())
	return in.addr, func() { in.stop(t) }
}

func TestWSCrossInstanceSwitch(t *testing.T) {
	t.Parallel()
	eachBackend(t, testWSCrossInstanceSwitch)
}

func testWSCrossInstanceSwitch(t *testing.T, be backend) {
	one, two := be.start(t).addr, be.start(t).addr
	for _, n := range []int{4, 40} { // full STATE_UPDATE, and STATE_DELTA assembled per instance
		t.Run(strconv.Itoa(n)+" participants", func(t *testing.T) {
			id, _, body := servertest.SessionBody(n, "")
			if r := doReq(t, "POST", "http://"+one+"/v1/sessions", body); r.Status != 201 {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			a, b := servertest.WSDial(t, one, id), servertest.WSDial(t, two, id)
			if r := doReq(t, "POST", "http://"+one+"/v1/sessions/"+id+"/start", ""); r.Status != 200 {
				t.Fatalf("start: %d %s", r.Status, r.Body)
			}
			r := doReq(t, "POST", "http://"+one+"/v1/sessions/"+id+"/switch", "{}")
			if r.Status != 200 {
				t.Fatalf("switch: %d %s", r.Status, r.Body)
			}
			want := servertest.Num(r.State(t)["version"])
			var states [][]byte
			for _, c := range []*websocket.Conn{a, b} {
				if m := servertest.WSRead(t, c); m.Type != "STATE_UPDATE" || m.Version != want-1 {
					t.Fatalf("start update: %s", m.Raw)
				}
				m := servertest.WSRead(t, c)
				if m.Type != "STATE_UPDATE" || m.Version != want || m.SessionID != id {
					t.Fatalf("switch update: version %d want %d: %.200s", m.Version, want, m.Raw)
				}
				states = append(states, m.State)
			}
			if !bytes.Equal(states[0], states[1]) {
				t.Fatalf("instances sent different states:\n%s\n%s", states[0], states[1])
			}
		})
	}
}

// BroadcastToSession on one instance reaches the clients of the others
// through the message channel.
func TestWSCrossInstanceMessageChannel(t *testing.T) {
	t.Parallel()
	eachBackend(t, testWSCrossInstanceMessageChannel)
}

func testWSCrossInstanceMessageChannel(t *testing.T, be backend) {
	one, two := be.start(t).addr, be.start(t).addr
	id, _, body := servertest.SessionBody(2, "")
	if r := doReq(t, "POST", "http://"+one+"/v1/sessions", body); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	a, b := servertest.WSDial(t, one, id), servertest.WSDial(t, two, id)

	// A third instance, in-process, broadcasts.
	rdb := be.client(t)
	scripts := engine.New(rdb, engine.Options{StateCacheMax: 10})
	relay := wsrelay.New(wsrelay.Config{}, rdb, scripts, scripts.Assembler(), wallClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.NewSet())
	t.Cleanup(func() { _ = relay.Shutdown(context.Background()) })
	msg := `{"type":"PARTICIPANT_EXPIRING","sessionId":"` + id + `","timestamp":` + strconv.FormatInt(time.Now().UnixMilli(), 10) + `}`
	if err := relay.BroadcastToSession(context.Background(), id, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*websocket.Conn{a, b} {
		if m := servertest.WSRead(t, c); string(m.Raw) != msg {
			t.Fatalf("got %s, want %s", m.Raw, msg)
		}
	}
}

type wallClock struct{}

func (wallClock) Now() int64 { return time.Now().UnixMicro() }

// SIGTERM closes every WebSocket with 1001 within the shutdown.
func TestWSShutdownCloses1001(t *testing.T) {
	t.Parallel()
	addr, stop := startProcessStop(t)
	id, _, _ := servertest.SessionBody(2, "")
	a, b := servertest.WSDial(t, addr, id), servertest.WSDial(t, addr, id)
	go stop()
	for _, c := range []*websocket.Conn{a, b} {
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Fatalf("got %v, want close 1001", err)
		}
	}
}
