// Package ratelimit is a GCRA rate limiter shared by every instance through
// Redis, in the spirit of go-redis/redis_rate: one Lua script
// (lua/rateLimit-1.lua) that takes the time from Redis TIME.
//
// The script texts are passed in rather than embedded here, so the files in
// lua/ that scripts.go embeds (and TestLuaHeaders lints) stay the one
// source of truth.
package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/lua"
)

// Rediser is what the limiter needs from a client; *redis.Client and
// *redis.ClusterClient both fit (every call touches one key, so one slot).
type Rediser interface {
	redis.Scripter
	Pipeline() redis.Pipeliner
}

// Limit allows Max requests at once, earned back evenly over Window.
type Limit struct {
	Max    int64
	Window time.Duration
}

func (l Limit) interval() int64 {
	iv := l.Window.Microseconds() / l.Max
	if iv < 1 {
		iv = 1
	}
	return iv
}

// Result is the outcome of one charge.
type Result struct {
	Allowed    bool
	Limit      Limit
	Remaining  int64
	RetryAfter time.Duration // > 0 when refused
	ResetAfter time.Duration // until the budget is full again
}

// Request is one budget to charge: its Redis key and its limit.
type Request struct {
	Key   string
	Limit Limit
}

// Limiter charges requests against budgets kept in Redis.
type Limiter struct {
	rdb     Rediser
	script  *redis.Script // rateLimit-1: one budget
	script2 *redis.Script // rateLimitBoth-2: two budgets, all or nothing
	cluster bool          // keys of one request may sit in different slots
}

// New returns a limiter on rdb running lua/rateLimit-1.lua and
// lua/rateLimitBoth-2.lua.
func New(rdb Rediser) *Limiter {
	_, cluster := rdb.(*redis.ClusterClient)
	one, _ := lua.Source("rateLimit-1.lua")
	both, _ := lua.Source("rateLimitBoth-2.lua")
	return &Limiter{rdb: rdb, script: redis.NewScript(one), script2: redis.NewScript(both), cluster: cluster}
}

// Load runs SCRIPT LOAD, so EVALSHA does not miss.
func (l *Limiter) Load(ctx context.Context) error {
	if err := l.script.Load(ctx, l.rdb).Err(); err != nil {
		return err
	}
	return l.script2.Load(ctx, l.rdb).Err()
}

// Allow charges one request to key.
func (l *Limiter) Allow(ctx context.Context, key string, lim Limit) (Result, error) {
	cmd := l.script.Run(ctx, l.rdb, []string{key}, lim.Max, lim.interval(), 1)
	return result(cmd, lim)
}

// AllowAll charges one request to each budget in one round trip, filling
// out[i] for reqs[i]; the request is allowed only when every budget allows
// it. Two budgets run as one rateLimitBoth-2 call, all or nothing (neither is
// charged when one refuses). On Cluster, or for more budgets, it pipelines
// rateLimit-1 calls, and budgets that allowed are charged regardless.
func (l *Limiter) AllowAll(ctx context.Context, reqs []Request, out []Result) error {
	switch {
	case len(reqs) == 1:
		r, err := l.Allow(ctx, reqs[0].Key, reqs[0].Limit)
		out[0] = r
		return err
	case len(reqs) == 2 && !l.cluster:
		return l.allowTwo(ctx, reqs, out)
	}
	cmds, err := l.pipeline(ctx, reqs)
	if err != nil && isNoScript(err) {
		if err = l.Load(ctx); err == nil {
			cmds, err = l.pipeline(ctx, reqs)
		}
	}
	if err != nil {
		return err
	}
	for i, c := range cmds {
		if out[i], err = result(c, reqs[i].Limit); err != nil {
			return err
		}
	}
	return nil
}

func (l *Limiter) allowTwo(ctx context.Context, reqs []Request, out []Result) error {
	a, b := reqs[0].Limit, reqs[1].Limit
	v, err := l.script2.Run(ctx, l.rdb, []string{reqs[0].Key, reqs[1].Key},
		a.Max, a.interval(), b.Max, b.interval()).Int64Slice()
	if err != nil {
		return err
	}
	if len(v) != 7 {
		return errReply
	}
	allowed := v[0] == 1
	for i, lim := range []Limit{a, b} {
		out[i] = Result{Allowed: allowed, Limit: lim, Remaining: v[1+3*i],
			RetryAfter: time.Duration(v[2+3*i]) * time.Microsecond,
			ResetAfter: time.Duration(v[3+3*i]) * time.Microsecond}
	}
	return nil
}

func (l *Limiter) pipeline(ctx context.Context, reqs []Request) ([]*redis.Cmd, error) {
	p := l.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(reqs))
	for i, r := range reqs {
		cmds[i] = p.EvalSha(ctx, l.script.Hash(), []string{r.Key}, r.Limit.Max, r.Limit.interval(), 1)
	}
	_, err := p.Exec(ctx)
	return cmds, err
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

var errReply = errors.New("ratelimit: unexpected reply")

func result(cmd *redis.Cmd, lim Limit) (Result, error) {
	v, err := cmd.Int64Slice()
	if err != nil {
		return Result{}, err
	}
	if len(v) != 4 {
		return Result{}, errReply
	}
	return Result{
		Allowed:    v[0] == 1,
		Limit:      lim,
		Remaining:  v[1],
		RetryAfter: time.Duration(v[2]) * time.Microsecond,
		ResetAfter: time.Duration(v[3]) * time.Microsecond,
	}, nil
}

// Seconds rounds d up to whole seconds, at least 1: the unit of
// Retry-After and RateLimit-Reset.
func Seconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// AppendSeconds appends Seconds(d) in decimal, for headers without fmt.
func AppendSeconds(b []byte, d time.Duration) []byte {
	return strconv.AppendInt(b, Seconds(d), 10)
}
