package wsrelay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fasthttp/websocket"
	json "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/engine"
	"github.com/synckairos/synckairos/fullstate"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/redisclock"
	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/session"
	"github.com/synckairos/synckairos/sessiontest"
)

// The tests drive the real scripts (lua/*.lua, loaded as any other
// language would) against a real Redis, so the relay sees exactly the bytes
// the service publishes.

// sessions deletes every session the tests' scripts touch on the machine's
// Redis when the test ends, and TestMain fails the run if one is left
// without a TTL anyway (running sessions never expire).
var sessions = sessiontest.New(servertest.RedisAddr())

func TestMain(m *testing.M) { os.Exit(sessions.Run(m)) }

func newRedis(t testing.TB, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	rdb.AddHook(sessions.Hook(t))
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", addr, err)
	}
	return rdb
}

// testEngine drives the real scripts through the engine, as the service
// does, and counts the full-state reads the relay makes (Get).
type testEngine struct {
	*engine.Engine
	rdb  redis.UniversalClient
	gets atomic.Int64
}

func newEngine(t testing.TB, rdb redis.UniversalClient) *testEngine {
	t.Helper()
	e := engine.New(rdb, engine.Options{})
	if err := e.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &testEngine{Engine: e, rdb: rdb}
}

// Get satisfies StateReader.
func (e *testEngine) Get(ctx context.Context, id string) ([]byte, error) {
	e.gets.Add(1)
	return e.Engine.Get(ctx, id)
}

func (e *testEngine) fetch(ctx context.Context, id string) ([]byte, [][]byte, error) {
	return e.Parts(ctx, id)
}

// newSession creates a session of n participants and returns its id.
func (e *testEngine) newSession(t testing.TB, n int) string {
	t.Helper()
	id := uuid.NewString()
	e.createID(t, id, n)
	return id
}

func (e *testEngine) createID(t testing.TB, id string, n int) {
	t.Helper()
	c := &session.Config{ID: id, SyncMode: session.ModePerParticipant}
	for i := 0; i < n; i++ {
		c.Participants = append(c.Participants, session.Participant{ID: uuid.NewString(), Index: int64(i), TotalTimeMS: 600000})
	}
	if _, err := e.Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = e.Delete(context.Background(), id, 0) })
}

func (e *testEngine) startSession(t testing.TB, id string) {
	t.Helper()
	if _, err := e.Start(context.Background(), id, 0); err != nil {
		t.Fatal(err)
	}
}

func (e *testEngine) doSwitch(t testing.TB, id string) {
	t.Helper()
	if _, err := e.Switch(context.Background(), id, session.SwitchArgs{}); err != nil {
		t.Fatal(err)
	}
}

func (e *testEngine) deleteSession(t testing.TB, id string) {
	t.Helper()
	if _, err := e.Delete(context.Background(), id, 0); err != nil {
		t.Fatal(err)
	}
}

// newRedisClock is the service's Redis clock, synced once.
func newRedisClock(t testing.TB, rdb redis.UniversalClient) *redisclock.Clock {
	t.Helper()
	c := redisclock.New(rdb)
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// nowMS is c's reading in the ms the relay's messages carry.
func nowMS(c redisclock.Source) int64 { return c.Now() / 1000 }

// fixture is one relay served on a loopback port.
type fixture struct {
	relay *Relay
	eng   *testEngine
	set   *metrics.Set
	addr  string
	clock *redisclock.Clock
}

// newFixture starts a relay whose Pub/Sub talks to pubsubAddr (the
// machine's Redis when ""), with state read through eng.
func newFixture(t testing.TB, cfg Config, eng *testEngine, pubsubAddr string) *fixture {
	t.Helper()
	if pubsubAddr == "" {
		pubsubAddr = servertest.RedisAddr()
	}
	ps := redis.NewClient(&redis.Options{Addr: pubsubAddr, MaxRetries: -1})
	t.Cleanup(func() { ps.Close() })
	return newFixtureOn(t, cfg, eng, ps)
}

// newFixtureOn starts a relay whose Pub/Sub goes through ps.
func newFixtureOn(t testing.TB, cfg Config, eng *testEngine, ps redis.UniversalClient) *fixture {
	t.Helper()
	f := &fixture{eng: eng, set: metrics.NewSet(), clock: newRedisClock(t, eng.rdb)}
	asm := fullstate.New(eng.fetch, 100)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	f.relay = New(cfg, ps, eng, asm, f.clock, log, f.set)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/ws" {
			f.relay.Handler(ctx)
			return
		}
		ctx.SetStatusCode(404)
	}}
	go srv.Serve(ln)
	f.addr = ln.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f.relay.Shutdown(ctx)
		_ = srv.Shutdown()
	})
	return f
}

func (f *fixture) url(id string) string {
	return "ws://" + f.addr + "/ws?sessionId=" + url.QueryEscape(id)
}

