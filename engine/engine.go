// Package engine drives the SyncKairos scripts (lua/): every Go caller runs
// a transition through an *Engine, which builds the KEYS and ARGV
// lua/README.md documents, decodes the replies and maps the scripts' error
// codes to session errors. The service, the relay's STATE_SYNC, expiry, the
// bench tool and every test go through it, and another Go service can
// embed it: nothing here knows HTTP. The boundary is the script contract:
// what a script takes and returns is decided in lua/, how Go calls it
// here, and nothing else builds a script call.
package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/fullstate"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/lua"
	"github.com/synckairos/synckairos/redisconn"
	"github.com/synckairos/synckairos/session"
)

// Engine runs the session transitions, each one EVALSHA of a script in
// lua/. It depends on redis.Scripter only, so a Cluster client works too.
type Engine struct {
	rdb      redis.Scripter
	eventCap *streamCap // read per call: the deployment's audit flag may change it
	asm      *fullstate.Assembler
	idemTTL  string // ms an Idempotency-Key record lives
	dlSuffix string // Options.DeadlineSuffix

	create, start, switchCycle, get, read, pause, resume, complete, del, expire *redis.Script
}

// Options configures an Engine; the zero value records no audit events,
// caches 10,000 large sessions and keeps replies DefaultIdempotencyTTL.
type Options struct {
	// EventCap bounds each shard's audit stream: a transition that finds
	// it full fails with STREAM_FULL; 0 records no events. SetEventCap
	// changes it while the engine runs.
	EventCap int64
	// StateCacheMax bounds the large-session state cache (Assembler).
	StateCacheMax int
	// IdempotencyTTL is how long a reply stays kept under its
	// Idempotency-Key.
	IdempotencyTTL time.Duration
	// DeadlineSuffix names a private deadline index (keyspace.Deadlines +
	// the suffix): only an expiry scheduler given the same suffix sees
	// these sessions' deadlines. Tests sharing a Redis with running
	// services use one; a deployment leaves it empty.
	DeadlineSuffix string
}

// New returns an engine on rdb; call Load before the first transition.
func New(rdb redis.Scripter, o Options) *Engine {
	if o.StateCacheMax <= 0 {
		o.StateCacheMax = 10_000
	}
	if o.IdempotencyTTL <= 0 {
		o.IdempotencyTTL = DefaultIdempotencyTTL
	}
	s := &Engine{rdb: rdb, eventCap: newStreamCap(o.EventCap), dlSuffix: o.DeadlineSuffix}
	s.idemTTL = strconv.FormatInt(max(o.IdempotencyTTL.Milliseconds(), 1), 10)
	script := func(name string) *redis.Script { src, _ := lua.Source(name); return redis.NewScript(src) }
	s.create = script("createSession4-6.lua")
	s.start = script("startSession4-6.lua")
	s.switchCycle = script("switchCycle5-8.lua")
	s.get = script("getSession-2.lua")
	s.read = script("readSession-2.lua")
	s.pause = script("pauseSession4-6.lua")
	s.resume = script("resumeSession4-6.lua")
	s.complete = script("completeSession4-6.lua")
	s.del = script("deleteSession2-5.lua")
	s.expire = script("expireSession4-5.lua")
	s.asm = fullstate.New(s.Parts, o.StateCacheMax)
	return s
}

// DefaultIdempotencyTTL is how long a reply stays kept under its
// Idempotency-Key (IDEMPOTENCY_TTL).
const DefaultIdempotencyTTL = 10 * time.Minute

// SetEventCap changes the audit stream cap of the calls that follow; it
// reports whether the cap changed.
func (s *Engine) SetEventCap(n int64) (changed bool) { return s.eventCap.Set(n) }

// EventCap is the audit stream cap the next call gets.
func (s *Engine) EventCap() int64 { return s.eventCap.Load() }

