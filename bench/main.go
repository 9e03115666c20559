// Command bench drives a running SyncKairos over real HTTP and WebSockets
// and measures it against floors taken on the same machine in the same run.
// See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	json "github.com/goccy/go-json"
	"github.com/redis/go-redis/v9"
)

func numCPU() int { return runtime.NumCPU() }

type options struct {
	addr, spawn, spawnEnv, redisURL       string
	scenarios                             string
	sessions, participants, clients, conc int
	rate                                  float64
	warmup, duration, soak, window        time.Duration
	reps                                  int
	baseline                              bool
	jsonOut, compare, results, serverLog  string
	with, render                          string
	pid                                   int
	memSessions, memClients               int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	os.Exit(code)
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:3000", "the server to drive (host:port, loopback)")
	fs.StringVar(&o.spawn, "spawn", "", "start this server binary on a free port for the run, and stop it after")
	fs.StringVar(&o.spawnEnv, "spawn-env", "PORT={port},REDIS_URL=redis://127.0.0.1:6379/0,RATE_LIMIT_ENABLED=false,LOG_REQUESTS=false,WS_MAX_CONNECTIONS=0,WS_MAX_CONNECTIONS_PER_IP=0", "comma-separated env for -spawn; {port} is the port")
	fs.StringVar(&o.serverLog, "server-log", "bench/out/server.log", "where a spawned server's output goes")
	fs.StringVar(&o.redisURL, "redis", "redis://127.0.0.1:6379/0", "Redis for the EVALSHA and relay floors")
	fs.StringVar(&o.scenarios, "scenario", "switch", "comma-separated: switch, fanout, mixed, soak, memory; or standard (the make bench set)")
	fs.IntVar(&o.sessions, "sessions", 100, "sessions (N, or S for fanout)")
	fs.IntVar(&o.participants, "participants", 4, "participants per session (P)")
	fs.IntVar(&o.clients, "clients", 10, "WebSocket clients per session (K) for fanout; mixed and soak use 3")
	fs.IntVar(&o.conc, "concurrency", 32, "requests in flight at most (C)")
	fs.Float64Var(&o.rate, "rate", 10, "operations per second per session, open loop; 0 = closed loop (capacity only)")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "warm-up before measuring, not reported")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each repetition")
	fs.IntVar(&o.reps, "reps", 3, "repetitions; the report gives the median")
	fs.DurationVar(&o.soak, "soak", 5*time.Minute, "length of the soak scenario")
	fs.DurationVar(&o.window, "window", 10*time.Second, "soak: report latency per window of this length")
	fs.BoolVar(&o.baseline, "baseline", false, "also measure the floors: bare fasthttp, raw EVALSHA, minimal relay")
	fs.StringVar(&o.jsonOut, "json", "", "write the report as JSON to this file")
	fs.StringVar(&o.compare, "compare", "", "print ratios against this saved JSON report")
	fs.StringVar(&o.results, "results", "", "rewrite the \"Load tool\" section of this Markdown file (bench/RESULTS.md)")
	fs.StringVar(&o.with, "with", "", "comma-separated saved JSON reports or globs (bench/runs/*.json) to add to the -results section")
	fs.StringVar(&o.render, "render", "", "print (and -results, -compare) a saved JSON report instead of running")
	fs.IntVar(&o.pid, "pid", 0, "server process id, for RSS (set by -spawn)")
	fs.IntVar(&o.memSessions, "mem-sessions", 10000, "memory scenario: sessions")
	fs.IntVar(&o.memClients, "mem-clients", 20000, "memory scenario: WebSocket clients")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.reps < 1 || o.sessions < 1 || o.participants < 2 || o.conc < 1 {
		return nil, errors.New("need -reps >= 1, -sessions >= 1, -participants >= 2, -concurrency >= 1")
	}
	if !loopback(o.addr) {
		return nil, errors.New("-addr must be a loopback address")
	}
	return o, nil
}

func loopback(addr string) bool {
	return strings.HasPrefix(addr, "127.") || strings.HasPrefix(addr, "localhost:") || strings.HasPrefix(addr, "[::1]:")
}

