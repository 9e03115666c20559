package engine

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/synckairos/synckairos/fullstate"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/persist"
	"github.com/synckairos/synckairos/redisconn"
	"github.com/synckairos/synckairos/servertest"
)

// The golden cases in testdata/contract drive the scripts raw, the way any
// other language would: SCRIPT LOAD of the lua/ file, then EVALSHA with
// literal KEYS and ARGV. testdata/node/run.mjs replays the same files.
//
// A case file is {"description", "steps": [...]}; a step is either
//
//	{"script", "keys", "argv", "reply" | "error": {code, details}, "published": [...], "sleep_ms"?}
//	{"command": [...], "reply"}   (a plain Redis command, to inspect state)
//
// "$ID" in any string is the run's session id and "$SHARD" its shard.
// Replies and messages are compared as JSON after decoding every string
// that holds a JSON object or array. Expected values may use:
//
//	"$any"                  any value but null
//	"$iso"                  an ISO 8601 UTC time with milliseconds
//	"$now"                  an integer within a minute of the runner's clock (epoch ms)
//	{"$range": [lo, hi]}    a number in [lo, hi] (time-derived figures)
//
// "published" lists every message the step publishes on the session's
// state channel, in order; [] means none.
//
// The scripts publish, return and record packed messages (lua/README.md
// "Packed messages"); the runner renders each as the JSON the revision-2
// scripts built (renderPacked), so the cases state the v1 JSON every
// consumer ends with, and Go's rendering is checked against it.
//
// Every STATE_DELTA a step publishes or replies is applied (fullstate) to
// the state the runner holds at its base, and the state reached must be
// getSession-2's, byte for byte but for server_time_ms (the time of each
// read); a delta whose base the case never reached fails the case.

type contractCase struct {
	Description string         `json:"description"`
	Steps       []contractStep `json:"steps"`
}

type contractStep struct {
	Note    string   `json:"note"`
	SleepMS int      `json:"sleep_ms"`
	Script  string   `json:"script"`
	Keys    []string `json:"keys"`
	Argv    []string `json:"argv"`
	Command []string `json:"command"`
	Reply   any      `json:"reply"`
	Error   *struct {
		Code    string `json:"code"`
		Details any    `json:"details"`
	} `json:"error"`
	Published []any `json:"published"`
}

func loadContractCases(t *testing.T) map[string]contractCase {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "contract", "*.json"))
	if len(files) == 0 {
		t.Fatal("no golden cases in testdata/contract")
	}
	out := map[string]contractCase{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c contractCase
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = c
	}
	return out
}

// TestContract runs every golden case against the machine's Redis and an
// embedded miniredis (the dev-mode backend).
func TestContract(t *testing.T) {
	t.Parallel()
	cases := loadContractCases(t)
	backends := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"redis", func(*testing.T) string { return servertest.RedisAddr() }},
		{"miniredis", func(t *testing.T) string {
			m, err := redisconn.Embedded()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(m.Close)
			return m.Addr()
		}},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			// RESP2, as the Node runner and most clients speak it
			rdb := redis.NewClient(&redis.Options{Addr: be.addr(t), Protocol: 2})
			rdb.AddHook(sessions.Hook(t))
			t.Cleanup(func() { rdb.Close() })
			names := make([]string, 0, len(cases))
			for n := range cases {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, name := range names {
				c := cases[name]
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					runContractCase(t, rdb, c)
				})
			}
		})
	}
}