// Load runs SCRIPT LOAD for every script, so EVALSHA never misses; scripts
// loaded this way are not evicted by Redis.
func (s *Engine) Load(ctx context.Context) error {
	for _, sc := range []*redis.Script{s.create, s.start, s.switchCycle, s.get, s.read, s.pause, s.resume, s.complete, s.del, s.expire} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return err
		}
	}
	return nil
}

// Assembler returns the instance's large-session state cache, which the
// relay shares.
func (s *Engine) Assembler() *fullstate.Assembler { return s.asm }

// mutatorKeys are the keys of create and delete: the session's, its
// shard's stream, and the call's Idempotency-Key record.
func mutatorKeys(id string, c *session.Call) (keyspace.Session, []string) {
	k := keyspace.For(id)
	return k, []string{k.Meta, k.Parts, k.Index, k.Stream, k.Idem(idemKey(c))}
}

// turnKeys adds the shard's deadline index, for the scripts that can
// start or stop a running turn.
func (s *Engine) turnKeys(id string, c *session.Call) (keyspace.Session, []string) {
	k := keyspace.For(id)
	return k, []string{k.Meta, k.Parts, k.Index, k.Stream, keyspace.Deadlines(keyspace.ShardOf(id)) + s.dlSuffix,
		k.Idem(idemKey(c))}
}

// the calls' optional *session.Call: at most one, nil for none
func callOf(c []*session.Call) *session.Call {
	if len(c) == 0 {
		return nil
	}
	return c[0]
}

func idemKey(c *session.Call) string {
	if c == nil {
		return ""
	}
	return c.IdemKey
}

// callArgs appends the ARGV every mutating script ends with:
// idem_fingerprint, idem_ttl_ms, actor.
func (s *Engine) callArgs(args []any, c *session.Call) []any {
	if c == nil {
		return append(args, "", "", "")
	}
	fp := c.Fingerprint
	if c.IdemKey == "" {
		fp = ""
	}
	return append(args, fp, s.idemTTL, c.Actor)
}

func versionArg(v int64) string {
	if v <= 0 {
		return ""
	}
	return strconv.FormatInt(v, 10)
}

func optInt(v *int64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatInt(*v, 10)
}

// invocation is one script call: the script and its KEYS and ARGV.
type invocation struct {
	sc   *redis.Script
	keys []string
	args []any
}

// Create creates a pending session and returns its state JSON.
func (s *Engine) Create(ctx context.Context, c *session.Config, call ...*session.Call) ([]byte, error) {
	cl := callOf(call)
	return s.state(ctx, s.run(ctx, s.createCall(c, cl)), cl)
}

func (s *Engine) run(ctx context.Context, in invocation) *redis.Cmd {
	return in.sc.Run(ctx, s.rdb, in.keys, in.args...)
}

func (s *Engine) createCall(c *session.Config, cl *session.Call) invocation {
	k, keys := mutatorKeys(c.ID, cl)
	keys = append(keys, k.Lives)
	auto := "0"
	if c.AutoAdvance {
		auto = "1"
	}
	args := make([]any, 0, 14+4*len(c.Participants))
	args = append(args, c.ID, k.StateChannel, s.eventCap, c.SyncMode, optInt(c.TotalTimeMS),
		optInt(c.TimePerCycleMS), optInt(c.IncrementMS), optInt(c.MaxTimeMS), auto, string(c.Metadata))
	args = s.callArgs(args, cl)
	for _, p := range c.Participants {
		args = append(args, p.ID, p.Index, p.TotalTimeMS, p.GroupID)
	}
	if len(c.WarningsMS) > 0 {
		w := make([]byte, 0, 8*len(c.WarningsMS))
		for i, ms := range c.WarningsMS {
			if i > 0 {
				w = append(w, ',')
			}
			w = strconv.AppendInt(w, ms, 10)
		}
		args = append(args, string(w))
	}
	return invocation{s.create, keys, args}
}

