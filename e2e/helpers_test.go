// Package e2e holds the black-box tests: they build the service, run it
// as processes (one, several, killed, restarted) against the machine's
// Redis and PostgreSQL or private servers, and talk to it over HTTP and
// WebSocket only. Tests of one package sit beside it; the root package
// tests the wiring in process.
package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/sessiontest"
)

// sessions deletes the sessions the tests create on the shared Redis when
// each test ends, and fails the run if one was left without a TTL.
var sessions = sessiontest.New(servertest.RedisAddr())

// TestMain also stops the Redis Cluster the cluster rows share, if one
// started.
func TestMain(m *testing.M) { servertest.RunMain(m, sessions.Run) }

// doReq sends one request and tracks the session a create made.
func doReq(t testing.TB, method, url, body string, hdr ...string) servertest.Resp {
	t.Helper()
	r, err := servertest.Try(method, url, body, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	if id := servertest.CreatedSession(method, url, r); id != "" {
		sessions.Track(t, id)
	}
	return r
}

// instance is the built service running as a process on a free port.
type instance struct {
	addr   string // host:port
	port   int
	cmd    *exec.Cmd
	cancel context.CancelFunc // cmd's context: SIGTERM, SIGKILL 20 s later
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
	logs   *servertest.LogBuffer
	once   sync.Once
}

// startInstance runs the built service against the Redis at redisAddr
// (persistence off, limits off, env added) and waits for its /health. A
// port from FreePort can be taken again before the service binds it
// (parallel tests open connections all the time), so a start that exits
// at once is retried on another port. The process is stopped (SIGTERM)
// when t ends, if the test did not stop or kill it.
func startInstance(t testing.TB, redisAddr string, env ...string) *instance {
	t.Helper()
	bin := servertest.Binary(t, "..")
	for attempt := 1; ; attempt++ {
		in := &instance{port: servertest.FreePort(t), exited: make(chan struct{}), logs: &servertest.LogBuffer{}}
		in.addr = "127.0.0.1:" + strconv.Itoa(in.port)
		ctx, cancel := context.WithCancel(context.Background())
		in.cmd, in.cancel = exec.CommandContext(ctx, bin), cancel
		in.cmd.Cancel = func() error { return in.cmd.Process.Signal(syscall.SIGTERM) }
		in.cmd.WaitDelay = 20 * time.Second // then SIGKILL
		in.cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(in.port), "REDIS_URL=redis://"+redisAddr,
			"DATABASE_URL=", "RATE_LIMIT_ENABLED=false", "LOG_LEVEL=info", "LOG_FORMAT=text")
		in.cmd.Env = append(in.cmd.Env, env...)
		in.cmd.Stdout, in.cmd.Stderr = in.logs, in.logs
		if err := in.cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		go func() { in.err = in.cmd.Wait(); close(in.exited) }()
		if !in.up() {
			in.kill()
			if attempt < 5 && strings.Contains(in.logs.String(), "address already in use") {
				continue
			}
			t.Fatalf("instance on %s did not start:\n%s", in.addr, in.logs.String())
		}
		t.Cleanup(func() {
			in.stop(t)
			if t.Failed() {
				t.Logf("instance %d log:\n%s", in.port, in.logs.String())
			}
		})
		return in
	}
}

// up waits up to 20 s for /health, or for the process to exit.
func (in *instance) up() bool {
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if r, err := servertest.Try("GET", "http://"+in.addr+"/health", ""); err == nil && r.Status == 200 {
			return true
		}
		select {
		case <-in.exited:
			return false
		default:
		}
	}
	return false
}

// kill ends the process at once (SIGKILL: no shutdown steps).
func (in *instance) kill() {
	in.once.Do(func() { _ = in.cmd.Process.Kill(); <-in.exited; in.cancel() })
}

// stop sends SIGTERM and waits for the exit; a process still there 20 s
// later is killed (the command's Cancel and WaitDelay), and t fails.
func (in *instance) stop(t testing.TB) {
	in.once.Do(func() {
		in.cancel()
		<-in.exited
		var ee *exec.ExitError
		if errors.As(in.err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
			t.Errorf("instance on %d did not stop within 20 s", in.port)
		}
	})
}