func runContractCase(t *testing.T, rdb *redis.Client, c contractCase) {
	ctx := context.Background()
	id := uuid.NewString()
	shard := strings.Trim(keyspace.Tag(keyspace.ShardOf(id)), "{}")
	sub := func(s string) string {
		return strings.ReplaceAll(strings.ReplaceAll(s, "$ID", id), "$SHARD", shard)
	}
	channel := sub("sk:{$SHARD}:session:$ID:state")
	ps := rdb.SSubscribe(ctx, channel)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	shas := map[string]string{}
	load := func(script string) string {
		if sha, ok := shas[script]; ok {
			return sha
		}
		src, err := os.ReadFile(filepath.Join("..", "lua", script))
		if err != nil {
			t.Fatal(err)
		}
		sha, err := rdb.ScriptLoad(ctx, string(src)).Result()
		if err != nil {
			t.Fatalf("SCRIPT LOAD %s: %v", script, err)
		}
		sum := sha1.Sum(src)
		if sha != hex.EncodeToString(sum[:]) {
			t.Fatalf("%s: server SHA %s is not the file's SHA1", script, sha)
		}
		shas[script] = sha
		return sha
	}
	keys := map[string]bool{}
	defer func() {
		for k := range keys {
			rdb.Del(context.Background(), k)
		}
	}()
	chain := deltaChain{held: map[[2]int64]heldState{}}
	for i, st := range c.Steps {
		label := fmt.Sprintf("step %d (%s%s)", i, st.Script, strings.Join(st.Command, " "))
		if st.SleepMS > 0 {
			time.Sleep(time.Duration(st.SleepMS) * time.Millisecond)
		}
		var args []any
		if len(st.Command) > 0 {
			for _, a := range st.Command {
				args = append(args, sub(a))
			}
		} else {
			args = append(args, "EVALSHA", load(st.Script), len(st.Keys))
			for _, k := range st.Keys {
				keys[sub(k)] = true
				args = append(args, sub(k))
			}
			for _, a := range st.Argv {
				args = append(args, sub(a))
			}
		}
		got, err := rdb.Do(ctx, args...).Result()
		if err == nil {
			if got, err = renderPacked(got, st.Script, st.Command); err != nil {
				t.Fatalf("%s: %v", label, err)
			}
		}
		var rerr redis.Error
		switch {
		case st.Error != nil:
			if !errors.As(err, &rerr) {
				t.Fatalf("%s: got %v, %v; want error %s", label, got, err, st.Error.Code)
			}
			code, details, _ := strings.Cut(rerr.Error(), " ")
			var d any
			if jerr := json.Unmarshal([]byte(details), &d); jerr != nil {
				t.Fatalf("%s: error details %q: %v", label, details, jerr)
			}
			if code != st.Error.Code {
				t.Errorf("%s: error %s, want %s", label, rerr.Error(), st.Error.Code)
			}
			expectJSON(t, label+" details", substAll(st.Error.Details, sub), d)
		case err != nil:
			t.Fatalf("%s: %v", label, err)
		default:
			expectJSON(t, label+" reply", substAll(st.Reply, sub), normalize(got))
		}
		if len(st.Command) > 0 {
			continue
		}
		msgs := drainChannel(t, rdb, ps, channel)
		for j, m := range msgs {
			if msgs[j], err = renderMessage(m); err != nil {
				t.Fatalf("%s: message %d: %v", label, j, err)
			}
		}
		if len(msgs) != len(st.Published) {
			t.Errorf("%s: published %d messages, want %d: %q", label, len(msgs), len(st.Published), msgs)
			continue
		}
		for j, m := range msgs {
			expectJSON(t, fmt.Sprintf("%s message %d", label, j), substAll(st.Published[j], sub), normalize(m))
		}
		// every delta of the step, in the order the script made them (it
		// publishes, then replies), applied to the state held at its base;
		// the state reached must be the one getSession-2 reads back
		deltas := msgs[:0:0]
		for _, m := range msgs {
			var env struct{ Type string }
			if json.Unmarshal([]byte(m), &env) == nil && env.Type == "STATE_DELTA" {
				deltas = append(deltas, m)
			}
		}
		if r, ok := got.([]any); ok && len(r) == 2 && r[0] == "delta" {
			deltas = append(deltas, r[1].(string))
		}
		if len(deltas) == 0 {
			continue
		}
		for j, m := range deltas {
			if err := chain.apply(ctx, []byte(m)); err != nil {
				t.Fatalf("%s: delta %d of %d: %v", label, j, len(deltas), err)
			}
		}
		r, err := rdb.Do(ctx, "EVALSHA", load("getSession-2.lua"), 2,
			sub("sk:{$SHARD}:session:$ID"), sub("sk:{$SHARD}:session:$ID:parts"), id).StringSlice()
		if err != nil || len(r) == 0 {
			t.Fatalf("%s: getSession-2 after the step: %v %q", label, err, r)
		}
		parts := make([][]byte, len(r)-1)
		for j, p := range r[1:] {
			parts[j] = []byte(p)
		}
		read := maskServerTime(fullstate.Build([]byte(r[0]), parts))
		if applied := maskServerTime(chain.held[chain.latest].full); applied != read {
			t.Errorf("%s: the state applied from deltas (life %d, version %d) is not getSession-2's: %s",
				label, chain.latest[0], chain.latest[1], firstDiff(applied, read))
		}
	}
}

