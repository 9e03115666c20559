package wsrelay

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fasthttp/websocket"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/fullstate"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/redisclock"
	"github.com/synckairos/synckairos/servertest"
)

// Publish-to-receive latency: the benchmark SPUBLISHes a real STATE_UPDATE
// (a 4-participant session, about 1.2 KB) on the machine's Redis and
// measures, per delivery, the time until a client read it. One message is
// in flight at a time.
//
//   - relay: this package; baseline: the least a relay can do (one Pub/Sub,
//     a map channel -> connections, WriteMessage from the reader; no queues,
//     no heartbeat), measured in the same run.
//
//   - same: the relay runs in the benchmark process; cross: in a second
//     process (this test binary re-executed), like an instance the publisher
//     does not run on. Its CPU per delivery is read from /proc.
//
//     go test -run '^$' -bench Relay -benchtime 300x ./wsrelay/
func BenchmarkRelay(b *testing.B) {
	type scenario struct {
		name            string
		sessions, conns int // conns per session
	}
	for _, sc := range []scenario{
		{"clients=1", 1, 1}, {"clients=100", 1, 100}, {"clients=1000", 1, 1000}, {"sessions=1000x2", 1000, 2},
	} {
		for _, where := range []string{"same", "cross"} {
			for _, kind := range []string{"relay", "baseline"} {
				b.Run(sc.name+"/"+where+"/"+kind, func(b *testing.B) {
					benchFanout(b, kind, where, sc.sessions, sc.conns)
				})
			}
		}
	}
}

func benchFanout(b *testing.B, kind, where string, sessions, perSession int) {
	rdb := newRedis(b, servertest.RedisAddr())
	eng := newEngine(b, rdb)
	clock := newRedisClock(b, rdb)
	var srv *benchServer
	if where == "same" {
		srv = startBenchServer(b, kind, eng, clock)
	} else {
		srv = spawnBenchServer(b, kind)
	}

	ids := make([]string, sessions)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	stateJSON := func() []byte {
		id := eng.newSession(b, 4)
		s, err := eng.Get(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}()

	// Clients: each records the latency of every delivery it reads.
	var sent []atomic.Int64 // publish time (ns) by version
	maxV := b.N + 2
	sent = make([]atomic.Int64, maxV+1)
	var pending sync.WaitGroup
	var samplesMu sync.Mutex
	var samples []time.Duration
	var readers sync.WaitGroup
	conns := make([]*websocket.Conn, 0, sessions*perSession)
	dialer := &websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	for _, id := range ids {
		for j := 0; j < perSession; j++ {
			c, _, err := dialer.Dial("ws://"+srv.addr+"/ws?sessionId="+id, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := c.ReadMessage(); err != nil { // CONNECTED
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
	}
	for _, c := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			local := make([]time.Duration, 0, b.N)
			defer func() {
				samplesMu.Lock()
				samples = append(samples, local...)
				samplesMu.Unlock()
			}()
			for {
				_, p, err := c.ReadMessage()
				if err != nil {
					return
				}
				now := time.Now().UnixNano()
				v := scanInt(p, keyVersion)
				if v >= 2 && v <= int64(maxV) {
					local = append(local, time.Duration(now-sent[v].Load()))
				}
				pending.Done()
			}
		}()
	}

	ctx := context.Background()
	publish := func(v int, id string, waitFor int) {
		msg := stateMessage("STATE_UPDATE", id, nowMS(clock), stamp{1, int64(v)}, stateJSON)
		pending.Add(waitFor)
		sent[v].Store(time.Now().UnixNano())
		if err := rdb.SPublish(ctx, keyspace.For(id).StateChannel, msg).Err(); err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() { pending.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatalf("version %d: deliveries missing after 30 s (a client was dropped)", v)
		}
	}
	// Warm-up: every session subscribed and every client reached (version 1
	// is not measured).
	for _, id := range ids {
		ch := keyspace.For(id).StateChannel
		for n := int64(0); n == 0; time.Sleep(time.Millisecond) {
			n = rdb.PubSubNumSub(ctx, ch).Val()[ch] // the baseline does not wait for it
		}
		publish(1, id, perSession)
	}

	cpu0 := srv.cpu()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		publish(i+2, ids[i%len(ids)], perSession)
	}
	b.StopTimer()
	cpu := srv.cpu() - cpu0
	for _, c := range conns {
		c.Close()
	}
	readers.Wait()

	slices.Sort(samples)
	q := func(p float64) float64 {
		if len(samples) == 0 {
			return 0
		}
		return float64(samples[int(p*float64(len(samples)-1))]) / 1e6
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	if cpu > 0 {
		b.ReportMetric(float64(cpu)/1e3/float64(b.N*perSession), "relay-cpu-µs/delivery")
	}
}

// benchServer is a relay (or the baseline) serving /ws.
type benchServer struct {
	addr string
	cpu  func() time.Duration // CPU used so far by the server's process; 0 when shared
}

func startBenchServer(b testing.TB, kind string, eng *testEngine, clock redisclock.Source) *benchServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var h fasthttp.RequestHandler
	var stop func()
	switch kind {
	case "relay":
		ps := redis.NewClient(&redis.Options{Addr: servertest.RedisAddr()})
		r := New(Config{}, ps, eng, fullstate.New(eng.fetch, 100), clock,
			slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.NewSet())
		h = r.Handler
		stop = func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = r.Shutdown(ctx)
			ps.Close()
		}
	default:
		m := newMiniRelay(servertest.RedisAddr())
		h, stop = m.handler, m.close
	}
	srv := &fasthttp.Server{Handler: h}
	go srv.Serve(ln)
	b.Cleanup(func() {
		stop()
		_ = srv.Shutdown()
	})
	return &benchServer{addr: ln.Addr().String(), cpu: func() time.Duration { return 0 }}
}

