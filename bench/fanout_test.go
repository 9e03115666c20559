package main

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/sessiontest"
)

// sessions deletes every session a scenario's scripts touch when the test
// ends (teardown should already have), and TestMain fails the run if one is
// left without a TTL.
var sessions = sessiontest.New(servertest.RedisAddr())

func TestMain(m *testing.M) { os.Exit(sessions.Run(m)) }

// These run the fan-out scenario end to end against the machine's Redis:
// the raw scripts from ../lua and the in-process minimal relay. They check
// counts and errors only, never timing.

func fanoutFixture(t *testing.T, drop func(int64) bool) (context.Context, *evalTarget) {
	t.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: servertest.RedisAddr()})
	rdb.AddHook(sessions.Hook(t))
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Skipf("no Redis on %s: %v", servertest.RedisAddr(), err)
	}
	et, err := newEvalTarget(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	addr, stop, err := startRelay(ctx, rdb, drop)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	et.relayAddr = addr
	return ctx, et
}

var smallFanout = scenario{Name: "t", Kind: "fanout", Params: Params{
	Sessions: 4, Participants: 3, Clients: 3, Concurrency: 4, Rate: 200, WarmupS: 0.1, DurationS: 0.25, Reps: 2,
}}

func TestFanoutEveryClientSeesEveryVersion(t *testing.T) {
	ctx, et := fanoutFixture(t, nil)
	r, err := runScenario(ctx, smallFanout, et, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := r.failed(); len(f) > 0 {
		t.Fatalf("clean run failed: %v", f)
	}
	for i, rep := range r.Reps {
		sw, dl := rep.Latency["switch"].Count, rep.Latency["delivery"].Count
		if sw == 0 || dl != sw*uint64(smallFanout.Params.Clients) {
			t.Errorf("rep %d: %d switches, %d deliveries; want clients × switches", i, sw, dl)
		}
	}
}

func TestFanoutCatchesALostMessage(t *testing.T) {
	// Lose the 10th message published on any of the sessions' channels.
	ctx, et := fanoutFixture(t, func(n int64) bool { return n == 10 })
	r, err := runScenario(ctx, smallFanout, et, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Missed < int64(smallFanout.Params.Clients) {
		t.Errorf("missed %d versions, want at least %d (one per client of that session)", r.Missed, smallFanout.Params.Clients)
	}
	if r.Errors["version_gap"] == 0 && r.Errors["version_never_received"] == 0 {
		t.Errorf("errors %v: the lost message went unnoticed", r.Errors)
	}
	if len(r.failed()) == 0 {
		t.Error("a run with a lost message must fail")
	}
}