// run returns the exit code: 0 only when every scenario ran without a
// single error or missed version.
func run(ctx context.Context, args []string) (int, error) {
	o, err := parseFlags(args)
	if err != nil {
		return 2, err
	}
	if o.render != "" {
		// Re-render a saved run (with -with, -results, -compare) without running anything.
		rep, err := readReport(o.render)
		if err != nil {
			return 2, err
		}
		return finishReport(o, rep)
	}
	fdMax := raiseFDLimit()
	rep := &Report{
		Machine: machine(),
		Date:    time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		Go:      runtime.Version(),
		Command: "go run ./bench " + strings.Join(args, " "),
	}
	if o.spawn != "" {
		srv, err := spawnServer(o.spawn, splitList(o.spawnEnv), o.serverLog)
		if err != nil {
			return 1, err
		}
		defer srv.stop()
		o.addr, o.pid = srv.addr, srv.pid
		logf("server %s started on %s (pid %d)", o.spawn, o.addr, o.pid)
	} else if err := health(o.addr); err != nil {
		return 1, err
	}

	plan := o.plan()
	srvT := &httpTarget{label: "server", addr: o.addr, hc: newHTTPClient(o.addr, maxConc(plan))}
	var rdb redis.UniversalClient
	if o.baseline {
		ropt, err := redis.ParseURL(o.redisURL)
		if err != nil {
			return 2, err
		}
		ropt.PoolSize = maxConc(plan) + 8
		rdb = redis.NewClient(ropt)
		defer rdb.Close()
	}
	var floors *floorSet
	if o.baseline {
		floors, err = startFloors(ctx, rdb, maxConc(plan))
		if err != nil {
			return 1, err
		}
		defer floors.stop()
	}

	for _, sc := range plan {
		if ctx.Err() != nil {
			break
		}
		if sc.Kind == "memory" {
			m, err := memoryRun(ctx, o, srvT, fdMax)
			if err != nil {
				rep.Failures = append(rep.Failures, "memory: "+err.Error())
				continue
			}
			rep.Memory = m
			continue
		}
		t, mixed := target(srvT), (*httpTarget)(nil)
		switch {
		case strings.HasPrefix(sc.Name, "floor:"):
			if floors == nil {
				continue
			}
			t = floors.target(sc.Name)
		case sc.Kind == "mixed" || sc.Kind == "soak":
			mixed = srvT
		}
		logf("%s: %s against %s", sc.Name, sc.Kind, t.name())
		r, err := runScenario(ctx, sc, t, mixed)
		if err != nil {
			rep.Failures = append(rep.Failures, err.Error())
			continue
		}
		rep.Results = append(rep.Results, r)
		rep.Failures = append(rep.Failures, r.failed()...)
		writeTable(os.Stderr, &Report{Results: []*Result{r}})
	}
	if ctx.Err() != nil {
		rep.Failures = append(rep.Failures, "interrupted")
	}
	return finishReport(o, rep)
}

// memoryRun measures memory on a fresh server when the tool starts its own,
// so that earlier scenarios' garbage does not count.
func memoryRun(ctx context.Context, o *options, t *httpTarget, fdMax uint64) (*Memory, error) {
	if o.spawn == "" {
		return measureMemory(ctx, o, t, fdMax)
	}
	srv, err := spawnServer(o.spawn, splitList(o.spawnEnv), o.serverLog+".memory")
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	mo := *o
	mo.addr, mo.pid = srv.addr, srv.pid
	return measureMemory(ctx, &mo, &httpTarget{label: "server", addr: srv.addr, hc: newHTTPClient(srv.addr, 32)}, fdMax)
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func maxConc(plan []scenario) int {
	c := 1
	for _, sc := range plan {
		c = max(c, sc.Params.Concurrency)
	}
	return c
}

// finishReport prints, writes and compares; the exit code is 1 when
// anything failed.
func finishReport(o *options, rep *Report) (int, error) {
	out := os.Stdout
	fmt.Fprintf(out, "\n%s\n%s, %s\n\n", rep.Machine, rep.Date, rep.Go)
	if len(rep.Results) > 0 {
		writeTable(out, rep)
	}
	for _, r := range rep.Results {
		if r.Scenario == "soak" {
			writeWindows(out, r)
			var sb strings.Builder
			writeDrift(&sb, r)
			fmt.Fprint(out, sb.String())
		}
	}
	if rep.Memory != nil {
		writeMemory(out, rep.Memory)
	}
	if o.jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return 1, err
		}
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return 1, err
		}
	}
	if o.compare != "" {
		base, err := readReport(o.compare)
		if err != nil {
			return 1, err
		}
		writeCompare(out, rep, base)
	}
	if o.results != "" {
		if err := writeResults(o.results, rep, splitList(o.with)); err != nil {
			return 1, err
		}
	}
	if len(rep.Failures) > 0 {
		fmt.Fprintf(os.Stderr, "\nFAIL: %d problems\n", len(rep.Failures))
		for _, f := range rep.Failures {
			fmt.Fprintln(os.Stderr, "  "+f)
		}
		return 1, nil
	}
	fmt.Fprintln(os.Stderr, "\nPASS: no errors, no missed versions, every offered rate kept up")
	return 0, nil
}
