package servertest

import (
	"context"
	"slices"
	"testing"
)

// TestStartCluster: the helper's cluster has three masters with a replica
// each and serves keys on every master; after Kill, the replica serves
// what its master held.
func TestStartCluster(t *testing.T) {
	c := StartCluster(t)
	if len(c.Addrs) != 6 || len(c.Masters) != 3 || len(c.Replicas) != 3 {
		t.Fatalf("addrs %v masters %v replicas %v", c.Addrs, c.Masters, c.Replicas)
	}
	ctx := context.Background()
	rdb := c.Client(t)
	// {a}, {b}, {c} hash to slots 15495, 3300 and 7365: one per master.
	for _, k := range []string{"{a}k", "{b}k", "{c}k"} {
		if err := rdb.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// WAIT makes the write to the master about to die reach its replica.
	owner, err := rdb.MasterForKey(ctx, "{a}k")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := owner.Wait(ctx, 1, 0).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d %v", n, err)
	}
	master := owner.Options().Addr
	promoted := c.Kill(t, master)
	if promoted == master || !slices.Contains(c.Masters, promoted) || slices.Contains(c.Masters, master) {
		t.Fatalf("promoted %s, masters now %v", promoted, c.Masters)
	}
	rdb2 := c.Client(t)
	for _, k := range []string{"{a}k", "{b}k", "{c}k"} {
		if v, err := rdb2.Get(ctx, k).Result(); err != nil || v != k {
			t.Errorf("GET %s after failover: %q %v", k, v, err)
		}
	}
}
