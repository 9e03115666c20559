package main

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/synckairos/synckairos/servertest"
)

// apiServer is an in-process server on a loopback port, driven over real HTTP.
type apiServer struct {
	base string
	app  *app
	logs *syncBuffer
}

type syncBuffer = servertest.LogBuffer

// apiEnv is the environment of test servers: embedded Redis, limits off,
// unless a test overrides.
func apiEnv(over map[string]string) func(string) string {
	env := map[string]string{"RATE_LIMIT_ENABLED": "false", "LOG_LEVEL": "debug"}
	maps.Copy(env, over)
	return func(k string) string { return env[k] }
}

// startAPI runs newApp + serve with env; tweak may adjust the config (and
// the app, before it serves).
func startAPI(t testing.TB, env map[string]string, tweak func(*Config)) *apiServer {
	t.Helper()
	cfg, err := loadConfig(apiEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(&cfg)
	}
	return serveAPI(t, cfg, nil)
}

// serveAPI runs newApp + serve with cfg until the test ends. The log goes
// to logTo, or (nil) to the server's logs, shown when the test fails.
func serveAPI(t testing.TB, cfg Config, logTo io.Writer) *apiServer {
	t.Helper()
	logs := &syncBuffer{}
	if logTo == nil {
		logTo = logs
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, newLogger(cfg, logTo))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx, ln) }()
	t.Cleanup(func() {
		// A connection that never carried a request counts as idle only
		// after 5 s (fasthttp, like net/http), which would slow shutdown.
		servertest.Client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &apiServer{base: "http://" + ln.Addr().String(), app: a, logs: logs}
}

type apiResp struct {
	status int
	header http.Header
	body   []byte
}

type errBody = servertest.ErrBody

func (r apiResp) resp() servertest.Resp {
	return servertest.Resp{Status: r.status, Header: r.header, Body: r.body}
}

func (r apiResp) errCode(t testing.TB) errBody { t.Helper(); return r.resp().Err(t) }

// state decodes {"data": state}.
func (r apiResp) state(t testing.TB) map[string]any { t.Helper(); return r.resp().State(t) }

func doReq(t testing.TB, method, url, body string, hdr ...string) apiResp {
	t.Helper()
	r, err := tryReq(method, url, body, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	if id := createdSession(method, url, r); id != "" {
		sessions.Track(t, id) // deleted from the machine's Redis when t ends
	}
	return r
}

func createdSession(method, url string, r apiResp) string {
	return servertest.CreatedSession(method, url, r.resp())
}

func tryReq(method, url, body string, hdr ...string) (apiResp, error) {
	res, err := servertest.Try(method, url, body, hdr...)
	if err != nil {
		return apiResp{}, err
	}
	r := apiResp{status: res.Status, header: res.Header, body: res.Body}
	if id := createdSession(method, url, r); id != "" {
		sessions.Note(id) // doReq deletes it at cleanup; TestMain checks it is gone
	}
	return r, nil
}

// newSessionBody returns a create body with n participants and their ids.
func newSessionBody(n int, extra string) (id string, parts []string, body string) {
	return servertest.SessionBody(n, extra)
}

func num(v any) int64 { return servertest.Num(v) }

func freePort(t testing.TB) int { return servertest.FreePort(t) }

// startRedisServer runs a private redis-server the test may kill.
func startRedisServer(t testing.TB) (addr string, cmd *exec.Cmd) { return servertest.StartRedis(t) }

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	servertest.WaitFor(t, d, what, ok)
}

type wsMsg = servertest.WSMsg

func wsConnect(t *testing.T, addr, id string) *websocket.Conn { return servertest.WSDial(t, addr, id) }

func wsRead(t *testing.T, c *websocket.Conn) wsMsg { return servertest.WSRead(t, c) }
