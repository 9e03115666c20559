package main

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/sessiontest"
)

// The root package tests the service as it is wired: in-process servers
// over real HTTP (api_*), the built binary, several instances. The engine's
// own tests are in engine/.

// sessions deletes each session a test creates over HTTP on the machine's
// Redis when the test ends (running sessions never expire; doReq tracks
// every create), and TestMain fails the run if one was left without a TTL
// anyway.
var sessions = sessiontest.New(servertest.RedisAddr())

// TestMain also fails the run when the tests left the audit flag on the
// shared Redis: it is sticky, and would make every later instance there
// without DATABASE_URL record into streams nobody drains.
func TestMain(m *testing.M) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: servertest.RedisAddr()})
	had := rdb.Exists(ctx, keyspace.Audit).Val() == 1
	code := sessions.Run(m)
	if !had && rdb.Exists(ctx, keyspace.Audit).Val() == 1 {
		fmt.Fprintln(os.Stderr, "FAIL: a test set the audit flag "+keyspace.Audit+" on "+servertest.RedisAddr()+
			" (an instance with DATABASE_URL on the shared Redis): give it a Redis of its own (startRedisServer), "+
			"and delete the key if no persisting instance uses that Redis")
		code = max(code, 1)
	}
	_ = rdb.Close()
	os.Exit(code)
}
