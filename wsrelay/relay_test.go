package wsrelay

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	json "github.com/goccy/go-json"
	"github.com/google/uuid"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/servertest"
)

func TestConnectAckDisconnect(t *testing.T) {
	t.Parallel()
	eng, f := sharedFixture(t, Config{})
	id := eng.newSession(t, 2)

	c := dial(t, f.url(id), nil)
	m := read(t, c)
	if m.Type != "CONNECTED" || m.SessionID != id {
		t.Fatalf("got %s", m.raw)
	}
	if d := m.Timestamp - nowMS(f.clock); d > 5000 || d < -5000 {
		t.Fatalf("CONNECTED timestamp %d is %d ms off the Redis clock", m.Timestamp, d)
	}
	if f.relay.clientCount() != 1 || f.relay.hub.sessionCount() != 1 {
		t.Fatalf("clients %d sessions %d, want 1 and 1", f.relay.clientCount(), f.relay.hub.sessionCount())
	}
	c.Close()
	eventually(t, "cleanup after disconnect", func() bool {
		return f.relay.clientCount() == 0 && f.relay.hub.sessionCount() == 0 && f.relay.adm.admitted() == 0
	})
	// The subscription is gone from Redis too.
	eventually(t, "unsubscribe", func() bool {
		n, _ := eng.rdb.PubSubNumSub(context.Background(), keyspace.For(id).StateChannel).Result()
		return n[keyspace.For(id).StateChannel] == 0
	})
}

func TestBadSessionIDClosed1008(t *testing.T) {
	t.Parallel()
	_, f := sharedFixture(t, Config{})
	for _, tc := range []struct{ name, query string }{
		{"missing", ""},
		{"empty", "?sessionId="},
		{"not a uuid", "?sessionId=abc"},
		{"uuid with junk", "?sessionId=" + uuid.NewString() + "x"},
		{"braces", "?sessionId={a}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, "ws://"+f.addr+"/ws"+tc.query, nil)
			code, text := closeCode(t, c)
			if code != websocket.ClosePolicyViolation || !strings.Contains(text, "sessionId") {
				t.Fatalf("close %d %q, want 1008 with a reason", code, text)
			}
		})
	}
}

// Both clients of a session get each change as STATE_UPDATE, and it is the
// state Redis holds; large sessions (STATE_DELTA) are assembled back.
func TestTwoClientsGetStateUpdate(t *testing.T) {
	t.Parallel()
	for _, n := range []int{3, 40} {
		t.Run(strconv.Itoa(n)+" participants", func(t *testing.T) {
			t.Parallel()
			eng, f := sharedFixture(t, Config{})
			id := eng.newSession(t, n)
			a, b := f.connect(t, id), f.connect(t, id)
			eng.startSession(t, id)
			eng.doSwitch(t, id)
			want, err := eng.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []*websocket.Conn{a, b} {
				m2 := read(t, c)
				m3 := read(t, c)
				if m2.Type != "STATE_UPDATE" || m2.Version != 2 || m3.Type != "STATE_UPDATE" || m3.Version != 3 {
					t.Fatalf("got %s / %s", m2.raw, m3.raw)
				}
				if m3.SessionID != id || m3.Timestamp == 0 {
					t.Fatalf("header: %s", m3.raw[:120])
				}
				sameState(t, m3.State, want)
			}
		})
	}
}

// A client may connect before the session exists; it then sees the create.
func TestConnectBeforeCreate(t *testing.T) {
	t.Parallel()
	eng, f := sharedFixture(t, Config{})
	id := uuid.NewString()
	c := f.connect(t, id)
	send(t, c, `{"type":"RECONNECT"}`)
	if m := read(t, c); m.Type != "ERROR" || m.Code != "SESSION_NOT_FOUND" {
		t.Fatalf("RECONNECT before create: %s", m.raw)
	}
	eng.createID(t, id, 2)
	if m := read(t, c); m.Type != "STATE_UPDATE" || m.Version != 1 {
		t.Fatalf("got %s", m.raw)
	}
}

