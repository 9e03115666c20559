package main

import (
	"context"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/engine"
	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/session"
)

// BenchmarkHTTPSwitch measures POST /v1/sessions/{id}/switch through the
// real server on the machine's Redis, beside two floors taken in the same
// run: a bare fasthttp handler writing a state-sized body (HTTP cost alone)
// and the engine's switch, one EVALSHA and no HTTP (Redis cost alone). The server runs
// twice: rate limiter and request log off, then on (limits set high enough
// never to refuse; the log goes to a file). Each connection switches its
// own session. Reports p50 and p99 latency (µs) and throughput (req/s).
//
//	go test -run '^$' -bench HTTPSwitch -benchtime 20000x -count 3 .
func BenchmarkHTTPSwitch(b *testing.B) {
	logFile, err := os.CreateTemp("", "synckairos-bench-log-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(logFile.Name())
	defer logFile.Close()

	off := benchServer(b, benchEnv(nil), nil)
	on := benchServer(b, benchEnv(map[string]string{"RATE_LIMIT_ENABLED": "true", "LOG_REQUESTS": "true",
		"RATE_LIMIT_IP_MAX": "1000000000", "RATE_LIMIT_SWITCH_MAX": "1000000000"}), logFile)
	bare := bareServer(b)

	const maxConns = 64
	offIDs := benchSessions(b, off, maxConns, "")
	onIDs := benchSessions(b, on, maxConns, "")
	rawIDs := benchSessions(b, off, maxConns, "")

	rdb := redis.NewClient(&redis.Options{Addr: servertest.RedisAddr(), PoolSize: 128})
	defer rdb.Close()
	eng := engine.New(rdb, engine.Options{})
	if err := eng.Load(context.Background()); err != nil {
		b.Fatal(err)
	}

	for _, conns := range []int{1, 64} {
		c := "/conns=" + strconv.Itoa(conns)
		b.Run("bare-fasthttp"+c, func(b *testing.B) {
			runHTTPLoad(b, bare, conns, func(int) (string, string) { return "/v1/sessions/x/switch", "" })
		})
		b.Run("engine-switch"+c, func(b *testing.B) {
			runLoad(b, conns, func(w int) func() error {
				id := rawIDs[w]
				ctx := context.Background()
				return func() error {
					_, err := eng.Switch(ctx, id, session.SwitchArgs{})
					return err
				}
			})
		})
		b.Run("http-limits+log-off"+c, func(b *testing.B) {
			runHTTPLoad(b, off, conns, func(w int) (string, string) { return "/v1/sessions/" + offIDs[w] + "/switch", "" })
		})
		b.Run("http-limits+log-on"+c, func(b *testing.B) {
			runHTTPLoad(b, on, conns, func(w int) (string, string) { return "/v1/sessions/" + onIDs[w] + "/switch", "" })
		})
	}
}

// benchEnv is a benchmark server's environment: the shared Redis with a
// pool for 64 connections, rate limits and the request log off, then over.
func benchEnv(over map[string]string) map[string]string {
	env := map[string]string{"REDIS_URL": "redis://" + servertest.RedisAddr() + "?pool_size=128",
		"RATE_LIMIT_ENABLED": "false", "LOG_REQUESTS": "false"}
	maps.Copy(env, over)
	return env
}

// benchServer runs the service in-process with env as it is (no test
// defaults); log is where its log goes (nil: discarded).
func benchServer(b *testing.B, env map[string]string, log *os.File) string {
	b.Helper()
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		b.Fatal(err)
	}
	var to io.Writer // nil: the server's buffer, and nothing logged
	if log != nil {
		to = log
	} else {
		cfg.LogLevel = 100
	}
	return strings.TrimPrefix(serveAPI(b, cfg, to).base, "http://")
}

// benchSessions creates and starts n running sessions, with an
// Authorization header ("": none) and day-long clocks: the sessions a
// conns=1 run leaves idle keep running for the whole benchmark. They are
// removed at cleanup.
func benchSessions(b *testing.B, addr string, n int, authz string) []string {
	b.Helper()
	var hdr []string
	if authz != "" {
		hdr = []string{"Authorization", authz}
	}
	ids := make([]string, n)
	for i := range ids {
		id, _, body := newSessionBody(2, "")
		body = strings.ReplaceAll(body, `"total_time_ms":60000`, `"total_time_ms":86400000`)
		ids[i] = id
		if r := doReq(b, "POST", "http://"+addr+"/v1/sessions", body, hdr...); r.status != 201 {
			b.Fatal(r.status, string(r.body))
		}
		if r := doReq(b, "POST", "http://"+addr+"/v1/sessions/"+id+"/start", "", hdr...); r.status != 200 {
			b.Fatal(r.status, string(r.body))
		}
		b.Cleanup(func() {
			doReq(b, "DELETE", "http://"+addr+"/v1/sessions/"+id, "", hdr...)
		})
	}
	return ids
}

// bareServer answers every request with a fixed state-sized JSON body.
func bareServer(b *testing.B) string {
	body := make([]byte, 0, 900)
	body = append(body, `{"data":{"pad":"`...)
	for len(body) < 880 {
		body = append(body, 'x')
	}
	body = append(body, `"}}`...)
	ct := []byte("application/json")
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentTypeBytes(ct)
		ctx.SetBody(body)
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	b.Cleanup(func() { _ = s.Shutdown() })
	return ln.Addr().String()
}

// runHTTPLoad sends b.N POSTs over conns keep-alive connections, each
// worker to its path with its Authorization header ("" for none).
func runHTTPLoad(b *testing.B, addr string, conns int, req func(worker int) (path, authz string)) {
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: conns, ReadTimeout: 10 * time.Second}
	runLoad(b, conns, func(w int) func() error {
		path, authz := req(w)
		rq, resp := postRequest(addr, path, authz), fasthttp.AcquireResponse()
		return func() error { return post(hc, rq, resp) }
	})
}

// postRequest is a POST to path on addr with authz ("": none).
func postRequest(addr, path, authz string) *fasthttp.Request {
	rq := fasthttp.AcquireRequest()
	rq.SetRequestURI("http://" + addr + path)
	rq.Header.SetMethod("POST")
	if authz != "" {
		rq.Header.Set("Authorization", authz)
	}
	return rq
}

// post sends rq on hc; anything but a 200 is an error.
func post(hc *fasthttp.HostClient, rq *fasthttp.Request, resp *fasthttp.Response) error {
	if err := hc.Do(rq, resp); err != nil {
		return err
	}
	if resp.StatusCode() != 200 {
		return &statusErr{resp.StatusCode(), string(resp.Body())}
	}
	return nil
}

type statusErr struct {
	code int
	body string
}

func (e *statusErr) Error() string { return strconv.Itoa(e.code) + " " + e.body }

// runLoad runs b.N calls split over conns workers, each with its own op,
// and reports latency percentiles and throughput.
func runLoad(b *testing.B, conns int, op func(worker int) func() error) {
	ops := make([]func() error, conns)
	for w := range ops {
		ops[w] = op(w)
	}
	for w := range ops { // warm up connections
		if err := ops[w](); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([][]time.Duration, conns)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range ops {
		n := b.N / conns
		if w < b.N%conns {
			n++
		}
		lat[w] = make([]time.Duration, 0, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				t0 := time.Now()
				if err := ops[w](); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	pct := func(p float64) float64 { return float64(all[int(float64(len(all)-1)*p)].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
}
