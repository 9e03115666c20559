package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

func secs(d time.Duration) float64 { return d.Seconds() }

// plan turns the flags into the list of scenarios to run, floors first so
// that every later result can be stated as a ratio to them.
func (o *options) plan() []scenario {
	base := Params{Sessions: o.sessions, Participants: o.participants, Concurrency: o.conc,
		WarmupS: secs(o.warmup), DurationS: secs(o.duration), Reps: o.reps}
	var out []scenario
	for _, kind := range splitList(o.scenarios) {
		switch kind {
		case "standard":
			out = append(out, o.standard()...)
		case "switch":
			out = append(out, switchSet(o, base, o.sessions, o.rate)...)
		case "fanout":
			p := base
			p.Clients = o.clients
			out = append(out, fanoutSet(o, p, o.rate)...)
		case "mixed":
			p := base
			p.Clients = 3
			p.Rate = o.rate * float64(p.Sessions)
			out = append(out, o.floorsFor(p)...)
			out = append(out, scenario{Name: fmt.Sprintf("mixed s=%d k=3 %s", p.Sessions, rateName(p.Rate)), Kind: "mixed", Floor: evalName(p), Params: p})
		case "soak":
			p := base
			p.Clients = 3
			p.Rate = o.rate * float64(p.Sessions)
			out = append(out, o.floorsFor(p)...) // the usual repetitions, not the soak's length
			p.DurationS = secs(o.window)
			p.Reps = max(1, int(o.soak/o.window))
			out = append(out, scenario{Name: fmt.Sprintf("soak %s s=%d k=3 %s", o.soak, p.Sessions, rateName(p.Rate)), Kind: "soak",
				Floor: evalName(p), Params: p, Window: o.window, PID: o.pid})
		case "memory":
			out = append(out, scenario{Name: "memory", Kind: "memory"})
		}
	}
	return dedupe(out)
}

func rateName(total float64) string {
	if total <= 0 {
		return "closed"
	}
	return strconv.FormatFloat(total, 'f', -1, 64) + "/s"
}

func evalName(p Params) string {
	return fmt.Sprintf("floor:evalsha n=%d c=%d %s", p.Sessions, p.Concurrency, rateName(p.Rate))
}

// floorsFor returns the HTTP and EVALSHA floors at the load of p.
func (o *options) floorsFor(p Params) []scenario {
	if !o.baseline {
		return nil
	}
	q := p
	q.Clients = 0
	return []scenario{
		{Name: fmt.Sprintf("floor:http n=%d c=%d %s", q.Sessions, q.Concurrency, rateName(q.Rate)), Kind: "switch", Params: q},
		{Name: evalName(q), Kind: "switch", Params: q},
	}
}

func switchSet(o *options, base Params, sessions int, perSession float64) []scenario {
	p := base
	p.Sessions = sessions
	p.Rate = perSession * float64(sessions)
	out := o.floorsFor(p)
	return append(out, scenario{Name: fmt.Sprintf("switch n=%d p=%d c=%d %s", sessions, p.Participants, p.Concurrency, rateName(p.Rate)),
		Kind: "switch", Floor: evalName(p), Params: p})
}

func fanoutSet(o *options, p Params, perSession float64) []scenario {
	p.Rate = perSession * float64(p.Sessions)
	relay := fmt.Sprintf("floor:relay s=%d k=%d %s", p.Sessions, p.Clients, rateName(p.Rate))
	var out []scenario
	if o.baseline {
		out = append(out, scenario{Name: relay, Kind: "fanout", Params: p})
	}
	return append(out, scenario{Name: fmt.Sprintf("fanout s=%d k=%d %s", p.Sessions, p.Clients, rateName(p.Rate)),
		Kind: "fanout", Floor: relay, Params: p})
}

// standard is the make bench set: the plan's scenarios, as far as two
// shared cores carry them, in about five minutes (4 min on 2026-12-02). On
// these machines the raw EVALSHA floor tops out between 5,000 and 16,500
// switches/s and the server between 3,500 and 16,500/s, so 1,000 and
// 10,000 sessions run at 2,000 switches/s in all (2/s and 0.2/s each)
// instead of the plan's 10/s; the closed-loop run shows where the limit is.
func (o *options) standard() []scenario {
	base := Params{Participants: 4, Concurrency: 32, WarmupS: 2, DurationS: 4, Reps: 3}
	// Memory first, on its own fresh server, before the other runs leave
	// thousands of sockets in TIME_WAIT.
	out := []scenario{{Name: "memory", Kind: "memory"}}
	out = append(out, switchSet(o, base, 100, 10)...) // 1,000/s
	set := switchSet(o, base, 1000, 2)                // 2,000/s
	out = append(out, set...)
	big := switchSet(o, base, 10000, 0.2)[len(set)-1] // 2,000/s over 10,000 sessions
	big.Floor = set[len(set)-1].Floor
	out = append(out, big)
	closed := base
	closed.Concurrency = 64
	out = append(out, switchSet(o, closed, 1000, 0)...) // capacity, closed loop
	f := base
	f.Sessions, f.Clients = 100, 10
	fan := fanoutSet(o, f, 5) // 500 switches/s, 5,000 deliveries/s
	out = append(out, fan...)
	// WebSocket stress: 8,000 clients, 4,000 deliveries/s. Its floor holds
	// both ends of every socket in this process, so 2×8,000 stays under
	// the 20,000 open files a process may have here.
	f.Sessions, f.Clients = 1000, 8
	out = append(out, fanoutSet(o, f, 0.5)...)
	m := base
	m.Sessions, m.Clients, m.Rate = 200, 3, 1000
	floor := base
	floor.Sessions, floor.Rate = 100, 1000
	out = append(out, scenario{Name: "mixed s=200 k=3 1000/s", Kind: "mixed", Floor: evalName(floor), Params: m})
	return out
}