func TestReconnectGetsStateSync(t *testing.T) {
	t.Parallel()
	eng, f := sharedFixture(t, Config{})
	id := eng.newSession(t, 3)
	eng.startSession(t, id)
	c := f.connect(t, id)
	c.Close()
	// Gone (and unsubscribed) before the switch, or the switch may still
	// reach the next connection as STATE_UPDATE.
	eventually(t, "cleanup after disconnect", func() bool {
		return f.relay.clientCount() == 0 && f.relay.hub.sessionCount() == 0
	})
	eng.doSwitch(t, id) // missed while away
	c = f.connect(t, id)
	send(t, c, `{"type":"RECONNECT"}`)
	m := read(t, c)
	if m.Type != "STATE_SYNC" || m.SessionID != id || m.Version != 3 {
		t.Fatalf("got %s", m.raw)
	}
	want, _ := eng.Get(context.Background(), id)
	sameState(t, m.State, want)
}

// A burst of RECONNECTs is coalesced: while one is pending (its STATE_SYNC
// not yet written) the next is answered by it, so 50 of them read and queue
// the 1000-participant state only a few times, each STATE_SYNC is the
// current version, and the connection stays open.
func TestReconnectBurstCoalesced(t *testing.T) {
	t.Parallel()
	const burst = 50
	eng, f := sharedFixture(t, Config{})
	id := eng.newSession(t, 1000)
	eng.startSession(t, id)
	c := f.connect(t, id)
	before := eng.gets.Load()
	for i := 0; i < burst; i++ {
		send(t, c, `{"type":"RECONNECT"}`)
	}
	send(t, c, `{"type":"PING"}`) // read after every RECONNECT: its PONG follows their handling
	syncs := int64(0)
	for pong := false; !pong || syncs < eng.gets.Load()-before; {
		switch m := read(t, c); m.Type {
		case "PONG":
			pong = true
		case "STATE_SYNC":
			if m.Version != 2 {
				t.Fatalf("STATE_SYNC version %d, want 2", m.Version)
			}
			syncs++
		default:
			t.Fatalf("got %.200s", m.raw)
		}
	}
	reads := eng.gets.Load() - before
	t.Logf("%d RECONNECTs: %d state reads, %d STATE_SYNCs", burst, reads, syncs)
	if syncs < 1 || syncs != reads || syncs > burst/5 {
		t.Fatalf("%d RECONNECTs: %d state reads, %d STATE_SYNCs; want between 1 and %d, one per read",
			burst, reads, syncs, burst/5)
	}
	// Still open and served, and a later RECONNECT gets its own STATE_SYNC.
	send(t, c, `{"type":"RECONNECT"}`)
	if m := read(t, c); m.Type != "STATE_SYNC" || m.Version != 2 {
		t.Fatalf("RECONNECT after the burst: %.200s", m.raw)
	}
	if f.relay.m.slow.Get() != 0 || f.relay.clientCount() != 1 {
		t.Fatalf("client dropped (slow %d, clients %d)", f.relay.m.slow.Get(), f.relay.clientCount())
	}
}

func TestClientMessages(t *testing.T) {
	t.Parallel()
	eng, f := sharedFixture(t, Config{MaxMessageBytes: 256})
	id := eng.newSession(t, 2)
	c := f.connect(t, id)
	for _, tc := range []struct {
		name, in, typ, code, clientTS string
	}{
		{"ping with client_timestamp", `{"type":"PING","client_timestamp":1764100000123}`, "PONG", "", "1764100000123"},
		{"ping without", `{"type":"PING"}`, "PONG", "", ""},
		{"unknown type", `{"type":"HELLO"}`, "ERROR", "UNKNOWN_MESSAGE_TYPE", ""},
		{"not JSON", `ping`, "ERROR", "INVALID_MESSAGE", ""},
		{"no type", `{"client_timestamp":1}`, "ERROR", "INVALID_MESSAGE", ""},
		{"array", `[1,2]`, "ERROR", "INVALID_MESSAGE", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			send(t, c, tc.in)
			m := read(t, c)
			if m.Type != tc.typ || m.Code != tc.code || string(m.ClientTimestamp) != tc.clientTS {
				t.Fatalf("got %s", m.raw)
			}
			if tc.typ == "PONG" {
				if d := m.Timestamp - nowMS(f.clock); d > 5000 || d < -5000 {
					t.Fatalf("PONG timestamp %d ms off the Redis clock", d)
				}
			}
			if tc.typ == "ERROR" && m.Message == "" {
				t.Fatalf("ERROR without message: %s", m.raw)
			}
		})
	}
	// The connection stayed open through the errors; a frame over the limit
	// closes it with 1009.
	send(t, c, `{"type":"PING","pad":"`+strings.Repeat("x", 300)+`"}`)
	if code, _ := closeCode(t, c); code != websocket.CloseMessageTooBig {
		t.Fatalf("oversized frame: close %d, want 1009", code)
	}
}