// Start moves a pending session to running.
func (s *Engine) Start(ctx context.Context, id string, expectedVersion int64, c ...*session.Call) ([]byte, error) {
	return s.simple(ctx, callOf(c), s.start, id, expectedVersion)
}

// Pause moves a running session to paused. A pause that lands after the
// running turn's deadline applies that expiry first (TIME_EXPIRED,
// auto_advance), so the result may be another participant paused, or an
// expired session.
func (s *Engine) Pause(ctx context.Context, id string, expectedVersion int64, c ...*session.Call) ([]byte, error) {
	return s.late(ctx, callOf(c), s.pause, id, expectedVersion)
}

// Resume moves a paused session to running.
func (s *Engine) Resume(ctx context.Context, id string, expectedVersion int64, c ...*session.Call) ([]byte, error) {
	return s.simple(ctx, callOf(c), s.resume, id, expectedVersion)
}

// Complete ends a pending, running or paused session. Like Pause, a late
// complete applies the expiry first; when that ends the session, it stays
// expired.
func (s *Engine) Complete(ctx context.Context, id string, expectedVersion int64, c ...*session.Call) ([]byte, error) {
	return s.late(ctx, callOf(c), s.complete, id, expectedVersion)
}

func (s *Engine) simple(ctx context.Context, c *session.Call, sc *redis.Script, id string, expectedVersion int64) ([]byte, error) {
	return s.state(ctx, s.run(ctx, s.simpleCall(sc, id, expectedVersion, c)), c)
}

func (s *Engine) simpleCall(sc *redis.Script, id string, expectedVersion int64, c *session.Call) invocation {
	k, keys := s.turnKeys(id, c)
	args := append(make([]any, 0, 7), id, k.StateChannel, s.eventCap, versionArg(expectedVersion))
	return invocation{sc, keys, s.callArgs(args, c)}
}

// late runs a script that may apply an expiry first: it also gets the
// message channel, for TIME_EXPIRED.
func (s *Engine) late(ctx context.Context, c *session.Call, sc *redis.Script, id string, expectedVersion int64) ([]byte, error) {
	k, keys := s.turnKeys(id, c)
	args := append(make([]any, 0, 8), id, k.StateChannel, s.eventCap, versionArg(expectedVersion), k.MsgChannel)
	return s.state(ctx, s.run(ctx, invocation{sc, keys, s.callArgs(args, c)}), c)
}

// Switch ends the active turn and returns the state, which doubles as the
// v1 SwitchCycleResult (it adds expired_participant_id when a clock ran out).
func (s *Engine) Switch(ctx context.Context, id string, a session.SwitchArgs, c ...*session.Call) ([]byte, error) {
	cl := callOf(c)
	return s.state(ctx, s.run(ctx, s.switchCall(id, a, cl)), cl)
}

func (s *Engine) switchCall(id string, a session.SwitchArgs, c *session.Call) invocation {
	k, keys := s.turnKeys(id, c)
	caller := k.Budget() // KEYS[8] without the caller's budget: in the session's slot, untouched
	if c != nil && c.Caller != nil {
		caller = c.Caller.Key
	}
	keys = append(keys, k.Budget(), caller)
	// room for the call's three and both budgets, so nothing regrows the slice
	args := append(make([]any, 0, 14), id, k.StateChannel, s.eventCap, versionArg(a.ExpectedVersion),
		a.CurrentParticipantID, a.NextParticipantID, k.MsgChannel)
	args = s.callArgs(args, c)
	switch {
	case c == nil:
	case c.Caller != nil: // the session's budget ("" when none), then the caller's
		args = budgetArgs(budgetArgs(args, c.Budget), c.Caller)
	case c.Budget != nil:
		args = budgetArgs(args, c.Budget)
	}
	return invocation{s.switchCycle, keys, args}
}

// budgetArgs appends a budget's burst and interval (µs) as the switch
// takes them, or two "" for none.
func budgetArgs(args []any, b *session.Budget) []any {
	if b == nil {
		return append(args, "", "")
	}
	return append(args, b.Burst, max(b.Interval.Microseconds(), 1))
}

