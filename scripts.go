package main

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/fullstate"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/session"
)

// The scripts, one file per transition; lua/README.md is their contract.
//
//go:embed lua/*.lua
var luaFiles embed.FS

// scriptSources maps each lua/ file name to its text.
var scriptSources = func() map[string]string {
	out := map[string]string{}
	names, _ := fs.Glob(luaFiles, "lua/*.lua")
	for _, n := range names {
		b, _ := luaFiles.ReadFile(n)
		out[n[len("lua/"):]] = string(b)
	}
	return out
}()

// Scripts runs the session transitions, each one EVALSHA of a script in lua/.
// It depends on redis.Scripter only, so a Cluster client works too.
type Scripts struct {
	rdb      redis.Scripter
	eventCap *streamCap // read per call: the audit flag may change it (auditwire.go)
	asm      *fullstate.Assembler
	// dlSuffix is appended to the deadline index key; tests use a private
	// one so that a scheduler running elsewhere on the same Redis leaves
	// their sessions alone.
	dlSuffix string

	create, start, switchCycle, get, pause, resume, complete, del, expire *redis.Script
}

// NewScripts wraps rdb. eventCap bounds each shard's audit stream: a
// transition that finds it full fails with STREAM_FULL; 0 records no events
// (persistence off). cacheMax bounds the large-session state cache.
func NewScripts(rdb redis.Scripter, eventCap int64, cacheMax int) *Scripts {
	s := &Scripts{rdb: rdb, eventCap: newStreamCap(eventCap)}
	script := func(name string) *redis.Script { return redis.NewScript(scriptSources[name]) }
	s.create = script("createSession-4.lua")
	s.start = script("startSession-5.lua")
	s.switchCycle = script("switchCycle-5.lua")
	s.get = script("getSession-2.lua")
	s.pause = script("pauseSession-5.lua")
	s.resume = script("resumeSession-5.lua")
	s.complete = script("completeSession-5.lua")
	s.del = script("deleteSession-4.lua")
	s.expire = script("expireSession-5.lua")
	s.asm = fullstate.New(s.parts, cacheMax)
	return s
}

// Load runs SCRIPT LOAD for every script, so EVALSHA never misses; scripts
// loaded this way are not evicted by Redis.
func (s *Scripts) Load(ctx context.Context) error {
	for _, sc := range []*redis.Script{s.create, s.start, s.switchCycle, s.get, s.pause, s.resume, s.complete, s.del, s.expire} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return err
		}
	}
	return nil
}

// Assembler returns the instance's large-session state cache, which the
// relay shares.
func (s *Scripts) Assembler() *fullstate.Assembler { return s.asm }

func mutatorKeys(id string) (keyspace.Session, []string) {
	k := keyspace.For(id)
	return k, []string{k.Meta, k.Parts, k.Index, k.Stream}
}