// spawnBenchServer re-executes this test binary as a server process.
func spawnBenchServer(b testing.TB, kind string) *benchServer {
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchServerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "WSRELAY_BENCH_SERVER="+kind)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdin, _ := cmd.StdinPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close() // the server exits when its stdin closes
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "BENCH_ADDR "); ok {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			pid := cmd.Process.Pid
			return &benchServer{addr: addr, cpu: func() time.Duration { return procCPU(pid) }}
		}
	}
	b.Fatal("bench server did not report its address")
	return nil
}

// procCPU is the user+system CPU time of a process, from /proc.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

// TestBenchServerProcess is the server side of the cross-process
// benchmarks; it does nothing in a normal test run.
func TestBenchServerProcess(t *testing.T) {
	kind := os.Getenv("WSRELAY_BENCH_SERVER")
	if kind == "" {
		t.Skip("only run by BenchmarkRelay")
	}
	if path := os.Getenv("WSRELAY_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	rdb := newRedis(t, servertest.RedisAddr())
	srv := startBenchServer(t, kind, newEngine(t, rdb), newRedisClock(t, rdb))
	os.Stdout.WriteString("BENCH_ADDR " + srv.addr + "\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// miniRelay is the baseline: one subscription for the instance, a map from
// channel to connections, and each message written straight to each
// connection from the Pub/Sub reader.
type miniRelay struct {
	rdb  *redis.Client
	ps   *redis.PubSub
	up   websocket.FastHTTPUpgrader
	mu   sync.RWMutex
	subs map[string][]*websocket.Conn
	done chan struct{}
}

func newMiniRelay(addr string) *miniRelay {
	m := &miniRelay{rdb: redis.NewClient(&redis.Options{Addr: addr}), subs: map[string][]*websocket.Conn{},
		done: make(chan struct{})}
	m.ps = m.rdb.SSubscribe(context.Background())
	ch := m.ps.Channel(redis.WithChannelSize(4096))
	go func() {
		defer close(m.done)
		for msg := range ch {
			m.mu.RLock()
			cs := m.subs[msg.Channel]
			m.mu.RUnlock()
			p := []byte(msg.Payload)
			for _, c := range cs {
				_ = c.WriteMessage(websocket.TextMessage, p)
			}
		}
	}()
	return m
}

func (m *miniRelay) handler(ctx *fasthttp.RequestCtx) {
	id := string(ctx.QueryArgs().Peek("sessionId"))
	ch := keyspace.For(id).StateChannel
	_ = m.up.Upgrade(ctx, func(c *websocket.Conn) {
		// CONNECTED first, then register: only the reader writes after that.
		_ = c.WriteMessage(websocket.TextMessage, connectedMessage(id, 0))
		m.mu.Lock()
		first := len(m.subs[ch]) == 0
		m.subs[ch] = append(m.subs[ch], c)
		m.mu.Unlock()
		if first {
			_ = m.ps.SSubscribe(context.Background(), ch)
		}
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				break
			}
		}
		m.mu.Lock()
		m.subs[ch] = slices.DeleteFunc(m.subs[ch], func(o *websocket.Conn) bool { return o == c })
		m.mu.Unlock()
	})
}

func (m *miniRelay) close() {
	m.ps.Close()
	<-m.done
	m.rdb.Close()
}