// Expire applies the expiry of a session's running turn if its deadline
// has passed (expireSession4-5.lua). It is idempotent: fired reports
// whether this call changed the session (and published TIME_EXPIRED).
func (s *Engine) Expire(ctx context.Context, id string) (fired bool, err error) {
	k, keys := s.turnKeys(id, nil)
	v, err := s.expire.Run(ctx, s.rdb, keys[:5], id, k.StateChannel, s.eventCap, k.MsgChannel).Result()
	if err != nil {
		return false, scriptErr(err, true)
	}
	_, isState := v.(string) // the message; 0 or 1 when nothing changed
	return isState, nil
}

// Delete removes a session; it reports whether the session existed.
func (s *Engine) Delete(ctx context.Context, id string, expectedVersion int64, c ...*session.Call) (bool, error) {
	cl := callOf(c)
	k, keys := mutatorKeys(id, cl)
	args := s.callArgs([]any{id, k.StateChannel, s.eventCap, versionArg(expectedVersion)}, cl)
	v, err := s.del.Run(ctx, s.rdb, keys, args...).Result()
	if err != nil {
		return false, scriptErr(err, true)
	}
	s.asm.Forget(id)
	if n, ok := v.(int64); ok {
		return n == 1, nil
	}
	// {"replay", "1"|"0"}: the kept reply of an earlier call with this key
	r, ok := v.([]any)
	if !ok || len(r) != 2 || r[0] != "replay" {
		return false, errReply
	}
	if cl != nil {
		cl.Replayed = true
	}
	return r[1] == "1", nil
}

// Get returns a session's current state.
func (s *Engine) Get(ctx context.Context, id string) ([]byte, error) {
	head, parts, err := s.Parts(ctx, id)
	if err != nil {
		return nil, err
	}
	return fullstate.Build(head, parts), nil
}

// Parts reads a session as its head (the state without "participants") and
// its participants in rotation order: a fullstate.Fetch. readSession-2
// returns what is stored and the state is rendered here, so Redis builds no
// JSON for a read; a session stored before the meta hash was packed is read
// with getSession-2 instead.
func (s *Engine) Parts(ctx context.Context, id string) ([]byte, [][]byte, error) {
	k := keyspace.For(id)
	vals, err := s.read.Run(ctx, s.rdb, []string{k.Meta, k.Parts}, id).Slice()
	if err != nil {
		return nil, nil, scriptErr(err, false)
	}
	if len(vals) == 0 {
		return s.getParts(ctx, k, id)
	}
	now, ok := vals[0].(int64)
	if !ok || len(vals) < 3 {
		return nil, nil, errReply
	}
	strs, err := bulkStrings(vals[1:])
	if err != nil {
		return nil, nil, err
	}
	head, err := fullstate.RenderHead(strs[0], strs[1], now, "")
	if err != nil {
		return nil, nil, err
	}
	parts := strs[2:]
	for i, p := range parts {
		if parts[i], err = fullstate.RenderParticipant(p); err != nil {
			return nil, nil, err
		}
	}
	return head, parts, nil
}

// getParts reads a session with getSession-2: its head as Redis renders it.
func (s *Engine) getParts(ctx context.Context, k keyspace.Session, id string) ([]byte, [][]byte, error) {
	vals, err := s.get.Run(ctx, s.rdb, []string{k.Meta, k.Parts}, id).Slice()
	if err != nil {
		return nil, nil, scriptErr(err, false)
	}
	if len(vals) == 0 {
		return nil, nil, errReply
	}
	strs, err := bulkStrings(vals)
	if err != nil {
		return nil, nil, err
	}
	return strs[0], strs[1:], nil
}

// bulkStrings turns a reply's bulk strings into byte slices.
func bulkStrings(vals []any) ([][]byte, error) {
	out := make([][]byte, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			return nil, errReply
		}
		out[i] = []byte(str)
	}
	return out, nil
}

