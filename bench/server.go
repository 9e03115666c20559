package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is a SyncKairos the tool started itself (-spawn).
type server struct {
	cmd    *exec.Cmd
	addr   string
	pid    int
	done   chan struct{}
	cancel context.CancelFunc // cmd's context: SIGTERM, SIGKILL 10 s later
}

// freePort returns a port nobody listens on right now, below the
// ephemeral range (32768+), so that some other client's outgoing socket
// cannot take it between this check and the server's bind.
func freePort() (int, error) {
	for i := 0; i < 100; i++ {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		return port, nil
	}
	return 0, errors.New("no free port in 20000-31999")
}

// spawnServer starts bin on a free port with env (each "{port}" replaced)
// added to the tool's own, and waits until /health answers 200.
func spawnServer(bin string, env []string, logPath string) (*server, error) {
	var err error
	for try := 0; try < 3; try++ { // another process may bind the port first
		var s *server
		if s, err = spawnOnce(bin, env, logPath); err == nil {
			return s, nil
		}
	}
	return nil, err
}

func spawnOnce(bin string, env []string, logPath string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ps := strconv.Itoa(port)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second // then SIGKILL
	cmd.Env = os.Environ()
	for _, e := range env {
		cmd.Env = append(cmd.Env, strings.ReplaceAll(e, "{port}", ps))
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		cancel()
		logf.Close()
		return nil, err
	}
	s := &server{cmd: cmd, addr: "127.0.0.1:" + ps, pid: cmd.Process.Pid, done: make(chan struct{}), cancel: cancel}
	go func() { _ = cmd.Wait(); logf.Close(); close(s.done) }()
	hc := newHTTPClient(s.addr, 1)
	for i := 0; i < 200; i++ { // 20 s
		select {
		case <-s.done:
			return nil, fmt.Errorf("server exited at start-up; see %s", logPath)
		default:
		}
		status, _, err := hc.Get(nil, "http://"+s.addr+"/health")
		if err == nil && status == 200 {
			return s, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("server not healthy after 20 s; see %s", logPath)
}

// stop sends SIGTERM, and SIGKILL if the server has not exited 10 s later
// (the command's Cancel and WaitDelay), and waits for the exit.
func (s *server) stop() {
	s.cancel()
	<-s.done
}

// rssKB reads VmRSS of a process from /proc.
func rssKB(pid int) (int64, error) {
	return procField("/proc/"+strconv.Itoa(pid)+"/status", "VmRSS:")
}

// procField returns the first number on the line of path that starts with key.
func procField(path, key string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		f := strings.Fields(line[len(key):])
		if len(f) == 0 {
			break
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, errors.New(path + ": no " + key)
}

// fdLimit returns the soft open-files limit of a process.
func fdLimit(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			f := strings.Fields(line[len("Max open files"):])
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, errors.New("no open-files limit")
}

// raiseFDLimit lifts the tool's soft open-files limit to the hard one: a
// 20,000-client run needs that many sockets.
func raiseFDLimit() uint64 {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil {
		return 0
	}
	l.Cur = l.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}

// machine describes where the run happened.
func machine() string {
	host, _ := os.Hostname()
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if i := strings.IndexByte(line, ':'); i >= 0 {
					model = strings.TrimSpace(line[i+1:])
				}
				break
			}
		}
	}
	memKB, _ := procField("/proc/meminfo", "MemTotal:")
	return fmt.Sprintf("%s: %d CPUs (%s), %.1f GB RAM", host, numCPU(), model, float64(memKB)/1024/1024)
}

// health checks that addr answers /health.
func health(addr string) error {
	hc := newHTTPClient(addr, 1)
	status, _, err := hc.GetTimeout(nil, "http://"+addr+"/health", 5*time.Second)
	if err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	if status != 200 {
		return fmt.Errorf("%s/health: status %d", addr, status)
	}
	return nil
}
