// Command cgswitch counts the Redis instructions of a switch (the engine's
// probe: it calls the raw scripts of two contract versions, which the
// engine of one version cannot, so it lives beside the engine). It drives
// -n switches of one switch script, at 4 participants (-participants) with
// the audit event, on a redis-server that runs under callgrind (pid -pid), zeroing
// the counters after the set-up and dumping them after the switches, so
// the dump's total over -n is the instructions per switch. -layout names
// the script contract: "v5" (switchCycle-5 and createSession-4, before
// Idempotency-Key), "v6" (with it), "v7" (createSession-6, lives), "v8"
// (switchCycle-7, the per-session budget; -budget charges it) or "v9"
// (the same with SPUBLISH: createSession2-6, startSession2-6,
// switchCycle2-7), "v10" (the packed revision 3), "v11" (revision 4's
// binary layouts) or "v12" (switchCycle5-8: -caller charges the caller's
// budget too); -dir holds that layout's create, start and switch
// files. With v9 to v12, -op get counts getSession-2 on
// the running session instead, -op read readSession-2, -op pause-resume a pause and a resume, and
// -op standin issue 13's logic-free stand-in of a switch (standIn), and -op
// create, create-start and create-start-complete that many new sessions
// (with -last only the last step counts: a start or a complete alone).
// bench/RESULTS.md has the procedure.
package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "the Redis under callgrind")
	pid := flag.Int("pid", 0, "its process id (callgrind_control)")
	layout := flag.String("layout", "v12", "v5, v6, v7 (createSession-6: a life counter key), v8 (switchCycle-7: a budget key), v9 (SPUBLISH), v10 (packed), v11 (binary) or v12 (switchCycle5-8: the caller's budget)")
	dir := flag.String("dir", "lua", "where the layout's scripts are")
	n := flag.Int("n", 500, "switches to count")
	parts := flag.Int("participants", 4, "the session's size")
	msgBytes := flag.Int("standin-bytes", 1430, "-op standin: the size of the message it publishes and records "+
		"(1430: a 4-participant STATE_UPDATE in JSON, as when issue 13 was filed; 402: the packed message of revision 3)")
	budget := flag.Bool("budget", false, "v8: charge the per-session switch budget in each switch")
	last := flag.Bool("last", false, "-op create-start[-complete]: count only the last step (the others run before the count)")
	caller := flag.Bool("caller", false, "v12: charge the caller's budget in each switch (with -budget: both)")
	op := flag.String("op", "switch", "v9 to v12: what -n counts: switch, get (getSession-2), read (readSession-2), pause-resume (one pause and one resume), standin (issue 13's logic-free switch), create, create-start or create-start-complete")
	flag.Parse()
	names := map[string][3]string{
		"v5":  {"createSession-4.lua", "startSession-5.lua", "switchCycle-5.lua"},
		"v6":  {"createSession-5.lua", "startSession-6.lua", "switchCycle-6.lua"},
		"v7":  {"createSession-6.lua", "startSession-6.lua", "switchCycle-6.lua"},
		"v8":  {"createSession-6.lua", "startSession-6.lua", "switchCycle-7.lua"},
		"v9":  {"createSession2-6.lua", "startSession2-6.lua", "switchCycle2-7.lua"},
		"v10": {"createSession3-6.lua", "startSession3-6.lua", "switchCycle3-7.lua"},
		"v11": {"createSession4-6.lua", "startSession4-6.lua", "switchCycle4-7.lua"},
		"v12": {"createSession4-6.lua", "startSession4-6.lua", "switchCycle5-8.lua"},
	}[*layout]
	rev := map[string]string{"v9": "2", "v10": "3", "v11": "4", "v12": "4"}[*layout] // the -op layouts' revision
	if names[0] == "" || *pid == 0 {
		log.Fatal("want -layout v5|v6|v7|v8|v9|v10|v11|v12 and -pid")
	}
	load := func(f string) *redis.Script {
		b, err := os.ReadFile(filepath.Join(*dir, f))
		if err != nil {
			log.Fatal(err)
		}
		return redis.NewScript(string(b))
	}
	create, start, sw := load(names[0]), load(names[1]), load(names[2])
	rdb := redis.NewClient(&redis.Options{Addr: *addr, ReadTimeout: -1})
	ctx := context.Background()
	const id, cap = "11111111-1111-4111-8111-00000000000a", "100000000"
	base := "sk:{a}:session:" + id
	keys := []string{base, base + ":parts", base + ":index", "sk:{a}:events", "sk:{a}:deadlines"}
	ch := base + ":state"
	args := []any{id, ch, cap, "per_participant", "", "", "", "", "0", ""}
	createKeys := keys[:4]
	if *layout != "v5" {
		args = append(args, "", "", "")
		createKeys = append(append([]string{}, keys[:4]...), base+":idem:")
		keys = append(keys, base+":idem:")
	}
	if *layout == "v7" || *layout == "v8" || rev != "" {
		createKeys = append(createKeys, "sk:{a}:lives")
	}
	swKeys := keys
	if *layout == "v8" || rev != "" {
		swKeys = append(append([]string{}, keys...), base+":rl")
	}
	if *layout == "v12" {
		swKeys = append(swKeys, base+":rl") // KEYS[8]: untouched without -caller
	}
	for i := range *parts {
		args = append(args, fmt.Sprintf("11111111-1111-4111-8111-%012x", 0x100+i), i, 3_600_000_000, "")
	}
	must(create.Run(ctx, rdb, createKeys, args...).Err())
	must(start.Run(ctx, rdb, keys, id, ch, cap, "").Err())
	swArgs := []any{id, ch, cap, "", "", "", ""}
	if *budget {
		swArgs = append(swArgs, "", "", "", "1000000000", "1")
	}
	if *caller {
		if *layout != "v12" {
			log.Fatal("-caller wants -layout v12")
		}
		if !*budget {
			swArgs = append(swArgs, "", "", "", "", "")
		}
		swKeys[7] = "sk:rl:ip:127.0.0.1"
		swArgs = append(swArgs, "1000000000", "1")
	}
	must(sw.Run(ctx, rdb, swKeys, swArgs...).Err()) // loaded and warm
	calls := []call{{sw, swKeys, swArgs}}
	switch {
	case *op == "get" && rev != "":
		calls = []call{{load("getSession-2.lua"), keys[:2], []any{id}}}
	case *op == "read" && rev != "":
		calls = []call{{load("readSession-2.lua"), keys[:2], []any{id}}}
	case *op == "pause-resume" && rev != "":
		calls = []call{
			{load("pauseSession" + rev + "-6.lua"), keys, []any{id, ch, cap, "", base + ":msg", "", "", ""}},
			{load("resumeSession" + rev + "-6.lua"), keys, []any{id, ch, cap, "", "", "", ""}},
		}
	case *op == "standin" && rev != "":
		msg := strings.Repeat("x", *msgBytes)
		calls = []call{{redis.NewScript(standIn), []string{base + ":standin", keys[1], ch, keys[3]}, []any{msg}}}
		must(rdb.HSet(ctx, base+":standin", "status", "running", "version", 1, "life", 1, "n", 4, "active", 0,
			"active_id", "x", "mode", "per_participant", "cycle_at", 1, "turn", 0, "used", 0, "warned", 0).Err())
		defer rdb.Del(ctx, base+":standin")
	case strings.HasPrefix(*op, "create") && rev != "":
		// a new session per call: -op create counts creates, create-start
		// a create and a start, create-start-complete all three (the
		// differences are start's and complete's)
		calls = nil
		steps := strings.Split(*op, "-")
		for i := range *n + 1 {
			id := fmt.Sprintf("22222222-2222-4222-8222-%010x0a", i)
			b := "sk:{a}:session:" + id
			k := []string{b, b + ":parts", b + ":index", "sk:{a}:events", "sk:{a}:deadlines", b + ":idem:"}
			a := append([]any{id, b + ":state"}, args[2:]...)
			calls = append(calls, call{create, []string{k[0], k[1], k[2], k[3], k[5], "sk:{a}:lives"}, a})
			for _, st := range steps[1:] {
				sc := map[string]*redis.Script{"start": start, "complete": load("completeSession" + rev + "-6.lua")}[st]
				if sc == nil {
					log.Fatal("-op create[-start[-complete]]")
				}
				calls = append(calls, call{sc, k, []any{id, b + ":state", cap, "", ""}})
			}
		}
		// the first session's calls load and warm the scripts
		warm := len(steps)
		for _, c := range calls[:warm] {
			must(c.sc.Run(ctx, rdb, c.keys, c.args...).Err())
		}
		calls = calls[warm:]
		if *last { // every step but the last, for every session, before the count
			var counted []call
			for i, c := range calls {
				if i%len(steps) == len(steps)-1 {
					counted = append(counted, c)
				} else {
					must(c.sc.EvalSha(ctx, rdb, c.keys, c.args...).Err())
				}
			}
			calls = counted
		}
		must(exec.Command("callgrind_control", "-z", strconv.Itoa(*pid)).Run())
		for _, c := range calls {
			must(c.sc.EvalSha(ctx, rdb, c.keys, c.args...).Err())
		}
		must(exec.Command("callgrind_control", "-d", strconv.Itoa(*pid)).Run())
		fmt.Println(*layout, *op, *n, "times counted: see the newest callgrind dump's totals")
		return
	case *op != "switch":
		log.Fatal("-op get, read, pause-resume and standin want -layout v9 to v12")
	}
	for _, c := range calls { // loaded and warm
		must(c.sc.Run(ctx, rdb, c.keys, c.args...).Err())
	}
	must(exec.Command("callgrind_control", "-z", strconv.Itoa(*pid)).Run())
	for range *n {
		for _, c := range calls {
			must(c.sc.EvalSha(ctx, rdb, c.keys, c.args...).Err())
		}
	}
	must(exec.Command("callgrind_control", "-d", strconv.Itoa(*pid)).Run())
	fmt.Println(*layout, *op, *n, "times counted: see the newest callgrind dump's totals")
}

// standIn makes only the calls a switch cannot avoid, with no logic (issue
// 13's stand-in; standin.lua says which). BenchmarkScriptsAB times the same
// file by INFO commandstats.
//
//go:embed standin.lua
var standIn string

// call is one script call the run counts.
type call struct {
	sc   *redis.Script
	keys []string
	args []any
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