func dedupe(in []scenario) []scenario {
	seen := map[string]bool{}
	var out []scenario
	for _, sc := range in {
		if seen[sc.Name] {
			continue
		}
		seen[sc.Name] = true
		out = append(out, sc)
	}
	return out
}

// floorSet holds the in-process floors.
type floorSet struct {
	bare  *bareTarget
	eval  *evalTarget
	stops []func()
}

func startFloors(ctx context.Context, rdb redis.UniversalClient, conns int) (*floorSet, error) {
	f := &floorSet{}
	addr, stop, err := startBareHTTP()
	if err != nil {
		return nil, err
	}
	f.stops = append(f.stops, stop)
	f.bare = &bareTarget{http: &httpTarget{label: "floor:http", addr: addr, hc: newHTTPClient(addr, conns)}}
	f.eval, err = newEvalTarget(ctx, rdb)
	if err != nil {
		f.stop()
		return nil, fmt.Errorf("EVALSHA floor: %w", err)
	}
	raddr, rstop, err := startMiniRelay(ctx, rdb)
	if err != nil {
		f.stop()
		return nil, err
	}
	f.stops = append(f.stops, rstop)
	f.eval.relayAddr = raddr
	return f, nil
}

func (f *floorSet) target(name string) target {
	if strings.HasPrefix(name, "floor:http") {
		return f.bare
	}
	return f.eval
}

func (f *floorSet) stop() {
	for _, s := range f.stops {
		s()
	}
}

// measureMemory reads the server's RSS idle, holding memSessions running
// sessions, and holding memClients WebSocket clients on top.
func measureMemory(ctx context.Context, o *options, t *httpTarget, fdMax uint64) (*Memory, error) {
	if o.pid == 0 {
		return nil, fmt.Errorf("needs -spawn or -pid")
	}
	m := &Memory{Sessions: o.memSessions, ClientsWanted: o.memClients}
	ropt, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	redisBefore := redisUsed(ctx, rdb)
	settle := func() int64 {
		time.Sleep(3 * time.Second)
		kb, _ := rssKB(o.pid)
		return kb
	}
	m.IdleKB = settle()
	logf("memory: creating %d sessions", m.Sessions)
	sessions := make([]*sess, m.Sessions)
	for i := range sessions {
		sessions[i] = newSess(4)
	}
	_, err = parallel(ctx, sessions, 32, func(s *sess) error { return t.setup(ctx, s) })
	defer parallel(context.Background(), sessions, 32, func(s *sess) error { _ = t.teardown(context.Background(), s); return nil })
	if err != nil {
		return nil, err
	}
	if after := redisUsed(ctx, rdb); redisBefore > 0 && after > redisBefore {
		m.RedisPerSession = float64(after-redisBefore) / float64(m.Sessions)
	}
	m.SessionsKB = settle()

	// Each client is one socket here and one in the server: both processes
	// must stay under their open-files limits, with room for everything else.
	n := m.ClientsWanted
	srvMax, _ := fdLimit(o.pid)
	limit := int64(fdMax)
	if srvMax > 0 && srvMax < limit {
		limit = srvMax
	}
	if limit > 0 && int64(n) > limit-200 {
		n = int(limit - 200)
		m.Note = fmt.Sprintf("Only %d of the %d clients: the open-files limit is %d per process (this tool %d, the server %d) and cannot be raised here.",
			n, m.ClientsWanted, limit, fdMax, srvMax)
	}
	m.Clients = n
	list := make([]*sess, n)
	for i := range list {
		list[i] = sessions[i%len(sessions)]
	}
	logf("memory: connecting %d WebSocket clients", n)
	errs := &errCounter{}
	var closing atomic.Bool
	del := newDeliveries(0)
	clients, err := dialAll(ctx, t, list, 1, 64, func(c *wsClient) { go c.read(del, errs, &closing) })
	if err != nil {
		return nil, err
	}
	m.ClientsKB = settle()
	closing.Store(true)
	closeAll(clients)
	if e := errs.snapshot(); len(e) > 0 {
		return nil, fmt.Errorf("client errors: %s", errText(e))
	}
	m.PerSessionB = float64(m.SessionsKB-m.IdleKB) * 1024 / float64(m.Sessions)
	m.PerClientB = float64(m.ClientsKB-m.SessionsKB) * 1024 / float64(n)
	return m, nil
}