// turnKeys adds the shard's deadline index, for the scripts that can
// start or stop a running turn.
func (s *Scripts) turnKeys(id string) (keyspace.Session, []string) {
	k := keyspace.For(id)
	return k, []string{k.Meta, k.Parts, k.Index, k.Stream, keyspace.Deadlines(keyspace.ShardOf(id)) + s.dlSuffix}
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

// Create creates a pending session and returns its state JSON.
func (s *Scripts) Create(ctx context.Context, c *session.Config) ([]byte, error) {
	k, keys := mutatorKeys(c.ID)
	auto := "0"
	if c.AutoAdvance {
		auto = "1"
	}
	args := make([]any, 0, 10+4*len(c.Participants))
	args = append(args, c.ID, k.StateChannel, s.eventCap, c.SyncMode, optInt(c.TotalTimeMS),
		optInt(c.TimePerCycleMS), optInt(c.IncrementMS), optInt(c.MaxTimeMS), auto, string(c.Metadata))
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
	return s.state(ctx, s.create.Run(ctx, s.rdb, keys, args...))
}

// Start moves a pending session to running.
func (s *Scripts) Start(ctx context.Context, id string, expectedVersion int64) ([]byte, error) {
	return s.simple(ctx, s.start, id, expectedVersion)
}

// Pause moves a running session to paused. A pause that lands after the
// running turn's deadline applies that expiry first (TIME_EXPIRED,
// auto_advance), so the result may be another participant paused, or an
// expired session.
func (s *Scripts) Pause(ctx context.Context, id string, expectedVersion int64) ([]byte, error) {
	return s.late(ctx, s.pause, id, expectedVersion)
}

// Resume moves a paused session to running.
func (s *Scripts) Resume(ctx context.Context, id string, expectedVersion int64) ([]byte, error) {
	return s.simple(ctx, s.resume, id, expectedVersion)
}

// Complete ends a pending, running or paused session. Like Pause, a late
// complete applies the expiry first; when that ends the session, it stays
// expired.
func (s *Scripts) Complete(ctx context.Context, id string, expectedVersion int64) ([]byte, error) {
	return s.late(ctx, s.complete, id, expectedVersion)
}

func (s *Scripts) simple(ctx context.Context, sc *redis.Script, id string, expectedVersion int64) ([]byte, error) {
	k, keys := s.turnKeys(id)
	return s.state(ctx, sc.Run(ctx, s.rdb, keys, id, k.StateChannel, s.eventCap, versionArg(expectedVersion)))
}

// late runs a script that may apply an expiry first: it also gets the
// message channel, for TIME_EXPIRED.
func (s *Scripts) late(ctx context.Context, sc *redis.Script, id string, expectedVersion int64) ([]byte, error) {
	k, keys := s.turnKeys(id)
	return s.state(ctx, sc.Run(ctx, s.rdb, keys, id, k.StateChannel, s.eventCap, versionArg(expectedVersion), k.MsgChannel))
}

// Switch ends the active turn and returns the state, which doubles as the
// v1 SwitchCycleResult (it adds expired_participant_id when a clock ran out).
func (s *Scripts) Switch(ctx context.Context, id string, a session.SwitchArgs) ([]byte, error) {
	k, keys := s.turnKeys(id)
	return s.state(ctx, s.switchCycle.Run(ctx, s.rdb, keys, id, k.StateChannel, s.eventCap,
		versionArg(a.ExpectedVersion), a.CurrentParticipantID, a.NextParticipantID, k.MsgChannel))
}

// Expire applies the expiry of a session's running turn if its deadline
// has passed (expireSession-5.lua). It is idempotent: fired reports
// whether this call changed the session (and published TIME_EXPIRED).
func (s *Scripts) Expire(ctx context.Context, id string) (fired bool, err error) {
	k, keys := s.turnKeys(id)
	v, err := s.expire.Run(ctx, s.rdb, keys, id, k.StateChannel, s.eventCap, k.MsgChannel).Result()
	if err != nil {
		return false, scriptErr(err)
	}
	_, isState := v.([]any)
	return isState, nil
}

// Delete removes a session; it reports whether the session existed.
func (s *Scripts) Delete(ctx context.Context, id string, expectedVersion int64) (bool, error) {
	k, keys := mutatorKeys(id)
	n, err := s.del.Run(ctx, s.rdb, keys, id, k.StateChannel, s.eventCap, versionArg(expectedVersion)).Int64()
	if err != nil {
		return false, scriptErr(err)
	}
	s.asm.Forget(id)
	return n == 1, nil
}

// Get returns a session's current state.
func (s *Scripts) Get(ctx context.Context, id string) ([]byte, error) {
	head, parts, err := s.parts(ctx, id)
	if err != nil {
		return nil, err
	}
	return fullstate.Build(head, parts), nil
}

func (s *Scripts) parts(ctx context.Context, id string) ([]byte, [][]byte, error) {
	k := keyspace.For(id)
	vals, err := s.get.Run(ctx, s.rdb, []string{k.Meta, k.Parts}, id).Slice()
	if err != nil {
		return nil, nil, scriptErr(err)
	}
	if len(vals) == 0 {
		return nil, nil, errReply
	}
	strs := make([][]byte, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			return nil, nil, errReply
		}
		strs[i] = []byte(str)
	}
	return strs[0], strs[1:], nil
}

var errReply = errors.New("scripts: unexpected reply shape")

// state decodes the {kind, json} reply of a mutating script into full state.
func (s *Scripts) state(ctx context.Context, cmd *redis.Cmd) ([]byte, error) {
	vals, err := cmd.Slice()
	if err != nil {
		return nil, scriptErr(err)
	}
	if len(vals) != 2 {
		return nil, errReply
	}
	kind, _ := vals[0].(string)
	payload, _ := vals[1].(string)
	switch kind {
	case "full":
		return []byte(payload), nil
	case "delta":
		d, err := fullstate.Decode([]byte(payload))
		if err != nil {
			return nil, err
		}
		return s.asm.Apply(ctx, d)
	}
	return nil, errReply
}

// scriptErr maps a script's error reply to a *session.Error, and passes
// any other error (network, NOSCRIPT...) through.
func scriptErr(err error) error {
	var re redis.Error
	if errors.As(err, &re) {
		if e := session.ParseScriptError(re.Error()); e != nil {
			return e
		}
	}
	return err
}