var errReply = errors.New("scripts: unexpected reply shape")

// takeBudget fills in b from the last two values of a reply, what is left
// of it and when it is full again, and returns the reply without them.
func takeBudget(vals []any, b *session.Budget) []any {
	n := len(vals)
	r, _ := vals[n-2].(int64)
	t, _ := vals[n-1].(int64)
	b.Charged, b.Remaining, b.ResetAfter = true, r, time.Duration(t)*time.Microsecond
	return vals[:n-2]
}

// state decodes the reply of a mutating script into full state; a replay
// is flagged on c. Revision 4 replies with the message itself ({message,
// remaining, reset} with the switch's budget); with the caller's budget
// (c.Caller) switchCycle5-8 appends its remaining and reset to any reply,
// which come off first; revision 3 replied
// {"packed", message, ...} and revision 2 {"full", json} (an A/B run, or a
// fleet mid-upgrade); a replay is {"replay", payload}.
func (s *Engine) state(ctx context.Context, cmd *redis.Cmd, c *session.Call) ([]byte, error) {
	v, err := cmd.Result()
	if err != nil {
		return nil, scriptErr(err, true)
	}
	if msg, ok := v.(string); ok {
		return s.apply(ctx, msg)
	}
	vals, ok := v.([]any)
	if !ok {
		return nil, errReply
	}
	// the budgets' values come last, the caller's after the session's; once
	// one came off, what is left may be the message alone
	took := false
	if c != nil && c.Caller != nil {
		if len(vals) < 3 {
			return nil, errReply
		}
		vals, took = takeBudget(vals, c.Caller), true
	}
	if n := len(vals); (n == 3 || n == 4) && c != nil && c.Budget != nil { // then the session's
		vals, took = takeBudget(vals, c.Budget), true
	}
	if len(vals) == 1 && took {
		msg, _ := vals[0].(string)
		return s.apply(ctx, msg)
	}
	if len(vals) != 2 {
		return nil, errReply
	}
	kind, _ := vals[0].(string)
	payload, _ := vals[1].(string)
	switch kind {
	case "full":
		return []byte(payload), nil
	case "replay":
		if c != nil {
			c.Replayed = true
		}
		if strings.HasPrefix(payload, "{") { // kept by a revision-2 script
			return []byte(payload), nil
		}
		return s.apply(ctx, payload) // a message of the whole state
	case "packed", "delta":
		return s.apply(ctx, payload)
	}
	return nil, errReply
}

// apply renders a message and lays it over what the Assembler holds.
func (s *Engine) apply(ctx context.Context, msg string) ([]byte, error) {
	d, err := fullstate.Decode([]byte(msg))
	if err != nil {
		return nil, err
	}
	return s.asm.Apply(ctx, d)
}

// scriptErr maps a script's error reply to a *session.Error. A reply that
// proves the script did not run (a Cluster redirection left over, a node
// failing over or loading: redisconn.NotRun) is UNAVAILABLE, safe to retry.
// A call that got no reply is UNAVAILABLE when it never left (no
// connection), and, for a script that writes (mutating), OUTCOME_UNKNOWN
// once it may have been sent: it may have run, so nothing re-sends it (the
// client is told to re-read, or to retry with its Idempotency-Key). The
// cause stays wrapped for the log. Any other reply error (NOSCRIPT...)
// passes through.
func scriptErr(err error, mutating bool) error {
	var re redis.Error
	if errors.As(err, &re) {
		if e := session.ParseScriptError(re.Error()); e != nil {
			return e
		}
		if redisconn.NotRun(err) {
			return fmt.Errorf("%w: %w", session.ErrUnavailable, err)
		}
		return err
	}
	if !mutating || redisconn.NotSent(err) {
		return fmt.Errorf("%w: %w", session.ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %w", session.ErrOutcomeUnknown, err)
}
