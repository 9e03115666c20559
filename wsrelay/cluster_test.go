package wsrelay

import (
	"context"
	"testing"
	"time"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/redisconn"
	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/session"
)

// TestClusterSlotMoveAndFailover runs the relay on a real Redis Cluster.
// A watched session's slot moves to another master, and Redis drops the
// relay's subscription with it: the relay links the shard again on the new
// master and the session's updates reach its client again. Then that
// master is killed and its replica takes over: the relay reconnects,
// resyncs, and updates flow again.
func TestClusterSlotMoveAndFailover(t *testing.T) {
	t.Parallel()
	c := servertest.StartCluster(t)
	// the service's client: its dial hook refreshes the slot map when a master dies
	rdb, err := redisconn.Open(redisconn.Config{ClusterAddrs: c.Addrs, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	eng := newEngine(t, rdb)
	f := newFixtureOn(t, Config{}, eng, rdb)
	id := eng.newSession(t, 2)
	ws := f.connect(t, id)
	eng.startSession(t, id)
	readUntil(t, ws, 2, "STATE_UPDATE")

	meta := keyspace.For(id).Meta
	var to string
	for _, m := range c.Masters {
		if m != c.SlotOwner(t, meta) {
			to = m
			break
		}
	}
	c.MoveSlot(t, meta, to)
	eng.doSwitch(t, id)
	if m := readUntil(t, ws, 3, "STATE_UPDATE", "STATE_SYNC"); m.Version != 3 {
		t.Fatalf("after the slot moved: %+v", m)
	}
	eventually(t, "the shard linked again", func() bool { return f.relay.m.resyncs.Get() >= 1 })

	// The kill is to test the relay, not Redis's asynchronous replication:
	// let the replica take every write first (the moved keys among them),
	// or the promoted replica may not know the session at all.
	if n, err := c.Node(t, to).Do(context.Background(), "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT on %s: %d replicas, %v", to, n, err)
	}
	c.Kill(t, to)
	// The switch may meet the failover window (503s); once it is in, the
	// client gets it, as an update or as the resync after the reconnect.
	var v int64
	for end := time.Now().Add(30 * time.Second); v == 0; time.Sleep(50 * time.Millisecond) {
		st, err := eng.Switch(context.Background(), id, session.SwitchArgs{})
		if err == nil {
			v = stampOf(st).version
		} else if time.Now().After(end) {
			t.Fatalf("no switch accepted after the failover: %v", err)
		}
	}
	if m := readUntil(t, ws, v, "STATE_UPDATE", "STATE_SYNC"); m.Version != v {
		t.Fatalf("after the failover: %+v", m)
	}
}
