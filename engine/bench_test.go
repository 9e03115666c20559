package engine

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/session"
)

// Benchmarks of each script against the machine's Redis, one client on
// loopback, beside a go-redis PING measured in the same run. Each reports
// its own per-op latency percentiles (p50-us, p99-us: only the timed call,
// not the set-up a sub-benchmark needs between calls). The switch also
// reports Redis's own CPU per call (redis-us/call: the delta of INFO
// commandstats cmdstat_evalsha, median over windows of 25 calls free of
// other clients' EVALSHAs; see cpuMeter), the size of what it publishes
// (pub-bytes), and a PING timed beside each switch (ping-p50-us;
// x-ping-p50 = switch p50 / that PING p50).
//
//	go test -run '^$' -bench 'Ping|Script' -benchtime 1000x .
//	go test -run '^$' -bench SwitchFloor -benchtime 2000x .
//
// Sessions run with event_cap 0 (no audit events) so benchmarks do not
// grow the shared shard streams; BenchmarkScriptSwitchRaw measures the
// switch script alone, with and without its XADD (on a private stream).

var benchSizes = []int{4, 100, 1000}

// latencies collects per-op durations and reports their percentiles.
type latencies []time.Duration

func (l *latencies) time(f func()) {
	t0 := time.Now()
	f()
	*l = append(*l, time.Since(t0))
}

