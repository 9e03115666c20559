package main

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/sessiontest"
)

// The root package tests the service as it is wired: in-process servers
// over real HTTP (api_*), the built binary, several instances. The engine's
// own tests are in engine/.

// testRedisAddr is the machine's Redis; REDIS_TEST_ADDR overrides it.
func testRedisAddr() string {
	if a := os.Getenv("REDIS_TEST_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// sessions deletes each session a test creates over HTTP on the machine's
// Redis when the test ends (running sessions never expire; doReq tracks
// every create), and TestMain fails the run if one was left without a TTL
// anyway.
var sessions = sessiontest.New(testRedisAddr())

// TestMain also fails the run when the tests left the audit flag on the
// shared Redis: it is sticky, and would make every later instance there
// without DATABASE_URL record into streams nobody drains.
func TestMain(m *testing.M) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testRedisAddr()})
	had := rdb.Exists(ctx, keyspace.Audit).Val() == 1
	code := sessions.Run(m)
	if !had && rdb.Exists(ctx, keyspace.Audit).Val() == 1 {
		fmt.Fprintln(os.Stderr, "FAIL: a test set the audit flag "+keyspace.Audit+" on "+testRedisAddr()+
			" (an instance with DATABASE_URL on the shared Redis): give it a Redis of its own (startRedisServer), "+
			"and delete the key if no persisting instance uses that Redis")
		code = max(code, 1)
	}
	_ = rdb.Close()
	os.Exit(code)
}