// redisUsed returns Redis INFO used_memory (read-only, shared instance:
// other tests move it too, so it is a rough figure).
func redisUsed(ctx context.Context, rdb redis.UniversalClient) int64 {
	s, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// writeResults rewrites the "Load tool" section of a Markdown file.
func writeResults(path string, rep *Report, with []string) error {
	var b strings.Builder
	b.WriteString(sectionTitle + "\n\n")
	b.WriteString("Written by `make bench` (`go run ./bench`, see bench/README.md); do not edit by hand.\n")
	b.WriteString("Latency is measured from each request's scheduled send time (open loop), so queueing\n")
	b.WriteString("behind a stalled server counts. Figures are medians over the repetitions; the floors\n")
	b.WriteString("(bare fasthttp, raw EVALSHA, a minimal Pub/Sub relay) ran on the same machine in the same run.\n\n")
	fmt.Fprintf(&b, "- Machine: %s\n- Date: %s\n- Go: %s\n- Command: `%s`\n\n", rep.Machine, rep.Date, rep.Go, rep.Command)
	writeRun(&b, rep, false)
	var paths []string
	for _, pattern := range with {
		m, err := filepath.Glob(pattern)
		if err != nil {
			return err
		}
		paths = append(paths, m...)
	}
	for _, path := range paths {
		old, err := readReport(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "\n### From an earlier run: %s\n\n", path)
		fmt.Fprintf(&b, "- Date: %s\n- Machine: %s\n- Command: `%s`\n\n", old.Date, old.Machine, old.Command)
		writeRun(&b, old, true)
	}
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.WriteFile(path, []byte(replaceSection(string(old), b.String())), 0o644)
}

// writeRun writes one report's table, notes, soak windows, memory and
// failures. An earlier run also gets each soak's drift, and its failures
// include what failed() finds in its results today.
func writeRun(b *strings.Builder, rep *Report, earlier bool) {
	if len(rep.Results) > 0 {
		writeTable(b, rep)
	}
	writeNotes(b, rep)
	for _, r := range rep.Results {
		if r.Scenario == "soak" {
			writeWindows(b, r)
			if earlier {
				writeDrift(b, r)
			}
		}
	}
	if rep.Memory != nil {
		writeMemory(b, rep.Memory)
	}
	if earlier {
		writeFailures(b, "Failures in that run", withFailed(rep))
	} else {
		writeFailures(b, "Failures in this run", rep.Failures)
	}
}

// writeNotes says what the closed-loop runs found the capacity to be (a
// run that did not keep up is among the failures).
func writeNotes(b *strings.Builder, rep *Report) {
	for _, r := range rep.Results {
		if r.Params.Rate == 0 && r.Scenario == "switch" {
			fmt.Fprintf(b, "\n- Capacity, closed loop with %d in flight: %s does %.0f switches/s.", r.Params.Concurrency, r.Name, r.Throughput)
		}
	}
	b.WriteString("\n")
}

// withFailed is a saved run's failures plus what failed() finds in its
// results today (runs saved before falling behind counted as a failure).
func withFailed(rep *Report) []string {
	fs := slices.Clone(rep.Failures)
	for _, r := range rep.Results {
		for _, f := range r.failed() {
			if !slices.Contains(fs, f) {
				fs = append(fs, f)
			}
		}
	}
	return fs
}

func writeFailures(b *strings.Builder, title string, fs []string) {
	if len(fs) == 0 {
		return
	}
	b.WriteString("\n" + title + ":\n\n")
	for _, f := range fs {
		b.WriteString("- " + f + "\n")
	}
}

// writeDrift compares a soak's first and last thirds: a leak or a
// slowdown shows as a ratio well above 1.
func writeDrift(b *strings.Builder, r *Result) {
	n := len(r.Reps)
	if n < 3 {
		return
	}
	third := n / 3
	avg := func(reps []Rep, f func(Rep) float64) float64 {
		var s float64
		for _, x := range reps {
			s += f(x)
		}
		return s / float64(len(reps))
	}
	p99 := func(x Rep) float64 { return x.Latency["switch"].P99MS }
	p50 := func(x Rep) float64 { return x.Latency["switch"].P50MS }
	rss := func(x Rep) float64 { return float64(x.RSSKB) }
	first, last := r.Reps[:third], r.Reps[n-third:]
	fmt.Fprintf(b, "\nDrift, last third / first third: switch p50 %s, p99 %s, RSS %s.\n",
		ratio(avg(last, p50), avg(first, p50)), ratio(avg(last, p99), avg(first, p99)), ratio(avg(last, rss), avg(first, rss)))
}
