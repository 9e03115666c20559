package servertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a real Redis Cluster of 3 masters, each with one replica, on
// free loopback ports: private redis-servers stopped by their PIDs.
type Cluster struct {
	Addrs    []string          // all six nodes, the seed list for REDIS_CLUSTER_ADDRS
	Masters  []string          // the three masters at the start
	Replicas map[string]string // master -> its replica

	dir   string
	mu    sync.Mutex
	procs map[string]*exec.Cmd // addr -> its redis-server
}

// clusterMissing is the loud skip of every cluster test on a machine
// without Redis's binaries.
const clusterMissing = "*** redis-server/redis-cli not found: Redis Cluster tests SKIPPED ***"

var (
	sharedOnce sync.Once
	shared     *Cluster
	sharedErr  error
)

// SharedCluster returns the one Cluster of this test binary, started on the
// first call; tests that only read and write unique keys share it. The
// package's TestMain stops it with StopSharedCluster. A test that kills a
// node starts a private one with StartCluster instead.
func SharedCluster(t testing.TB) *Cluster {
	t.Helper()
	if !clusterTools() {
		t.Skip(clusterMissing)
	}
	sharedOnce.Do(func() { shared, sharedErr = newCluster() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// StopSharedCluster stops the shared Cluster if one was started.
func StopSharedCluster() {
	if shared != nil {
		shared.Stop()
	}
}

// RunMain is the TestMain of a package that may use SharedCluster: it runs
// the tests with run (m.Run when nil; e.g. a sessiontest's Run), stops the
// shared Cluster if one started, deletes the binary Binary built, and exits
// with the tests' code.
func RunMain(m *testing.M, run func(*testing.M) int) {
	if run == nil {
		run = (*testing.M).Run
	}
	code := run(m)
	StopSharedCluster()
	removeBinary()
	os.Exit(code)
}

// StartCluster runs a private Cluster for t, stopped when t ends.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	if !clusterTools() {
		t.Skip(clusterMissing)
	}
	c, err := newCluster()
	if c != nil {
		t.Cleanup(c.Stop)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func clusterTools() bool {
	_, e1 := exec.LookPath("redis-server")
	_, e2 := exec.LookPath("redis-cli")
	return e1 == nil && e2 == nil
}

// newCluster starts six nodes, joins them with redis-cli --cluster create
// and waits until every node sees the whole cluster healthy. On an error
// the nodes already started are left for the caller's Stop.
func newCluster() (*Cluster, error) {
	dir, err := os.MkdirTemp("", "synckairos-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, procs: map[string]*exec.Cmd{}, Replicas: map[string]string{}}
	for range 6 {
		if err := c.startNode(); err != nil {
			return c, err
		}
	}
	for _, a := range c.Addrs {
		if err := waitUntil(10*time.Second, "redis-server "+a, func() bool { return dialable(a) }); err != nil {
			return c, err
		}
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		return c, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.waitHealthy(30 * time.Second); err != nil {
		return c, err
	}
	nodes, err := c.nodes(c.Addrs[0])
	if err != nil {
		return c, err
	}
	for _, n := range nodes {
		if n.master {
			c.Masters = append(c.Masters, n.addr)
		}
	}
	for _, n := range nodes {
		if !n.master {
			for _, m := range nodes {
				if m.id == n.masterID {
					c.Replicas[m.addr] = n.addr
				}
			}
		}
	}
	return c, nil
}

// startNode runs one cluster-enabled redis-server. Its bus port is its port
// + 10000, so the port is picked in 20000-22767 with both it and the bus
// port free, all below Linux's ephemeral range (see FreePort).
func (c *Cluster) startNode() error {
	for range 100 {
		port := 20000 + rand.IntN(2768)
		if slices.Contains(c.Addrs, "127.0.0.1:"+strconv.Itoa(port)) || !portFree(port) || !portFree(port+10000) {
			continue
		}
		p := strconv.Itoa(port)
		cmd := exec.Command("redis-server", "--port", p, "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes-"+p+".conf",
			"--cluster-node-timeout", "1000", "--dir", c.dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no")
		if err := cmd.Start(); err != nil {
			return err
		}
		addr := "127.0.0.1:" + p
		c.mu.Lock()
		c.procs[addr] = cmd
		c.mu.Unlock()
		c.Addrs = append(c.Addrs, addr)
		return nil
	}
	return fmt.Errorf("no free port pair in 20000-22767")
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func dialable(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// Stop kills every node still running and removes the cluster's files.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for addr, cmd := range c.procs {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		delete(c.procs, addr)
	}
	_ = os.RemoveAll(c.dir)
}

// Kill ends the master at addr with SIGKILL (no shutdown, no last
// replication) and waits until its replica has taken over its slots and
// every surviving node sees all 16384 slots served; it returns the new
// master's address.
func (c *Cluster) Kill(t testing.TB, master string) string {
	t.Helper()
	replica, ok := c.Replicas[master]
	if !ok {
		t.Fatalf("%s is not a master with a replica", master)
	}
	c.mu.Lock()
	cmd := c.procs[master]
	delete(c.procs, master)
	c.mu.Unlock()
	if cmd == nil {
		t.Fatalf("%s is not running", master)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	err := waitUntil(30*time.Second, "replica "+replica+" to take over from "+master, func() bool {
		if c.check() != nil {
			return false
		}
		nodes, err := c.nodes(replica)
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if n.addr == replica {
				return n.master
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	delete(c.Replicas, master)
	for i, m := range c.Masters {
		if m == master {
			c.Masters[i] = replica
		}
	}
	return replica
}

// Client is a cluster client on c for t, closed when t ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Node is a plain client on one node (INFO, CLUSTER, per-master stats),
// closed when t ends.
func (c *Cluster) Node(t testing.TB, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// waitHealthy waits until check passes.
func (c *Cluster) waitHealthy(d time.Duration) error {
	var last error
	err := waitUntil(d, "the cluster to be healthy", func() bool { last = c.check(); return last == nil })
	if err != nil {
		return fmt.Errorf("%v: %v", err, last)
	}
	return nil
}

// check is nil when every running node says cluster_state:ok with every
// slot served, knows every running node with none failing or in
// handshake, and every replica's link to its master is up (so a kill
// right after finds a replica with the data).
func (c *Cluster) check() error {
	c.mu.Lock()
	running := make([]string, 0, len(c.procs))
	for a := range c.procs {
		running = append(running, a)
	}
	c.mu.Unlock()
	ctx := context.Background()
	for _, a := range running {
		rdb := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
		info, err := rdb.ClusterInfo(ctx).Result()
		repl, err2 := rdb.Info(ctx, "replication").Result()
		rdb.Close()
		if err != nil || err2 != nil {
			return fmt.Errorf("%s: %v %v", a, err, err2)
		}
		for _, want := range []string{"cluster_state:ok", "cluster_slots_ok:16384"} {
			if !strings.Contains(info, want+"\r\n") {
				return fmt.Errorf("%s: no %s in\n%s", a, want, info)
			}
		}
		if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return fmt.Errorf("%s: replica link not up", a)
		}
		nodes, err := c.nodes(a)
		if err != nil {
			return err
		}
		alive := 0
		for _, n := range nodes {
			if n.failing {
				continue
			}
			for _, r := range running {
				if r == n.addr {
					alive++
				}
			}
		}
		if alive != len(running) {
			return fmt.Errorf("%s sees %d of %d running nodes healthy", a, alive, len(running))
		}
	}
	return nil
}

type clusterNode struct {
	id, addr, masterID string
	master, failing    bool
}

// nodes parses CLUSTER NODES as the node at addr sees it; a node marked
// fail, pfail, handshake or noaddr counts as failing.
func (c *Cluster) nodes(addr string) ([]clusterNode, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	out, err := rdb.ClusterNodes(context.Background()).Result()
	if err != nil {
		return nil, err
	}
	var ns []clusterNode
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		n := clusterNode{id: f[0], addr: strings.Split(f[1], "@")[0], masterID: f[3]}
		for fl := range strings.SplitSeq(f[2], ",") {
			switch fl {
			case "master":
				n.master = true
			case "fail", "fail?", "handshake", "noaddr":
				n.failing = true
			}
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// waitUntil polls ok every 20 ms for up to d.
func waitUntil(d time.Duration, what string, ok func() bool) error {
	for end := time.Now().Add(d); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			return fmt.Errorf("timed out after %v waiting for %s", d, what)
		}
	}
	return nil
}

// MoveSlot moves the slot of key from the master serving it to the master
// at to, keys and all, the way `redis-cli --cluster reshard` does
// (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE on every master),
// and waits until every node sees to serving it.
func (c *Cluster) MoveSlot(t testing.TB, key, to string) {
	t.Helper()
	ctx := context.Background()
	node := func(addr string) *redis.Client {
		rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}
	dst := node(to)
	slot, err := dst.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	from := c.owner(t, int(slot))
	if from == to {
		t.Fatalf("slot %d is already on %s", slot, to)
	}
	src := node(from)
	srcID, dstID := src.ClusterMyID(ctx).Val(), dst.ClusterMyID(ctx).Val()
	s := strconv.FormatInt(slot, 10)
	must := func(what string, err error) {
		if err != nil {
			t.Fatalf("moving slot %s: %s: %v", s, what, err)
		}
	}
	must("importing", dst.Do(ctx, "CLUSTER", "SETSLOT", s, "IMPORTING", srcID).Err())
	must("migrating", src.Do(ctx, "CLUSTER", "SETSLOT", s, "MIGRATING", dstID).Err())
	host, port, _ := net.SplitHostPort(to)
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		must("keys in slot", err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must("migrate", src.Do(ctx, args...).Err())
	}
	for _, m := range c.Masters {
		must("node", node(m).Do(ctx, "CLUSTER", "SETSLOT", s, "NODE", dstID).Err())
	}
	if err := waitUntil(30*time.Second, "every node to see slot "+s+" on "+to, func() bool {
		for _, a := range c.Addrs {
			if c.ownerSeenBy(a, int(slot)) != to {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
}

// owner is the master serving slot, as the first running node sees it.
func (c *Cluster) owner(t testing.TB, slot int) string {
	t.Helper()
	c.mu.Lock()
	var any string
	for a := range c.procs {
		any = a
		break
	}
	c.mu.Unlock()
	if o := c.ownerSeenBy(any, slot); o != "" {
		return o
	}
	t.Fatalf("no node serves slot %d", slot)
	return ""
}

func (c *Cluster) ownerSeenBy(addr string, slot int) string {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	slots, err := rdb.ClusterSlots(context.Background()).Result()
	if err != nil {
		return ""
	}
	for _, r := range slots {
		if int(r.Start) <= slot && slot <= int(r.End) && len(r.Nodes) > 0 {
			return r.Nodes[0].Addr
		}
	}
	return ""
}

// SlotOwner is the master serving key's slot.
func (c *Cluster) SlotOwner(t testing.TB, key string) string {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: c.Masters[0], MaxRetries: -1})
	defer rdb.Close()
	slot, err := rdb.ClusterKeySlot(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return c.owner(t, int(slot))
}
