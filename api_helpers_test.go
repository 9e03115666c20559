package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/google/uuid"
)

// apiServer is an in-process server on a loopback port, driven over real HTTP.
type apiServer struct {
	base string
	app  *app
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// apiEnv is the environment of test servers: embedded Redis, limits off,
// unless a test overrides.
func apiEnv(over map[string]string) func(string) string {
	env := map[string]string{"RATE_LIMIT_ENABLED": "false", "LOG_LEVEL": "debug"}
	for k, v := range over {
		env[k] = v
	}
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
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, newLogger(cfg, logs))
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
		apiClient.CloseIdleConnections()
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

// errBody is the v1 error envelope.
type errBody struct {
	Error struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Details json.RawMessage `json:"details"`
	} `json:"error"`
}

func (r apiResp) errCode(t testing.TB) errBody {
	t.Helper()
	var e errBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return e
}

// state decodes {"data": state}.
func (r apiResp) state(t testing.TB) map[string]any {
	t.Helper()
	var d struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(r.body, &d); err != nil || d.Data == nil {
		t.Fatalf("data body %q: %v", r.body, err)
	}
	return d.Data
}

var apiClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}

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

// createdSession returns the id of the session a request created, if it did.
func createdSession(method, url string, r apiResp) string {
	if method != "POST" || r.status != 201 || !strings.HasSuffix(url, "/v1/sessions") {
		return ""
	}
	var d struct {
		Data struct {
			ID string `json:"session_id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(r.body, &d)
	return d.Data.ID
}

func tryReq(method, url, body string, hdr ...string) (apiResp, error) {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return apiResp{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := apiClient.Do(req)
	if err != nil {
		return apiResp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return apiResp{}, err
	}
	r := apiResp{status: res.StatusCode, header: res.Header, body: b}
	if id := createdSession(method, url, r); id != "" {
		sessions.Note(id) // doReq deletes it at cleanup; TestMain checks it is gone
	}
	return r, nil
}

// newSessionBody returns a create body with n participants and their ids.
func newSessionBody(n int, extra string) (id string, parts []string, body string) {
	id = uuid.NewString()
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"session_id":%q,"sync_mode":"per_participant","participants":[`, id)
	for i := 0; i < n; i++ {
		p := uuid.NewString()
		parts = append(parts, p)
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"participant_id":%q,"participant_index":%d,"total_time_ms":60000}`, p, i)
	}
	b.WriteString("]" + extra + "}")
	return id, parts, b.String()
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// freePort returns a loopback port nobody listens on right now. It picks
// from 20000-32767, below Linux's ephemeral range (32768+), so the many
// outgoing connections of parallel tests cannot take it before the server
// that is handed it binds it.
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12768)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("no free loopback port in 20000-32767")
	return 0
}

// startRedisServer runs a private redis-server the test may kill.
func startRedisServer(t testing.TB) (addr string, cmd *exec.Cmd) {
	t.Helper()
	port := freePort(t)
	cmd = exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr = "127.0.0.1:" + strconv.Itoa(port)
	waitFor(t, 5*time.Second, "redis-server "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr, cmd
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// buildBinary builds the service once per test run.
func buildBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "synckairos-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "synckairos")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}