// dial connects to the relay; it does not read.
func dial(t testing.TB, u string, hdr map[string]string) *websocket.Conn {
	t.Helper()
	h := make(map[string][]string)
	for k, v := range hdr {
		h[k] = []string{v}
	}
	c, resp, err := websocket.DefaultDialer.Dial(u, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", u, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// msg is any server message, decoded for assertions.
type msg struct {
	Type            string          `json:"type"`
	SessionID       string          `json:"sessionId"`
	Timestamp       int64           `json:"timestamp"`
	Version         int64           `json:"version"`
	State           json.RawMessage `json:"state"`
	Code            string          `json:"code"`
	Message         string          `json:"message"`
	ClientTimestamp json.RawMessage `json:"client_timestamp"`
	raw             []byte
}

// read reads the next message (failing after 10 s).
func read(t testing.TB, c *websocket.Conn) msg {
	t.Helper()
	m, err := tryRead(c, 10*time.Second)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

func tryRead(c *websocket.Conn, timeout time.Duration) (msg, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	_, b, err := c.ReadMessage()
	if err != nil {
		return msg{}, err
	}
	var m msg
	if err := json.Unmarshal(b, &m); err != nil {
		return msg{}, errors.New("bad JSON " + strconv.Quote(string(b)))
	}
	m.raw = b
	return m, nil
}

// connect dials and consumes CONNECTED.
func (f *fixture) connect(t testing.TB, id string) *websocket.Conn {
	t.Helper()
	c := dial(t, f.url(id), nil)
	if m := read(t, c); m.Type != "CONNECTED" || m.SessionID != id {
		t.Fatalf("first message: %s", m.raw)
	}
	return c
}

// readUntil reads until a message of type typ with at least version v.
func readUntil(t testing.TB, c *websocket.Conn, v int64, types ...string) msg {
	t.Helper()
	for {
		m := read(t, c)
		for _, typ := range types {
			if m.Type == typ && m.Version >= v {
				return m
			}
		}
	}
}

func send(t testing.TB, c *websocket.Conn, s string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

// closeCode reads until the connection ends and returns its close code
// (-1 when it ended without a close frame).
func closeCode(t testing.TB, c *websocket.Conn) (int, string) {
	t.Helper()
	for {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := c.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Text
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("connection still open after 10 s")
			}
			return -1, err.Error()
		}
	}
}

// sameState compares two v1 states, ignoring server_time_ms (the time each
// was read).
func sameState(t testing.TB, got, want []byte) {
	t.Helper()
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	delete(g, "server_time_ms")
	delete(w, "server_time_ms")
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("state differs:\n got %s\nwant %s", got, want)
	}
}

// eventually polls cond for up to 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	servertest.WaitFor(t, 10*time.Second, what, cond)
}

// sharedFixture is a relay with cfg and its engine, both on the shared
// Redis.
func sharedFixture(t testing.TB, cfg Config) (*testEngine, *fixture) {
	t.Helper()
	eng := newEngine(t, newRedis(t, servertest.RedisAddr()))
	return eng, newFixture(t, cfg, eng, "")
}

// readAll reads c in the background (so c answers pings), passing each
// message on, with room for n unread, until c fails; then it closes the
// channel.
func readAll(c *websocket.Conn, n int) <-chan msg {
	ch := make(chan msg, n)
	go func() {
		defer close(ch)
		for {
			m, err := tryRead(c, 30*time.Second)
			if err != nil {
				return
			}
			ch <- m
		}
	}()
	return ch
}

// faultFixture is a relay whose Redis (for the test alone) it reaches
// through a cuttable proxy, so a test can cut or kill its connections.
func faultFixture(t testing.TB) (*testEngine, *servertest.Proxy, *fixture) {
	t.Helper()
	addr, _ := servertest.StartRedis(t)
	eng := newEngine(t, newRedis(t, addr))
	proxy := newProxy(t, addr)
	return eng, proxy, newFixture(t, Config{}, eng, proxy.Addr())
}

// eachFault runs fault as a parallel subtest per case, each on its own
// faultFixture.
func eachFault(t *testing.T, cases []string, fault func(t *testing.T, tc string, eng *testEngine, proxy *servertest.Proxy, f *fixture)) {
	for _, tc := range cases {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			eng, proxy, f := faultFixture(t)
			fault(t, tc, eng, proxy, f)
		})
	}
}

// newProxy is a cuttable TCP relay in front of target (servertest.Proxy).
func newProxy(t testing.TB, target string) *servertest.Proxy { return servertest.NewProxy(t, target) }

// dialSmallWindow connects with a 16 KiB receive buffer (no autotuning), so
// a client that stops reading fills its socket after a few frames, and
// consumes CONNECTED.
func dialSmallWindow(t testing.TB, u string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetReadBuffer(16 << 10)
		}
		return c, err
	}}
	c, _, err := d.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	t.Cleanup(func() { c.Close() })
	if m := read(t, c); m.Type != "CONNECTED" {
		t.Fatalf("first message: %s", m.raw)
	}
	return c
}

// onlyClient is the relay's one connection.
func (f *fixture) onlyClient(t testing.TB) *client {
	t.Helper()
	f.relay.mu.Lock()
	defer f.relay.mu.Unlock()
	var cs []*client
	for _, slot := range f.relay.slots {
		for c := range slot {
			cs = append(cs, c)
		}
	}
	if len(cs) != 1 {
		t.Fatalf("%d clients, want 1", len(cs))
	}
	return cs[0]
}

// fillUntilBlocked publishes 64 KiB updates on session id, one at a time,
// until c's writer is stuck on a socket its peer does not read and
// c's queue holds at least half its capacity. It returns how many it
// published; all were queued (none dropped as slow).
func (f *fixture) fillUntilBlocked(t testing.TB, id string, c *client) int {
	t.Helper()
	pad := strings.Repeat("x", 64<<10)
	ch := keyspace.For(id).StateChannel
	for v := 2; v < 2+100*cap(c.q); v++ {
		p := `{"type":"STATE_UPDATE","sessionId":"` + id + `","timestamp":` + strconv.FormatInt(nowMS(f.clock), 10) +
			`,"version":` + strconv.Itoa(v) + `,"state":{"version":` + strconv.Itoa(v) + `,"pad":"` + pad + `"}}`
		if err := f.eng.rdb.SPublish(context.Background(), ch, p).Err(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // let the writer drain what it can
		if len(c.q) >= cap(c.q)/2 {
			if f.relay.m.slow.Get() != 0 {
				t.Fatal("client dropped as slow while filling")
			}
			return v - 1
		}
	}
	t.Fatal("the client's queue never filled")
	return 0
}