// deltaChain holds the states a case's STATE_DELTAs lead to, by (life,
// version), and applies each delta to the state held at its base through
// fullstate, as the relay does (testdata/node/run.mjs does the same by
// hand, following lua/README.md "Applying a delta").
type deltaChain struct {
	held   map[[2]int64]heldState
	latest [2]int64
}

type heldState struct {
	head  []byte
	parts [][]byte
	full  []byte
}

var errNoBase = errors.New("no state held at the delta's base (a golden case must reach every base)")

func (c *deltaChain) apply(ctx context.Context, msg []byte) error {
	d, err := fullstate.Decode(msg)
	if err != nil {
		return err
	}
	base, ok := c.held[[2]int64{d.Life, d.BaseVersion}]
	// an empty Assembler starts from a create's delta (base 0, everyone)
	// or reads the base through its Fetch: here the state held, never Redis
	asm := fullstate.New(func(context.Context, string) ([]byte, [][]byte, error) {
		if !ok {
			return nil, nil, errNoBase
		}
		return base.head, slices.Clone(base.parts), nil
	}, 1)
	full, err := asm.Apply(ctx, d)
	if err != nil {
		return err
	}
	var st struct {
		Participants []json.RawMessage `json:"participants"`
	}
	if err := json.Unmarshal(full, &st); err != nil {
		return fmt.Errorf("applied state is not JSON: %w", err)
	}
	if len(st.Participants) != d.Count {
		return fmt.Errorf("applied state has %d participants, the delta says %d", len(st.Participants), d.Count)
	}
	at := [2]int64{d.Life, d.Version}
	if prev, ok := c.held[at]; ok && !bytes.Equal(prev.full, full) {
		return fmt.Errorf("two deltas to version %d give two states: %s", d.Version, firstDiff(string(prev.full), string(full)))
	}
	parts := make([][]byte, len(st.Participants))
	for i, p := range st.Participants {
		parts[i] = p
	}
	c.held[at] = heldState{head: d.Session, parts: parts, full: full}
	if at[0] > c.latest[0] || at[0] == c.latest[0] && at[1] > c.latest[1] {
		c.latest = at
	}
	return nil
}

// renderPacked renders what a step got: a transition's reply (the
// message, or with a budget {message, remaining, reset}) as {"full",
// state} or {"delta", STATE_DELTA} (with the budget's two after), a
// replayed message as {"replay", state} (a delete's kept reply is "1" or
// "0"), and XRANGE entries with a packed "event" in the field-per-field
// layout of the revision-2 scripts: the form the golden cases were written
// in, which every reader must reach.
func renderPacked(got any, script string, command []string) (any, error) {
	if msg, ok := got.(string); ok && transition(script) {
		got = []any{"packed", msg}
	}
	r, ok := got.([]any)
	if !ok || len(r) < 2 {
		return got, nil
	}
	if len(r) == 3 && transition(script) { // {message, remaining, reset}
		r = append([]any{"packed"}, r...)
	}
	if len(command) > 0 {
		if !strings.EqualFold(command[0], "XRANGE") {
			return got, nil
		}
		for _, e := range r {
			if e, ok := e.([]any); ok && len(e) == 2 {
				fields, _ := e[1].([]any)
				var err error
				if e[1], err = renderEntry(fields); err != nil {
					return nil, err
				}
			}
		}
		return r, nil
	}
	kind, _ := r[0].(string)
	msg, _ := r[1].(string)
	if kind != "packed" && (kind != "replay" || strings.HasPrefix(msg, "{") || strings.HasPrefix(script, "deleteSession")) {
		return got, nil
	}
	d, err := fullstate.Decode([]byte(msg))
	if err != nil {
		return nil, err
	}
	out := slices.Clone(r)
	switch {
	case kind == "replay":
		out[1] = string(fullstate.Build(d.Session, d.Participants))
	case d.Full:
		out[0], out[1] = "full", string(fullstate.Build(d.Session, d.Participants))
	default:
		out[0], out[1] = "delta", string(d.JSON())
	}
	return out, nil
}