// A client that stops answering pings is terminated; one that answers stays.
func TestHeartbeatTerminatesSilentClient(t *testing.T) {
	t.Parallel()
	eng, f := sharedFixture(t, Config{PingInterval: 250 * time.Millisecond})
	id := eng.newSession(t, 2)
	silent := f.connect(t, id) // never reads again, so never answers a ping
	alive := f.connect(t, id)
	pongs := readAll(alive, 16)
	eventually(t, "silent client dropped", func() bool {
		return f.relay.m.heartbeat.Get() == 1 && f.relay.clientCount() == 1
	})
	if _, err := tryRead(silent, 5*time.Second); err == nil {
		t.Fatal("silent client still receives")
	}
	// Several ping periods later the answering client is still served.
	time.Sleep(time.Second)
	send(t, alive, `{"type":"PING"}`)
	if m, ok := <-pongs; !ok || m.Type != "PONG" {
		t.Fatalf("answering client: %v %s", ok, m.raw)
	}
	if got := f.relay.m.heartbeat.Get(); got != 1 {
		t.Fatalf("heartbeat drops %d, want 1", got)
	}
}

// The heartbeat spreads its pings over the interval instead of pinging
// every client in the same instant, and still pings each client once per
// interval: no two pings of one client are much less than an interval
// apart, and no answering client is dropped.
func TestHeartbeatSpreadsPings(t *testing.T) {
	t.Parallel()
	const interval = time.Second
	const n = 100
	eng, f := sharedFixture(t, Config{PingInterval: interval})
	id := eng.newSession(t, 2)
	var mu sync.Mutex
	pings := make([][]time.Time, n)
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = f.connect(t, id)
	}
	start := time.Now()
	for i, c := range conns {
		c.SetPingHandler(func(data string) error {
			mu.Lock()
			pings[i] = append(pings[i], time.Now())
			mu.Unlock()
			return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(10*time.Second))
		})
		go func() {
			for {
				if _, err := tryRead(c, 30*time.Second); err != nil {
					return
				}
			}
		}()
	}
	eventually(t, "three pings per client", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range pings {
			if len(p) < 3 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	first, last := pings[0][0], pings[0][0]
	for i, p := range pings {
		if p[0].Before(first) {
			first = p[0]
		}
		if p[0].After(last) {
			last = p[0]
		}
		for k := 1; k < len(p); k++ {
			if gap := p[k].Sub(p[k-1]); gap < interval/2 {
				t.Fatalf("client %d: pings %v apart, want about %v", i, gap, interval)
			}
		}
	}
	if span := last.Sub(first); span < interval/2 {
		t.Fatalf("first pings after %v span %v, want them spread over most of %v", first.Sub(start), span, interval)
	}
	if d := f.relay.m.heartbeat.Get(); d != 0 {
		t.Fatalf("%d answering clients dropped", d)
	}
}

func TestSessionDeletedThenClosed(t *testing.T) {
	t.Parallel()
	eng, f := sharedFixture(t, Config{})
	id := eng.newSession(t, 2)
	a, b := f.connect(t, id), f.connect(t, id)
	eng.deleteSession(t, id)
	for _, c := range []*websocket.Conn{a, b} {
		if m := read(t, c); m.Type != "SESSION_DELETED" || m.SessionID != id {
			t.Fatalf("got %s", m.raw)
		}
		if code, text := closeCode(t, c); code != websocket.CloseNormalClosure || text != "session deleted" {
			t.Fatalf("close %d %q", code, text)
		}
	}
}

// BroadcastToSession goes through Redis: every client of the session gets
// the bytes unchanged, clients of other sessions get nothing.
func TestBroadcastToSession(t *testing.T) {
	t.Parallel()
	eng, f := sharedFixture(t, Config{})
	id, other := eng.newSession(t, 2), eng.newSession(t, 2)
	a, b, o := f.connect(t, id), f.connect(t, id), f.connect(t, other)
	payload := `{"type":"PARTICIPANT_EXPIRING","sessionId":"` + id + `","timestamp":` + strconv.FormatInt(nowMS(f.clock), 10) + `}`
	if err := f.relay.BroadcastToSession(context.Background(), id, []byte(payload)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*websocket.Conn{a, b} {
		if m := read(t, c); string(m.raw) != payload {
			t.Fatalf("got %s", m.raw)
		}
	}
	// other's next message is its own update, not the broadcast
	eng.startSession(t, other)
	if m := read(t, o); m.Type != "STATE_UPDATE" || m.SessionID != other {
		t.Fatalf("other session got %s", m.raw)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	eng, f := sharedFixture(t, Config{MaxConnsPerIP: 2, Origins: []string{"https://app.example.com"}})
	id := eng.newSession(t, 2)

	t.Run("origin", func(t *testing.T) {
		_, resp, err := websocket.DefaultDialer.Dial(f.url(id), map[string][]string{"Origin": {"https://evil.example.com"}})
		if err == nil || resp == nil || resp.StatusCode != 403 {
			t.Fatalf("foreign origin: err %v resp %v", err, resp)
		}
		c := dial(t, f.url(id), map[string]string{"Origin": "https://app.example.com"})
		if m := read(t, c); m.Type != "CONNECTED" {
			t.Fatalf("allowed origin: %s", m.raw)
		}
		c.Close()
		eventually(t, "release", func() bool { return f.relay.clientCount() == 0 })
	})
}

// Over a cap, the handshake is refused with 503 before any upgrade; only
// open connections hold slots, and a closed one frees its slot. A handshake
// fasthttp does not complete (Connection: close: the 101 is sent, the
// handler never runs) holds none either.
func TestConnectionCaps(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, newRedis(t, servertest.RedisAddr()))
	for _, tc := range []struct {
		name  string
		cfg   Config
		steps []struct {
			ip string
			ok bool
		}
	}{
		{"per IP", Config{MaxConnsPerIP: 2, TrustProxy: true}, []struct {
			ip string
			ok bool
		}{{"10.0.0.1", true}, {"10.0.0.1", true}, {"10.0.0.1", false}, {"10.0.0.2", true}, {"10.0.0.1", false}}},
		{"total", Config{MaxConns: 2, TrustProxy: true}, []struct {
			ip string
			ok bool
		}{{"10.0.0.1", true}, {"10.0.0.2", true}, {"10.0.0.3", false}, {"10.0.0.1", false}, {"10.0.0.3", false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tc.cfg, eng, "")
			id := eng.newSession(t, 2)
			for i := 0; i < 3; i++ { // never upgraded: must not hold a slot
				unfinishedHandshake(t, f.addr, id, "10.0.0.1")
			}
			var open []*websocket.Conn
			rejected := uint64(0)
			for i, st := range tc.steps {
				hdr := map[string][]string{"X-Forwarded-For": {st.ip}}
				c, resp, err := websocket.DefaultDialer.Dial(f.url(id), hdr)
				if !st.ok {
					if err == nil || resp == nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
						t.Fatalf("step %d (%s): err %v resp %v, want 503 with Retry-After", i, st.ip, err, resp)
					}
					rejected++
					continue
				}
				if err != nil {
					t.Fatalf("step %d (%s): %v", i, st.ip, err)
				}
				t.Cleanup(func() { c.Close() })
				if m := read(t, c); m.Type != "CONNECTED" {
					t.Fatalf("step %d: %s", i, m.raw)
				}
				open = append(open, c)
			}
			if got := f.relay.adm.admitted(); got != len(open) {
				t.Fatalf("%d slots held, want %d (the open connections)", got, len(open))
			}
			if got := f.relay.m.rejectLimit.Get(); got != rejected {
				t.Fatalf("rejected_total{limit} %d, want %d", got, rejected)
			}
			// Closing the first connection frees a slot for its IP.
			open[0].Close()
			eventually(t, "slot released", func() bool { return f.relay.adm.admitted() == len(open)-1 })
			c := dial(t, f.url(id), map[string]string{"X-Forwarded-For": tc.steps[0].ip})
			if m := read(t, c); m.Type != "CONNECTED" {
				t.Fatalf("after a close: %s", m.raw)
			}
		})
	}
}

// unfinishedHandshake sends a WebSocket handshake with Connection: close:
// fasthttp writes the 101 and then closes instead of running the upgrade
// handler.
func unfinishedHandshake(t testing.TB, addr, id, ip string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "GET /ws?sessionId=" + id + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close, Upgrade\r\n" +
		"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"X-Forwarded-For: " + ip + "\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.Copy(io.Discard, c) // until the server closes
}

func TestShutdownSends1001(t *testing.T) {
	t.Parallel()
	eng, f := sharedFixture(t, Config{})
	id := eng.newSession(t, 2)
	a, b := f.connect(t, id), f.connect(t, id)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		done <- f.relay.Shutdown(ctx)
	}()
	for _, c := range []*websocket.Conn{a, b} {
		if code, _ := closeCode(t, c); code != websocket.CloseGoingAway {
			t.Fatalf("close %d, want 1001", code)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Shutdown does not wait out WriteTimeout for a client that never reads:
// its writer, blocked on a full socket with a full queue behind it, gets a
// second, then the connection is cut.
func TestShutdownWithStuckClient(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, newRedis(t, servertest.RedisAddr()))
	cfg := Config{QueueSize: 32, WriteTimeout: 30 * time.Second, PingInterval: time.Minute}
	f := newFixture(t, cfg, eng, "")
	id := eng.newSession(t, 2)
	dialSmallWindow(t, f.url(id)) // never reads again
	f.fillUntilBlocked(t, id, f.onlyClient(t))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second) // the service's budget
	defer cancel()
	start := time.Now()
	err := f.relay.Shutdown(ctx)
	if took := time.Since(start); err != nil || took >= cfg.WriteTimeout {
		t.Fatalf("Shutdown: %v after %v, want it done before WriteTimeout %v", err, took, cfg.WriteTimeout)
	}
	if n := f.relay.clientCount(); n != 0 {
		t.Fatalf("%d clients left", n)
	}
}

// A client that never reads is dropped once its queue fills; the other
// client of the session receives every message meanwhile.
func TestClientThatNeverReadsDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	eng, f := sharedFixture(t, Config{QueueSize: 8, PingInterval: time.Minute})
	id := eng.newSession(t, 2)
	stuck := f.connect(t, id)
	_ = stuck
	good := f.connect(t, id)

	const n = 300
	pad := strings.Repeat("x", 64<<10) // 300 x 64 KiB overflows any socket buffer
	got := readAll(good, n)
	// The publisher stays at most 4 messages ahead of the good client, so
	// only a client that does not read at all can fill its queue.
	ch := keyspace.For(id).StateChannel
	want := int64(2)
	for v := 2; v < 2+n; v++ {
		p := `{"type":"STATE_UPDATE","sessionId":"` + id + `","timestamp":` + strconv.FormatInt(nowMS(f.clock), 10) +
			`,"version":` + strconv.Itoa(v) + `,"state":{"version":` + strconv.Itoa(v) + `,"pad":"` + pad + `"}}`
		if err := eng.rdb.SPublish(context.Background(), ch, p).Err(); err != nil {
			t.Fatal(err)
		}
		for ; want <= int64(v)-4 || v == 1+n && want < 2+n; want++ {
			if g, ok := <-got; !ok || g.Version != want {
				t.Fatalf("good client: got version %d (open %v), want %d", g.Version, ok, want)
			}
		}
	}
	if f.relay.m.slow.Get() != 1 {
		t.Fatalf("slow drops %d, want 1", f.relay.m.slow.Get())
	}
	eventually(t, "stuck client gone", func() bool { return f.relay.clientCount() == 1 })
}