func (l latencies) p50() float64 {
	s := slices.Sorted(slices.Values(l))
	return float64(s[len(s)/2].Nanoseconds()) / 1e3
}

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	pct := func(p float64) float64 {
		return float64(l[int(p*float64(len(l)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-us")
	b.ReportMetric(pct(0.99), "p99-us")
}

func benchScripts(b *testing.B, eventCap int64) (*Engine, *redis.Client) {
	b.Helper()
	rdb := newTestClient(b)
	s := New(rdb, Options{EventCap: eventCap, StateCacheMax: 100})
	if err := s.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s, rdb
}

func BenchmarkPing(b *testing.B) {
	rdb := newTestClient(b)
	ctx := context.Background()
	lat := make(latencies, 0, b.N)
	b.ResetTimer()
	for range b.N {
		lat.time(func() {
			if err := rdb.Ping(ctx).Err(); err != nil {
				b.Fatal(err)
			}
		})
	}
	b.StopTimer()
	lat.report(b)
}

// BenchmarkScript runs every script at 4, 100 and 1000 participants.
func BenchmarkScript(b *testing.B) {
	ctx := context.Background()
	must := func(_ []byte, err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	mustDel := func(s *Engine, id string) {
		if _, err := s.Delete(ctx, id, 0); err != nil {
			b.Fatal(err)
		}
	}
	// fresh returns a new config whose keys go when the benchmark ends.
	fresh := func(b *testing.B, n int) *session.Config {
		return newConfig(b, session.ModePerParticipant, n, 3_600_000)
	}
	type bench struct {
		name string
		run  func(b *testing.B, s *Engine, rdb *redis.Client, n int, lat *latencies)
	}
	benches := []bench{
		{"create", func(b *testing.B, s *Engine, _ *redis.Client, n int, lat *latencies) {
			for range b.N {
				c := fresh(b, n)
				lat.time(func() { must(s.Create(ctx, c)) })
				mustDel(s, c.ID)
			}
		}},
		{"start", func(b *testing.B, s *Engine, _ *redis.Client, n int, lat *latencies) {
			for range b.N {
				c := fresh(b, n)
				must(s.Create(ctx, c))
				lat.time(func() { must(s.Start(ctx, c.ID, 0)) })
				mustDel(s, c.ID)
			}
		}},
		{"switch", func(b *testing.B, s *Engine, rdb *redis.Client, n int, lat *latencies) {
			c, _ := running(b, s, session.ModePerParticipant, n, 3_600_000)
			size := benchPublished(b, s, rdb, c.ID)
			// a PING beside every switch, so the ratio to PING holds even
			// when the shared machine's load drifts during the run
			ping := make(latencies, 0, b.N)
			cpu := newCPUMeter(b, rdb)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				ping.time(func() {
					if err := rdb.Ping(ctx).Err(); err != nil {
						b.Fatal(err)
					}
				})
				b.StartTimer()
				lat.time(func() { must(s.Switch(ctx, c.ID, session.SwitchArgs{})) })
				cpu.tick(b)
			}
			b.StopTimer()
			cpu.report(b)
			b.ReportMetric(float64(size), "pub-bytes")
			b.ReportMetric(ping.p50(), "ping-p50-us")
			b.ReportMetric(lat.p50()/ping.p50(), "x-ping-p50")
		}},
		{"get", func(b *testing.B, s *Engine, _ *redis.Client, n int, lat *latencies) {
			c, _ := running(b, s, session.ModePerParticipant, n, 3_600_000)
			b.ResetTimer()
			for range b.N {
				lat.time(func() { must(s.Get(ctx, c.ID)) })
			}
		}},
		{"pause", func(b *testing.B, s *Engine, _ *redis.Client, n int, lat *latencies) {
			c, _ := running(b, s, session.ModePerParticipant, n, 3_600_000)
			b.ResetTimer()
			for range b.N {
				lat.time(func() { must(s.Pause(ctx, c.ID, 0)) })
				must(s.Resume(ctx, c.ID, 0))
			}
		}},
		{"resume", func(b *testing.B, s *Engine, _ *redis.Client, n int, lat *latencies) {
			c, _ := running(b, s, session.ModePerParticipant, n, 3_600_000)
			b.ResetTimer()
			for range b.N {
				must(s.Pause(ctx, c.ID, 0))
				lat.time(func() { must(s.Resume(ctx, c.ID, 0)) })
			}
		}},
		{"complete", func(b *testing.B, s *Engine, _ *redis.Client, n int, lat *latencies) {
			for range b.N {
				c := fresh(b, n)
				must(s.Create(ctx, c))
				must(s.Start(ctx, c.ID, 0))
				lat.time(func() { must(s.Complete(ctx, c.ID, 0)) })
				mustDel(s, c.ID)
			}
		}},
		{"delete", func(b *testing.B, s *Engine, _ *redis.Client, n int, lat *latencies) {
			for range b.N {
				c := fresh(b, n)
				must(s.Create(ctx, c))
				must(s.Start(ctx, c.ID, 0))
				lat.time(func() { mustDel(s, c.ID) })
			}
		}},
	}
	for _, bb := range benches {
		for _, n := range benchSizes {
			b.Run(bb.name+"/n="+strconv.Itoa(n), func(b *testing.B) {
				s, rdb := benchScripts(b, 0)
				lat := make(latencies, 0, b.N)
				bb.run(b, s, rdb, n, &lat)
				b.StopTimer()
				lat.report(b)
			})
		}
	}
}

// BenchmarkScriptSwitchRaw is the switch script alone, raw EVALSHA with
// no client-side decoding, with and without its audit event (XADD to a
// private stream with the session's hash tag). Its redis-us/call is the
// script's own cost: the wrapper's rebuilding of a 1000-participant state
// makes the Go GC compete with Redis for the machine's 2 cores, which
// inflates Redis's wall-clock usec in BenchmarkScript/switch.
func BenchmarkScriptSwitchRaw(b *testing.B) {
	for _, n := range []int{4, 1000} {
		for _, events := range []bool{false, true} {
			name := "n=" + strconv.Itoa(n) + "/events=" + strconv.FormatBool(events)
			b.Run(name, func(b *testing.B) {
				s, rdb := benchScripts(b, 0)
				ctx := context.Background()
				c, _ := running(b, s, session.ModePerParticipant, n, 3_600_000)
				k := keyspace.For(c.ID)
				stream := "sk:" + keyspace.Tag(keyspace.ShardOf(c.ID)) + ":bench-events:" + c.ID
				b.Cleanup(func() { rdb.Del(context.Background(), stream) })
				keys := []string{k.Meta, k.Parts, k.Index, stream, keyspace.Deadlines(keyspace.ShardOf(c.ID)), k.Idem(""),
					k.Budget(), k.Budget()}
				eventCap := "0"
				if events {
					eventCap = "100000000"
				}
				sha := shaOf("switchCycle5-8.lua")
				lat := make(latencies, 0, b.N)
				cpu := newCPUMeter(b, rdb)
				b.ResetTimer()
				for range b.N {
					lat.time(func() {
						if err := rdb.EvalSha(ctx, sha, keys, c.ID, k.StateChannel, eventCap, "", "", "").Err(); err != nil {
							b.Fatal(err)
						}
					})
					cpu.tick(b)
				}
				b.StopTimer()
				cpu.report(b)
				lat.report(b)
			})
		}
	}
}

// Stand-ins for BenchmarkSwitchFloor: scripts that do only what any
// switch must do, with no logic, so the benchmark shows the least a
// switch can cost beside a PING. They are measuring tools, not product
// scripts. KEYS are the switch's; ARGV[4] is the STATE_UPDATE up to its
// participants (taken from a real switch), ARGV[3] a value to write.
const (
	// floorSwitch: the calls this key layout needs (read meta, read the
	// fragments, TIME, write two fragments, write meta, the deadline
	// index, SPUBLISH), each with its real payload.
	floorSwitch = `
local m = redis.call('HMGET', KEYS[1], 'status', 'version', 'active')
local p = redis.call('HMGET', KEYS[2], '0', '1', '2', '3')
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], '0', p[1], '1', p[2])
redis.call('HSET', KEYS[1], 'floor', ARGV[3])
redis.call('ZADD', KEYS[5], '1764643200000', ARGV[1])
local msg = ARGV[4] .. table.concat(p, ',') .. ']}}'
redis.call('SPUBLISH', ARGV[2], msg)
return {'full', msg}`
	// minSwitch: the fewest calls any layout could do (one hash holding
	// meta and fragments, no deadline index): read, TIME, write, SPUBLISH.
	minSwitch = `
local p = redis.call('HMGET', KEYS[2], '0', '1', '2', '3', 'floor')
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], '0', p[1], '1', p[2], 'floor', ARGV[3])
local msg = ARGV[4] .. table.concat(p, ',', 1, 4) .. ']}}'
redis.call('SPUBLISH', ARGV[2], msg)
return {'full', msg}`
)

// BenchmarkSwitchFloor puts the switch beside what bounds it from below,
// each timed right after a PING in one loop, at 4 participants: a no-op
// EVALSHA with no keys, the same with the switch's 5 keys and 7 args, the
// two stand-ins above (on a session of their own), and the switch through
// the wrapper. x-* is each one's p50 over the PING p50 of the same loop:
// the 1.5x target has to hold for the switch, which cannot be
// cheaper than x-floor (and no layout cheaper than x-min).
func BenchmarkSwitchFloor(b *testing.B) {
	s, rdb := benchScripts(b, 0)
	ctx := context.Background()
	c, _ := running(b, s, session.ModePerParticipant, 4, 3_600_000)
	f, _ := running(b, s, session.ModePerParticipant, 4, 3_600_000)
	kc, kf := keyspace.For(c.ID), keyspace.For(f.ID)
	dl := "sk:" + keyspace.Tag(keyspace.ShardOf(f.ID)) + ":bench-deadlines:" + f.ID
	b.Cleanup(func() { rdb.Del(context.Background(), dl) })
	state, err := s.Get(ctx, f.ID)
	if err != nil {
		b.Fatal(err)
	}
	cut := strings.Index(string(state), `"participants":[`)
	if cut < 0 {
		b.Fatalf("no participants in %s", state)
	}
	head := `{"type":"STATE_UPDATE","sessionId":"` + f.ID + `","timestamp":1764643200000,"version":3,"state":` +
		string(state[:cut+len(`"participants":[`)])
	floorKeys := []string{kf.Meta, kf.Parts, kf.Index, kf.Stream, dl}
	switchKeys := []string{kc.Meta, kc.Parts, kc.Index, kc.Stream, dl}
	noop, floor, minimal := redis.NewScript(`return 1`), redis.NewScript(floorSwitch), redis.NewScript(minSwitch)
	for _, sc := range []*redis.Script{noop, floor, minimal} {
		if err := sc.Load(ctx, rdb).Err(); err != nil {
			b.Fatal(err)
		}
	}
	type step struct {
		name string
		run  func() error
		lat  latencies
	}
	steps := []*step{
		{name: "x-noop", run: func() error { return noop.EvalSha(ctx, rdb, nil).Err() }},
		{name: "x-noop-args", run: func() error {
			return noop.EvalSha(ctx, rdb, switchKeys, c.ID, kc.StateChannel, "0", "", "", "", kc.MsgChannel).Err()
		}},
		{name: "x-min", run: func() error {
			return minimal.EvalSha(ctx, rdb, floorKeys, f.ID, kf.StateChannel, "x", head, "", "", kf.MsgChannel).Err()
		}},
		{name: "x-floor", run: func() error {
			return floor.EvalSha(ctx, rdb, floorKeys, f.ID, kf.StateChannel, "x", head, "", "", kf.MsgChannel).Err()
		}},
		{name: "x-switch", run: func() error {
			_, err := s.Switch(ctx, c.ID, session.SwitchArgs{})
			return err
		}},
	}
	ping := make(latencies, 0, len(steps)*b.N)
	b.ResetTimer()
	for range b.N {
		for _, st := range steps {
			ping.time(func() {
				if err := rdb.Ping(ctx).Err(); err != nil {
					b.Fatal(err)
				}
			})
			st.lat.time(func() {
				if err := st.run(); err != nil {
					b.Fatal(st.name, err)
				}
			})
		}
	}
	b.StopTimer()
	p := ping.p50()
	b.ReportMetric(p, "ping-p50-us")
	for _, st := range steps {
		b.ReportMetric(st.lat.p50()/p, st.name)
	}
}

// benchPublished returns the size of one switch's published message.
func benchPublished(b *testing.B, s *Engine, rdb *redis.Client, id string) int {
	b.Helper()
	ctx := context.Background()
	ps := rdb.SSubscribe(ctx, keyspace.For(id).StateChannel)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Switch(ctx, id, session.SwitchArgs{}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := ps.ReceiveMessage(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return len(m.Payload)
}

type cmdStats struct{ calls, usec int64 }

// cpuMeter measures Redis's own time per EVALSHA from INFO commandstats
// in windows of cpuWindow calls. The machine and its Redis are shared, so
// a window in which other clients' EVALSHAs landed is set aside; the
// median over clean windows is reported (redis-us/call) when there are at
// least 3 of them, with their count (clean-windows) and the foreign calls
// seen (other-calls).
type cpuMeter struct {
	rdb   *redis.Client
	last  cmdStats
	mine  int64
	clean []float64
	other int64
}

const cpuWindow = 25

func newCPUMeter(b *testing.B, rdb *redis.Client) *cpuMeter {
	return &cpuMeter{rdb: rdb, last: evalshaStats(b, rdb)}
}

func (m *cpuMeter) tick(b *testing.B) {
	if m.mine++; m.mine < cpuWindow {
		return
	}
	b.StopTimer()
	now := evalshaStats(b, m.rdb)
	calls, usec := now.calls-m.last.calls, now.usec-m.last.usec
	if calls == m.mine {
		m.clean = append(m.clean, float64(usec)/float64(calls))
	} else {
		m.other += calls - m.mine
	}
	m.last, m.mine = now, 0
	b.StartTimer()
}

func (m *cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(len(m.clean)), "clean-windows")
	b.ReportMetric(float64(m.other), "other-calls")
	if len(m.clean) >= 3 {
		slices.Sort(m.clean)
		b.ReportMetric(m.clean[len(m.clean)/2], "redis-us/call")
	}
}

// evalshaStats reads cmdstat_evalsha from INFO commandstats (it never
// resets them: the Redis is shared).
func evalshaStats(b testing.TB, rdb *redis.Client) cmdStats {
	b.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var st cmdStats
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:")
		if !ok {
			continue
		}
		for kv := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				st.calls, _ = strconv.ParseInt(v, 10, 64)
			case "usec":
				st.usec, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return st
}

// BenchmarkSwitchIdempotencyAB measures what the switch's contract costs
// in Redis CPU, at 4 participants with its audit event: a previous main's
// switch (SK_PREV_SWITCH names the file, whose name ends in -<numkeys>.lua,
// e.g. `git show e07b702:lua/switchCycle-6.lua > /tmp/switchCycle-6.lua`),
// today's without an Idempotency-Key, with a new key per call, and with the
// per-session switch budget charged inside it. The three take turns
// in blocks of cpuWindow calls on sessions of their own, so the machine's
// drift hits all alike; each reports the median redis-us/call of its clean
// blocks, and x-prev is that over the previous script's. The previous
// switch runs on sessions today's create made, so it must read today's
// storage; across a storage change (the packed meta hash), use
// BenchmarkScriptsAB.
//
//	SK_PREV_SWITCH=/tmp/switchCycle-6.lua go test -run '^$' -bench SwitchIdempotencyAB -benchtime 3000x ./engine
func BenchmarkSwitchIdempotencyAB(b *testing.B) {
	prevPath := os.Getenv("SK_PREV_SWITCH")
	if prevPath == "" {
		b.Skip("SK_PREV_SWITCH is not set: no previous switch script to compare with")
	}
	src, err := os.ReadFile(prevPath)
	if err != nil {
		b.Fatal(err)
	}
	s, rdb := benchScripts(b, 0)
	ctx := context.Background()
	prev := redis.NewScript(string(src))
	prevKeys := 5
	if m := regexp.MustCompile(`-(\d+)\.lua$`).FindStringSubmatch(prevPath); m != nil {
		prevKeys, _ = strconv.Atoi(m[1])
	}
	if err := prev.Load(ctx, rdb).Err(); err != nil {
		b.Fatal(err)
	}
	mk := func(name string, call func(id string, k keyspace.Session, keys []string, stream string, i int) error) *abSide {
		c, _ := running(b, s, session.ModePerParticipant, 4, 3_600_000_000)
		k := keyspace.For(c.ID)
		stream := "sk:" + keyspace.Tag(keyspace.ShardOf(c.ID)) + ":bench-events:" + c.ID
		b.Cleanup(func() { rdb.Del(context.Background(), stream) })
		keys := []string{k.Meta, k.Parts, k.Index, stream, keyspace.Deadlines(keyspace.ShardOf(c.ID)) + s.dlSuffix}
		return &abSide{name: name, evalshas: 1, call: func(i int) error { return call(c.ID, k, keys, stream, i) }}
	}
	const eventCap = "100000000"
	cur := shaOf("switchCycle5-8.lua")
	vs := []*abSide{
		mk("prev", func(id string, k keyspace.Session, keys []string, _ string, _ int) error {
			all := append(keys, k.Idem(""), k.Budget())
			return prev.EvalSha(ctx, rdb, all[:min(prevKeys, len(all))], id, k.StateChannel, eventCap, "", "", "", "").Err()
		}),
		mk("no-key", func(id string, k keyspace.Session, keys []string, _ string, _ int) error {
			return rdb.EvalSha(ctx, cur, append(keys, k.Idem(""), k.Budget(), k.Budget()), id, k.StateChannel, eventCap,
				"", "", "", "", "", "", "").Err()
		}),
		mk("key", func(id string, k keyspace.Session, keys []string, _ string, i int) error {
			key := k.Idem("ab-" + strconv.Itoa(i))
			err := rdb.EvalSha(ctx, cur, append(keys, key, k.Budget(), k.Budget()), id, k.StateChannel, eventCap, "", "", "", "",
				"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "600000", "").Err()
			rdb.Del(ctx, key)
			return err
		}),
		// the per-session switch budget charged inside the switch (one
		// round trip where the HTTP route made two)
		mk("budget", func(id string, k keyspace.Session, keys []string, _ string, _ int) error {
			return rdb.EvalSha(ctx, cur, append(keys, k.Idem(""), k.Budget(), k.Budget()), id, k.StateChannel, eventCap,
				"", "", "", "", "", "", "", "1000000000", "1").Err()
		}),
	}
	// the key variant's DELs are not EVALSHAs
	takeTurns(b, rdb, vs)
	base := median(vs[0].usec)
	for _, v := range vs {
		m := median(v.usec)
		b.ReportMetric(m, v.name+"-redis-us/call")
		if base > 0 {
			b.ReportMetric(m/base, v.name+"-x-prev")
		}
	}
}

// BenchmarkScriptsAB measures Redis CPU per call (INFO commandstats) of a
// previous main's scripts against today's: a switch, a read as the engine
// makes it (readSession-2), and a pause and resume, beside issue 13's
// logic-free stand-in of a switch (engine/cgswitch/standin.lua, its ratio
// to each switch reported too). SK_PREV_LUA names a folder holding that
// main's lua/*.lua, a main of the revision-4 scripts (createSession4-6 ...
// switchCycle4-7; e.g. `git archive <rev> lua | tar -x -C <dir> --strip-components=1`).
// Each side runs on sessions its own create and start made, at 4
// participants with the audit event; the sides take turns in blocks of
// cpuWindow calls, so the machine's drift hits both alike. It reports each
// op's median redis-us/call and new/prev.
//
//	SK_PREV_LUA=/tmp/prev-lua go test -run '^$' -bench ScriptsAB -benchtime 3000x ./engine
func BenchmarkScriptsAB(b *testing.B) {
	dir := os.Getenv("SK_PREV_LUA")
	if dir == "" {
		b.Skip("SK_PREV_LUA is not set: no previous scripts to compare with")
	}
	cur, rdb := benchScripts(b, 100_000_000)
	prev := New(rdb, Options{EventCap: 100_000_000, StateCacheMax: 100})
	for _, sc := range []struct {
		dst  **redis.Script
		name string
	}{{&prev.create, "createSession4-6.lua"}, {&prev.start, "startSession4-6.lua"},
		{&prev.switchCycle, "switchCycle4-7.lua"}, {&prev.get, "getSession-2.lua"}, {&prev.read, "readSession-2.lua"},
		{&prev.pause, "pauseSession4-6.lua"}, {&prev.resume, "resumeSession4-6.lua"}} {
		src, err := os.ReadFile(filepath.Join(dir, sc.name))
		if err != nil {
			b.Fatal(err)
		}
		*sc.dst = redis.NewScript(string(src))
	}
	if err := prev.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ops := map[string]func(e *Engine, id string) error{
		"switch": func(e *Engine, id string) error { _, err := e.Switch(ctx, id, session.SwitchArgs{}); return err },
		// a read as the engine makes it: readSession-2, rendered in Go
		"get": func(e *Engine, id string) error { _, _, err := e.Parts(ctx, id); return err },
		"pause+resume": func(e *Engine, id string) error {
			if _, err := e.Pause(ctx, id, 0); err != nil {
				return err
			}
			_, err := e.Resume(ctx, id, 0)
			return err
		},
	}
	calls := map[string]int64{"switch": 1, "get": 1, "pause+resume": 2}
	names := []string{"switch", "get", "pause+resume"}
	var sides []*abSide
	for _, op := range names {
		for _, e := range []struct {
			name string
			eng  *Engine
		}{{"prev", prev}, {"new", cur}} {
			c, _ := running(b, e.eng, session.ModePerParticipant, 4, 3_600_000_000)
			f := ops[op]
			sides = append(sides, &abSide{name: op + "-" + e.name, evalshas: calls[op],
				call: func(int) error { return f(e.eng, c.ID) }})
		}
	}
	// issue 13's logic-free stand-in of a switch, on keys of its own in a
	// session's slot (its XADD goes to a stream no persist worker reads)
	src, err := os.ReadFile(filepath.Join("cgswitch", "standin.lua"))
	if err != nil {
		b.Fatal(err)
	}
	stand := redis.NewScript(string(src))
	c, _ := running(b, cur, session.ModePerParticipant, 4, 3_600_000_000)
	k := keyspace.For(c.ID)
	sk := []string{k.Meta + ":standin", k.Parts, k.StateChannel, k.Meta + ":standin-events"}
	b.Cleanup(func() { rdb.Del(context.Background(), sk[0], sk[3]) })
	if err := rdb.HSet(ctx, sk[0], "status", "running", "version", 1, "life", 1, "n", 4, "active", 0,
		"active_id", "x", "mode", "per_participant", "cycle_at", 1, "turn", 0, "used", 0, "warned", 0).Err(); err != nil {
		b.Fatal(err)
	}
	msg := strings.Repeat("x", 1430) // as large as a 4-participant STATE_UPDATE
	standin := &abSide{name: "standin", evalshas: 1, call: func(int) error { return stand.Run(ctx, rdb, sk, msg).Err() }}
	takeTurns(b, rdb, append(sides, standin))
	for i := 0; i < len(sides); i += 2 {
		p, n := median(sides[i].usec), median(sides[i+1].usec)
		b.ReportMetric(p, sides[i].name+"-redis-us/op")
		b.ReportMetric(n, sides[i+1].name+"-redis-us/op")
		if p > 0 {
			b.ReportMetric(n/p, names[i/2]+"-new/prev")
		}
	}
	if s := median(standin.usec); s > 0 {
		b.ReportMetric(s, "standin-redis-us/op")
		b.ReportMetric(median(sides[1].usec)/s, "switch-new/standin")
		b.ReportMetric(median(sides[0].usec)/s, "switch-prev/standin")
	}
}

// abSide is one side of an A/B benchmark of Redis CPU: a call of evalshas
// EVALSHAs, and the Redis µs per call of each clean block.
type abSide struct {
	name     string
	evalshas int64
	call     func(i int) error
	usec     []float64
}

// takeTurns runs the sides in turns of cpuWindow calls until b.N calls
// each, so the machine's drift hits all alike, and keeps a block's Redis
// µs per call only when no other client's EVALSHA fell into it. Each
// turn runs the sides in a new random order: a block pays for what the
// block before it left (Lua's garbage, colder caches), and in a fixed
// order two identical sides measured 15 % apart (an A/A run).
func takeTurns(b *testing.B, rdb *redis.Client, sides []*abSide) {
	b.ResetTimer()
	rng := rand.New(rand.NewPCG(1, 2)) // the same orders every run
	order := slices.Clone(sides)
	for done := 0; done < b.N; done += cpuWindow {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, sd := range order {
			before := evalshaStats(b, rdb)
			for j := range cpuWindow {
				if err := sd.call(done + j); err != nil {
					b.Fatal(sd.name, err)
				}
			}
			after := evalshaStats(b, rdb)
			if after.calls-before.calls == sd.evalshas*cpuWindow {
				sd.usec = append(sd.usec, float64(after.usec-before.usec)/cpuWindow)
			}
		}
	}
	b.StopTimer()
}

// median of x (0 when empty); it sorts x.
func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	slices.Sort(x)
	return x[len(x)/2]
}
