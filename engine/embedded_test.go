package engine

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/synckairos/synckairos/redisconn"
)

// TestCoreOnEmbeddedRedis runs the core's script tests again on the
// embedded dev-mode Redis (miniredis, whose Lua and cjson differ from
// Redis's), so that `make run` without REDIS_URL cannot silently break.
// It re-runs this test binary with REDIS_TEST_ADDR pointing at an
// in-process miniredis, skipping the tests that need other services.
func TestCoreOnEmbeddedRedis(t *testing.T) {
	if os.Getenv("SK_CORE_ON_EMBEDDED") != "" {
		t.Skip("already the embedded run")
	}
	t.Parallel()
	m, err := redisconn.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// one test at a time: miniredis runs every command under one lock, in
	// this (race-instrumented) process, so parallel tests queue behind each
	// other's scripts for tens of ms and blow the timing windows of the mode
	// tests (a 40 ms turn cap must not run out between two calls). The
	// Node runner is left out: the embedded Redis answers SSUBSCRIBE as
	// SUBSCRIBE, and Node's client wants the sharded replies. So are the
	// older layouts' sessions: the embedded Redis has no struct or
	// cmsgpack, and never held a session a real Redis stored.
	cmd := exec.Command(os.Args[0], "-test.run", ".", "-test.v", "-test.count", "1", "-test.parallel", "1",
		"-test.skip", "TestAPI|TestAuth|FuzzAuth|TestTokenCommand|TestBinary|TestWS|TestPersist|TestMigrate|TestLua|TestCoreOnEmbeddedRedis|TestNodeContract|TestUnpackedSessions")
	cmd.Env = append(os.Environ(), "REDIS_TEST_ADDR="+m.Addr(), "SK_CORE_ON_EMBEDDED=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("core tests on the embedded Redis: %v\n%s", err, out)
	}
	passed := strings.Count(string(out), "--- PASS: ")
	if passed < 10 || !strings.Contains(string(out), "--- PASS: TestSwitchArithmetic") {
		t.Fatalf("only %d tests ran on the embedded Redis:\n%s", passed, out)
	}
	t.Logf("%d core tests passed on the embedded Redis", passed)
}