// transition tells whether script is a transition, which replies with the
// message it publishes.
func transition(script string) bool {
	for _, op := range []string{"create", "start", "switch", "pause", "resume", "complete", "expire"} {
		if strings.HasPrefix(script, op) {
			return true
		}
	}
	return false
}

// renderMessage renders a packed message published on the state channel
// as a STATE_UPDATE or a STATE_DELTA.
func renderMessage(m string) (string, error) {
	if strings.HasPrefix(m, "{") {
		return m, nil
	}
	d, err := fullstate.Decode([]byte(m))
	if err != nil {
		return "", err
	}
	if !d.Full {
		return string(d.JSON()), nil
	}
	return string(fullstate.StateMessage("STATE_UPDATE", d.SessionID, d.Timestamp, d.Life, d.Version,
		fullstate.Build(d.Session, d.Participants))), nil
}

// renderEntry lays an audit entry out field per field, in the order the
// revision-2 scripts wrote (persist.Fields renders a packed one).
func renderEntry(fields []any) ([]any, error) {
	at := map[string]any{}
	for i := 0; i+1 < len(fields); i += 2 {
		k, _ := fields[i].(string)
		at[k] = fields[i+1]
	}
	if _, ok := at["event"]; !ok {
		return fields, nil
	}
	flat, err := persist.Fields(at)
	if err != nil {
		return nil, err
	}
	var out []any
	for _, k := range []string{"type", "session_id", "version", "life", "participant_id", "group_id",
		"time_remaining_ms", "time_elapsed_ms", "cycle_number", "timestamp", "state_kind", "state", "actor"} {
		out = append(out, k, flat[k])
	}
	return out, nil
}

// firstDiff shows where two long states part.
func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	from := max(i-40, 0)
	return fmt.Sprintf("at byte %d: %q against %q", i, a[from:min(i+80, len(a))], b[from:min(i+80, len(b))])
}

// drainChannel reads what was published up to a marker of its own.
func drainChannel(t *testing.T, rdb *redis.Client, ps *redis.PubSub, channel string) []string {
	t.Helper()
	mark := "mark-" + uuid.NewString()
	if err := rdb.SPublish(context.Background(), channel, mark).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	for {
		m, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("pubsub: %v", err)
		}
		if m.Payload == mark {
			return out
		}
		out = append(out, m.Payload)
	}
}

