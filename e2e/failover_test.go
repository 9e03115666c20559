package e2e

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/synckairos/synckairos/pgtest"
	"github.com/synckairos/synckairos/servertest"
)

// TestFailover: two instances on a private Redis Cluster, persisting to
// PostgreSQL, under a steady load of switches with a WebSocket client per
// session on each instance. A master is killed with SIGKILL and its
// replica takes over. Every reply is 200 or a 503 UNAVAILABLE /
// OUTCOME_UNKNOWN; the versions a session's 200s carry are unique and
// increasing (no double apply); after the load the service serves every
// session, each WebSocket client reaches the version REST reports, and
// PostgreSQL holds each (session, version) once. Writes acknowledged but
// lost with the dead master (acked versions above what survived) are
// logged: Redis replication is asynchronous.
func TestFailover(t *testing.T) {
	c := servertest.StartCluster(t)
	schema := pgtest.Schema(t, "e2e_t_")
	env := []string{"REDIS_URL=", "REDIS_CLUSTER_ADDRS=" + strings.Join(c.Addrs, ","), "DATABASE_URL=" + pgtest.Via("", schema)}
	insts := []*instance{startInstance(t, servertest.RedisAddr(), env...), startInstance(t, servertest.RedisAddr(), env...)}

	const n = 24 // sessions: spread over the three masters' slots
	type sess struct {
		id  string
		ws  []*websocket.Conn
		seq []int64 // per reply in order: the version of a 200, 0 for a 503
	}
	ss := make([]*sess, n)
	for i := range ss {
		id, _, body := servertest.SessionBody(2, "")
		base := "http://" + insts[i%2].addr + "/v1/sessions"
		if r := doReq(t, "POST", base, body); r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		if r := doReq(t, "POST", base+"/"+id+"/start", ""); r.Status != 200 {
			t.Fatalf("start: %d %s", r.Status, r.Body)
		}
		ss[i] = &sess{id: id, ws: []*websocket.Conn{servertest.WSDial(t, insts[0].addr, id), servertest.WSDial(t, insts[1].addr, id)}}
	}

	var stop atomic.Bool
	var unavailable, unknown, accepted atomic.Int64
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Go(func() {
			for k := 0; !stop.Load(); k++ {
				in := insts[(i+k)%2]
				r, err := servertest.Try("POST", "http://"+in.addr+"/v1/sessions/"+s.id+"/switch", "{}")
				switch {
				case err != nil:
					t.Errorf("%s: %v", s.id, err)
					return
				case r.Status == 200:
					accepted.Add(1)
					s.seq = append(s.seq, servertest.Num(r.State(t)["version"]))
				case r.Status == 503 && r.Err(t).Error.Code == "UNAVAILABLE":
					unavailable.Add(1)
					s.seq = append(s.seq, 0)
				case r.Status == 503 && r.Err(t).Error.Code == "OUTCOME_UNKNOWN":
					unknown.Add(1)
					s.seq = append(s.seq, 0)
				default:
					t.Errorf("%s: switch %d %s", s.id, r.Status, r.Body)
					return
				}
			}
		})
	}
	// the load runs before, through and after the failover
	servertest.WaitFor(t, 30*time.Second, "200 accepted switches", func() bool { return accepted.Load() >= 200 })
	promoted := c.Kill(t, c.Masters[0])
	before := accepted.Load()
	servertest.WaitFor(t, 30*time.Second, "200 more accepted switches", func() bool { return accepted.Load() >= before+200 })
	stop.Store(true)
	wg.Wait()
	t.Logf("failover to %s: %d accepted, %d UNAVAILABLE, %d OUTCOME_UNKNOWN", promoted, accepted.Load(), unavailable.Load(), unknown.Load())

	lost := 0
	for _, s := range ss {
		// one more switch: the session still serves, and moves forward
		r := doReq(t, "POST", "http://"+insts[0].addr+"/v1/sessions/"+s.id+"/switch", "{}")
		if r.Status != 200 {
			t.Fatalf("%s: switch after the failover: %d %s", s.id, r.Status, r.Body)
		}
		final := servertest.Num(r.State(t)["version"])
		l, err := auditVersions(append(s.seq, final))
		if err != "" {
			t.Errorf("%s: %s in %v", s.id, err, s.seq)
		}
		lost += l
		for _, ws := range s.ws {
			for {
				if m := servertest.WSRead(t, ws); m.Version == final && (m.Type == "STATE_UPDATE" || m.Type == "STATE_SYNC") {
					break
				}
			}
		}
	}
	t.Logf("lost writes (acknowledged, not surviving the failover): %d of %d accepted", lost, accepted.Load())

	pool, err := pgxpool.New(context.Background(), pgtest.Via("", schema))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var dups int
	if err := pool.QueryRow(context.Background(),
		`SELECT count(*) FROM (SELECT session_id, life, version FROM sync_events GROUP BY 1, 2, 3 HAVING count(*) > 1) d`).Scan(&dups); err != nil {
		t.Fatal(err)
	}
	if dups != 0 {
		t.Errorf("%d (session, life, version) rows duplicated in PostgreSQL", dups)
	}
}

// auditVersions checks the replies one client got for one session, in
// order (a switch's version, 0 for a 503): consecutive accepted switches
// are one version apart, plus at most one per 503 between them (that
// request may have applied); more is a double apply. A version at or below
// the one before is the failover's rollback: the versions from it up to
// the one before were acknowledged and lost; it may happen once.
func auditVersions(seq []int64) (lost int, problem string) {
	var last, unsure int64
	rollbacks := 0
	for _, v := range seq {
		switch {
		case v == 0:
			unsure++
			continue
		case last == 0:
		case v <= last:
			rollbacks++
			lost += int(last - v + 1)
		case v-last > 1+unsure:
			return lost, "double apply: " + strconv.FormatInt(last, 10) + " then " + strconv.FormatInt(v, 10)
		}
		last, unsure = v, 0
	}
	if rollbacks > 1 {
		return lost, strconv.Itoa(rollbacks) + " rollbacks, want at most one"
	}
	return lost, ""
}

func TestAuditVersions(t *testing.T) {
	for _, tc := range []struct {
		seq     []int64
		lost    int
		problem bool
	}{
		{[]int64{3, 4, 5, 6}, 0, false},
		{[]int64{3, 0, 5, 6}, 0, false},    // the 503 applied
		{[]int64{3, 0, 4, 5}, 0, false},    // it did not
		{[]int64{3, 5}, 0, true},           // applied twice with no 503
		{[]int64{3, 0, 6}, 0, true},        // more than the one 503 allows
		{[]int64{3, 4, 5, 4, 5}, 2, false}, // 4 and 5 lost, then redone
		{[]int64{3, 4, 0, 0, 3, 4}, 2, false},
		{[]int64{3, 4, 3, 4, 3}, 4, true}, // two rollbacks
	} {
		lost, problem := auditVersions(tc.seq)
		if lost != tc.lost || (problem != "") != tc.problem {
			t.Errorf("%v: lost %d problem %q, want %d %v", tc.seq, lost, problem, tc.lost, tc.problem)
		}
	}
}