// A slow client whose writer is blocked on its full socket is cut: no
// close frame (relay.go), the TCP connection just ends.
func TestSlowBlockedClientCutWithoutCloseFrame(t *testing.T) {
	t.Parallel()
	eng, f := sharedFixture(t, Config{QueueSize: 32, PingInterval: time.Minute})
	id := eng.newSession(t, 2)
	stuck := dialSmallWindow(t, f.url(id))
	c := f.onlyClient(t)
	v := f.fillUntilBlocked(t, id, c) + 1
	for ; f.relay.m.slow.Get() == 0 && v < 2+100*cap(c.q); v++ { // overflow the queue
		p := `{"type":"STATE_UPDATE","sessionId":"` + id + `","timestamp":0,"version":` + strconv.Itoa(v) + `,"state":{}}`
		if err := eng.rdb.SPublish(context.Background(), keyspace.For(id).StateChannel, p).Err(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if f.relay.m.slow.Get() != 1 {
		t.Fatal("not dropped as slow")
	}
	// 1006 is the client library's code for "ended without a close frame".
	if code, text := closeCode(t, stuck); code != websocket.CloseAbnormalClosure && code != -1 {
		t.Fatalf("close %d %q, want the connection cut without a close frame", code, text)
	}
}

// After the relay loses Redis, publishes made meanwhile are lost by Pub/Sub;
// once it is back every client is resynced to the latest version.
func TestRedisFaultResyncsClients(t *testing.T) {
	t.Parallel()
	eachFault(t, []string{"client kill", "connection cut"}, func(t *testing.T, tc string, eng *testEngine, proxy *servertest.Proxy, f *fixture) {
		ids := []string{eng.newSession(t, 3), eng.newSession(t, 40)}
		var conns [][]*websocket.Conn
		for _, id := range ids {
			eng.startSession(t, id)
			conns = append(conns, []*websocket.Conn{f.connect(t, id), f.connect(t, id)})
		}
		ctx := context.Background()
		switch tc {
		case "client kill":
			if err := eng.rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				eng.doSwitch(t, id)
			}
		case "connection cut":
			proxy.Cut()
			for _, id := range ids {
				eng.doSwitch(t, id) // lost: the relay is not subscribed
				eng.doSwitch(t, id)
			}
			proxy.Restore()
		}
		for i, id := range ids {
			want, err := eng.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			v := scanInt(want, keyVersion)
			for _, c := range conns[i] {
				m := readUntil(t, c, v, "STATE_UPDATE", "STATE_SYNC")
				if m.Version != v {
					t.Fatalf("%s: version %d, want %d", id, m.Version, v)
				}
				sameState(t, m.State, want)
			}
		}
		if tc == "connection cut" && f.relay.m.resyncs.Get() == 0 {
			t.Fatal("no resync counted")
		}
	})
}

// A session deleted, or deleted and created again, while the relay had lost
// Redis: the resync tells the clients so (SESSION_DELETED and a close), or
// sends the new session's state although its version is lower than the one
// they had, and later updates build on it (large sessions too).
func TestRedisFaultSessionDeletedOrRecreated(t *testing.T) {
	t.Parallel()
	eachFault(t, []string{"deleted", "re-created"}, func(t *testing.T, tc string, eng *testEngine, proxy *servertest.Proxy, f *fixture) {
		sizes := []int{3, 40}
		ids := make([]string, len(sizes))
		conns := make([][]*websocket.Conn, len(sizes))
		for i, n := range sizes {
			ids[i] = eng.newSession(t, n)
			conns[i] = []*websocket.Conn{f.connect(t, ids[i]), f.connect(t, ids[i])}
			eng.startSession(t, ids[i])
			eng.doSwitch(t, ids[i])
			for _, c := range conns[i] {
				readUntil(t, c, 3, "STATE_UPDATE") // the relay has sent version 3
			}
		}
		proxy.Cut()
		for i, id := range ids {
			eng.deleteSession(t, id)
			if tc == "re-created" {
				eng.createID(t, id, sizes[i])
				eng.startSession(t, id) // version 2, below the 3 the clients saw
			}
		}
		proxy.Restore()
		ctx := context.Background()
		for i, id := range ids {
			for _, c := range conns[i] {
				m := read(t, c)
				if tc == "deleted" {
					if m.Type != "SESSION_DELETED" || m.SessionID != id {
						t.Fatalf("got %.200s, want SESSION_DELETED", m.raw)
					}
					if d := m.Timestamp - nowMS(f.clock); d > 5000 || d < -5000 {
						t.Fatalf("SESSION_DELETED timestamp %d ms off the Redis clock", d)
					}
					if code, text := closeCode(t, c); code != websocket.CloseNormalClosure || text != "session deleted" {
						t.Fatalf("close %d %q, want 1000 session deleted", code, text)
					}
					continue
				}
				if m.Type != "STATE_SYNC" || m.Version != 2 {
					t.Fatalf("got %.200s, want STATE_SYNC version 2", m.raw)
				}
				want, err := eng.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				sameState(t, m.State, want)
			}
			if tc == "re-created" {
				eng.doSwitch(t, id)
				want, err := eng.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range conns[i] {
					m := read(t, c)
					if m.Type != "STATE_UPDATE" || m.Version != 3 {
						t.Fatalf("after the re-create: got %.200s, want STATE_UPDATE version 3", m.raw)
					}
					sameState(t, m.State, want)
				}
			}
		}
	})
}

// The publish-to-send histogram and delivery counter move.
func TestMetrics(t *testing.T) {
	t.Parallel()
	eng, f := sharedFixture(t, Config{})
	id := eng.newSession(t, 2)
	c := f.connect(t, id)
	eng.startSession(t, id)
	read(t, c)
	eventually(t, "delivered", func() bool { return f.relay.m.delivered.Get() == 1 })
	var sb strings.Builder
	f.set.WritePrometheus(&sb)
	out := sb.String()
	for _, want := range []string{"synckairos_ws_clients 1", "synckairos_ws_sessions_subscribed 1",
		"synckairos_ws_messages_delivered_total 1", "synckairos_ws_publish_to_send_seconds_count 1"} {
		if !strings.Contains(out, want) {
			t.Fatalf("metrics lack %q:\n%s", want, out)
		}
	}
	_ = json.Valid
}

// messages_delivered_total counts what the writer wrote, not what was
// queued: for a client whose socket is full, the messages waiting in its
// queue are not counted; publish_to_send_seconds has one sample per written
// message (one client, so each write is the message's first).
func TestMetricsCountWrites(t *testing.T) {
	t.Parallel()
	eng, f := sharedFixture(t, Config{QueueSize: 32, PingInterval: time.Minute})
	id := eng.newSession(t, 2)
	dialSmallWindow(t, f.url(id)) // never reads again
	c := f.onlyClient(t)
	published := f.fillUntilBlocked(t, id, c)
	delivered := int(f.relay.m.delivered.Get())
	queued := len(c.q) // read second: it only shrinks
	if queued == 0 || delivered+queued > published {
		t.Fatalf("published %d, queued %d, counted delivered %d: want delivered <= %d",
			published, queued, delivered, published-queued)
	}
	var sb strings.Builder
	f.set.WritePrometheus(&sb)
	want := "synckairos_ws_publish_to_send_seconds_count " + strconv.Itoa(delivered) + "\n"
	if !strings.Contains(sb.String(), want) {
		t.Fatalf("metrics lack %q:\n%s", want, sb.String())
	}
}

// A client that stays connected across many ping periods and write
// deadlines keeps receiving: pings and deadline renewal do not break writes.
func TestLongLivedClientKeepsReceiving(t *testing.T) {
	t.Parallel()
	eng, f := sharedFixture(t, Config{PingInterval: 150 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	id := eng.newSession(t, 2)
	c := f.connect(t, id)
	eng.startSession(t, id)
	for v := int64(2); v < 22; v++ {
		if v > 2 {
			time.Sleep(40 * time.Millisecond) // 20 x 40 ms spans several deadlines and pings
			eng.doSwitch(t, id)
		}
		if m := read(t, c); m.Type != "STATE_UPDATE" || m.Version != v {
			t.Fatalf("got %s, want version %d", m.raw, v)
		}
	}
	if n := f.relay.m.writeErrors.Get() + f.relay.m.heartbeat.Get(); n != 0 {
		t.Fatalf("%d clients dropped", n)
	}
}