// normalize turns a reply into plain JSON values, decoding strings that
// hold a JSON object or array.
func normalize(v any) any {
	switch x := v.(type) {
	case string:
		if strings.HasPrefix(x, "{") || strings.HasPrefix(x, "[") {
			var d any
			if json.Unmarshal([]byte(x), &d) == nil {
				return d
			}
		}
		return x
	case int64:
		return float64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}

func substAll(v any, sub func(string) string) any {
	switch x := v.(type) {
	case string:
		return sub(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = substAll(e, sub)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = substAll(e, sub)
		}
		return out
	}
	return v
}

var isoRe = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

func expectJSON(t *testing.T, label string, want, got any) {
	t.Helper()
	for _, d := range matchJSON("", want, got) {
		t.Errorf("%s: %s", label, d)
	}
}

// matchJSON lists where got differs from want (see the matchers above).
func matchJSON(path string, want, got any) []string {
	diff := func(format string, a ...any) []string {
		return []string{path + ": " + fmt.Sprintf(format, a...)}
	}
	switch w := want.(type) {
	case string:
		switch w {
		case "$any":
			if got == nil {
				return diff("want a value, got null")
			}
			return nil
		case "$iso":
			if s, ok := got.(string); !ok || !isoRe.MatchString(s) {
				return diff("want an ISO time, got %v", got)
			}
			return nil
		case "$now":
			n, ok := got.(float64)
			if !ok || n != math.Trunc(n) || math.Abs(n-float64(time.Now().UnixMilli())) > 60000 {
				return diff("want epoch ms near now, got %v", got)
			}
			return nil
		}
		if got != w {
			return diff("want %q, got %v", w, got)
		}
		return nil
	case map[string]any:
		if r, ok := w["$range"].([]any); ok && len(w) == 1 {
			n, isNum := got.(float64)
			if !isNum || n < r[0].(float64) || n > r[1].(float64) {
				return diff("want a number in %v, got %v", r, got)
			}
			return nil
		}
		g, ok := got.(map[string]any)
		if !ok {
			return diff("want an object, got %v", got)
		}
		var out []string
		for k, wv := range w {
			gv, present := g[k]
			if !present {
				out = append(out, path+"."+k+": missing")
				continue
			}
			out = append(out, matchJSON(path+"."+k, wv, gv)...)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				out = append(out, path+"."+k+": unexpected field")
			}
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return diff("want an array of %d, got %v", len(w), got)
		}
		var out []string
		for i := range w {
			out = append(out, matchJSON(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return out
	}
	if want != got {
		return diff("want %v, got %v", want, got)
	}
	return nil
}

// TestMatchJSON keeps the matcher honest: each of these must fail.
func TestMatchJSON(t *testing.T) {
	now := float64(time.Now().UnixMilli())
	bad := []struct{ want, got any }{
		{"$any", nil},
		{"$iso", "2026-11-25T19:04:05Z"},
		{"$now", now - 120000},
		{map[string]any{"$range": []any{1.0, 2.0}}, 3.0},
		{map[string]any{"a": 1.0}, map[string]any{"a": 1.0, "b": 2.0}},
		{map[string]any{"a": 1.0}, map[string]any{}},
		{[]any{1.0}, []any{1.0, 2.0}},
		{"x", "y"},
		{true, false},
		{nil, 0.0},
	}
	for _, b := range bad {
		if len(matchJSON("", b.want, b.got)) == 0 {
			t.Errorf("%v matched %v", b.want, b.got)
		}
	}
	if d := matchJSON("", map[string]any{"t": "$iso", "n": "$now", "r": map[string]any{"$range": []any{1.0, 2.0}}},
		map[string]any{"t": "2026-11-25T19:04:05.123Z", "n": now, "r": 2.0}); len(d) != 0 {
		t.Errorf("good values did not match: %v", d)
	}
}

// TestNodeContract replays the same golden files with the Node runner
// against the machine's Redis. `make deps` installs its packages. Without
// node the tier is skipped (and `make test` says so); with node but without
// the packages it fails, since that is a setup step missed, not a choice.
func TestNodeContract(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("SKIPPED the second-language (Node) contract tier: node is not installed (%v); install Node.js and npm, then run `make deps`", err)
	}
	if _, err := os.Stat(filepath.Join("..", "testdata", "node", "node_modules")); err != nil {
		t.Fatalf("the Node runner's packages are missing: run `make deps` (%v)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("..", "testdata", "node", "run.mjs"))
	cmd.Env = append(os.Environ(), "REDIS_TEST_ADDR="+servertest.RedisAddr())
	out, err := cmd.CombinedOutput()
	t.Logf("node runner:\n%s", out)
	if err != nil {
		t.Fatalf("node runner failed: %v", err)
	}
	if !strings.Contains(string(out), "cases passed") {
		t.Fatalf("node runner did not report its cases")
	}
}
