// Package servertest holds what the black-box and integration tests of
// several packages share: the machine's Redis, private redis-servers on
// free ports, waiting, HTTP requests against a server, and the built
// binary. Only tests import it.
package servertest

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/redis/go-redis/v9"
)

// RedisAddr is the Redis the tests share; REDIS_TEST_ADDR overrides it.
func RedisAddr() string {
	if a := os.Getenv("REDIS_TEST_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// Redis is a client of RedisAddr, closed when t ends.
func Redis(t testing.TB) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: RedisAddr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// FreePort returns a loopback port nobody listens on right now. It picks
// from 20000-32767, below Linux's ephemeral range (32768+), so the many
// outgoing connections of parallel tests cannot take it before the server
// that is handed it binds it.
func FreePort(t testing.TB) int {
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

// StartRedis runs a private redis-server the test may stall or kill; it is
// stopped by its PID when the test ends.
func StartRedis(t testing.TB) (addr string, cmd *exec.Cmd) {
	t.Helper()
	port := FreePort(t)
	cmd = exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr = "127.0.0.1:" + strconv.Itoa(port)
	WaitFor(t, 5*time.Second, "redis-server "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr, cmd
}

// WaitFor polls ok every 20 ms until it holds, failing t after d.
func WaitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Resp is one HTTP reply.
type Resp struct {
	Status int
	Header http.Header
	Body   []byte
}

// ErrBody is the v1 error envelope.
type ErrBody struct {
	Error struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Details json.RawMessage `json:"details"`
	} `json:"error"`
}

// Err decodes r as the v1 error envelope.
func (r Resp) Err(t testing.TB) ErrBody {
	t.Helper()
	var e ErrBody
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.Body, err)
	}
	return e
}

// State decodes {"data": state}.
func (r Resp) State(t testing.TB) map[string]any {
	t.Helper()
	var d struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(r.Body, &d); err != nil || d.Data == nil {
		t.Fatalf("data body %q: %v", r.Body, err)
	}
	return d.Data
}

// CreatedSession returns the id of the session a request created, if it did.
func CreatedSession(method, url string, r Resp) string {
	if method != "POST" || r.Status != 201 || !bytes.HasSuffix([]byte(url), []byte("/v1/sessions")) {
		return ""
	}
	var d struct {
		Data struct {
			ID string `json:"session_id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(r.Body, &d)
	return d.Data.ID
}

// Client is the HTTP client the helpers share (keep-alive, many idle
// connections per host).
var Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}

// Try sends one request; a body goes as application/json, hdr are
// name, value pairs.
func Try(method, url, body string, hdr ...string) (Resp, error) {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return Resp{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := Client.Do(req)
	if err != nil {
		return Resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return Resp{}, err
	}
	return Resp{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary builds the service from the module at root once per test binary
// and returns its path. RunMain deletes it when the tests end, so a
// package that calls Binary has RunMain as its TestMain.
func Binary(t testing.TB, root string) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "synckairos-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "synckairos")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// removeBinary deletes what Binary built, if it built anything.
func removeBinary() {
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
}
