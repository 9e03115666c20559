// Package handlers is the HTTP surface of SyncKairos on fasthttp: each
// handler parses, validates, makes one Engine call and writes the bytes the
// script returned. Errors go through Errors.Write, the one mapping from
// error to status and body.
package handlers

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/engine/ratelimit"
	"github.com/synckairos/synckairos/session"
)

// Engine runs session transitions; main wires *Scripts into it. Each
// []byte is the v1 state JSON, written to the client unchanged.
// The *session.Call carries the request's Idempotency-Key and actor; the
// engine flags a kept reply on it (Replayed).
type Engine interface {
	Create(ctx context.Context, c *session.Config, call ...*session.Call) ([]byte, error)
	Start(ctx context.Context, id string, expectedVersion int64, call ...*session.Call) ([]byte, error)
	Pause(ctx context.Context, id string, expectedVersion int64, call ...*session.Call) ([]byte, error)
	Resume(ctx context.Context, id string, expectedVersion int64, call ...*session.Call) ([]byte, error)
	Complete(ctx context.Context, id string, expectedVersion int64, call ...*session.Call) ([]byte, error)
	Switch(ctx context.Context, id string, a session.SwitchArgs, call ...*session.Call) ([]byte, error)
	Get(ctx context.Context, id string) ([]byte, error)
	Delete(ctx context.Context, id string, expectedVersion int64, call ...*session.Call) (bool, error)
}

var (
	contentJSON = []byte("application/json")
	ifMatch     = []byte("If-Match")
)

// Sessions serves /v1/sessions.
type Sessions struct {
	eng        Engine
	ctx        context.Context // not the RequestCtx: that one is cancelled at shutdown, and in-flight calls must finish
	errs       *Errors
	switchHist *metrics.PrometheusHistogram

	// SwitchBudget is each session's switch budget, charged by the switch
	// script itself (one round trip); Max 0 turns it off.
	SwitchBudget ratelimit.Limit
}

// NewSessions serves eng. ctx bounds every Engine call (main cancels it only
// after in-flight requests finished). set receives
// synckairos_switch_cycle_duration_ms.
func NewSessions(ctx context.Context, eng Engine, errs *Errors, set *metrics.Set) *Sessions {
	return &Sessions{eng: eng, ctx: ctx, errs: errs,
		switchHist: set.NewPrometheusHistogramExt("synckairos_switch_cycle_duration_ms", []float64{1, 2, 3, 5, 10, 25, 50})}
}

// writeData answers {"data": state} by appending the script's bytes.
func writeData(ctx *fasthttp.RequestCtx, status int, state []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentTypeBytes(contentJSON)
	ctx.Response.AppendBodyString(`{"data":`)
	ctx.Response.AppendBody(state)
	ctx.Response.AppendBodyString("}")
}

// reply writes the state, or the error of call op (create, start, switch…)
// on session id: the error table names the call that would help. c flags a
// kept reply (Idempotent-Replayed).
func (s *Sessions) reply(ctx *fasthttp.RequestCtx, op, id string, status int, c *session.Call, state []byte, err error) {
	if err != nil {
		s.errs.Write(ctx, &callError{op: op, id: id, err: err})
		return
	}
	markReplayed(ctx, c)
	writeData(ctx, status, state)
}

// newCall is the request's Call for op (its Idempotency-Key and actor),
// once the parsing went well: it writes err, or NewCall's error, and
// reports whether the handler goes on.
func (s *Sessions) newCall(ctx *fasthttp.RequestCtx, op string, err error) (*session.Call, bool) {
	var call *session.Call
	if err == nil {
		call, err = NewCall(ctx, op)
	}
	if err != nil {
		s.errs.Write(ctx, err)
		return nil, false
	}
	return call, true
}

// pathID returns the {id} path parameter in lower case, or writes a 400
// when it is not a UUID.
func (s *Sessions) pathID(ctx *fasthttp.RequestCtx) (string, bool) {
	return pathID(ctx, s.errs)
}

func pathID(ctx *fasthttp.RequestCtx, errs *Errors) (string, bool) {
	raw, _ := ctx.UserValue("id").(string)
	id, ok := session.NormalizeID(raw)
	if !ok {
		errs.Write(ctx, invalid("id", "Invalid uuid"))
	}
	return id, ok
}

// Create serves POST /v1/sessions.
func (s *Sessions) Create(ctx *fasthttp.RequestCtx) {
	c, err := ParseCreate(ctx.PostBody())
	if err == nil {
		err = canCreate(ctx, c.ID)
	}
	call, ok := s.newCall(ctx, "create", err)
	if !ok {
		return
	}
	state, err := s.eng.Create(s.ctx, c, call)
	s.reply(ctx, "create", c.ID, fasthttp.StatusCreated, call, state, err)
}

// Get serves GET /v1/sessions/{id}.
func (s *Sessions) Get(ctx *fasthttp.RequestCtx) {
	id, ok := s.pathID(ctx)
	if !ok {
		return
	}
	state, err := s.eng.Get(s.ctx, id)
	s.reply(ctx, "get", id, fasthttp.StatusOK, nil, state, err)
}

// Switch serves POST /v1/sessions/{id}/switch, the hot path.
func (s *Sessions) Switch(ctx *fasthttp.RequestCtx) {
	id, ok := s.pathID(ctx)
	if !ok {
		return
	}
	a, err := ParseSwitch(ctx.PostBody(), ctx.Request.Header.PeekBytes(ifMatch))
	if err == nil {
		err = pinPlayer(ctx, &a)
	}
	call, ok := s.newCall(ctx, "switch", err)
	if !ok {
		return
	}
	if b := s.SwitchBudget; b.Max > 0 {
		if call == nil {
			call = &session.Call{}
		}
		sb := budgetOf(b, "")
		call.Budget = &sb
	}
	if b := TakeCaller(ctx); b != nil { // charged by the switch itself: one round trip
		if call == nil {
			call = &session.Call{}
		}
		call.Caller = b
	}
	start := time.Now()
	state, err := s.eng.Switch(s.ctx, id, a, call)
	s.switchHist.Update(float64(time.Since(start).Microseconds()) / 1000)
	if call != nil && (call.Budget != nil || call.Caller != nil) {
		budgetHeaders(ctx, call, err)
		if errors.Is(err, session.ErrRateLimited) {
			s.errs.Write(ctx, codeError(CodeRateLimited))
			return
		}
	}
	s.reply(ctx, "switch", id, fasthttp.StatusOK, call, state, err)
}

// budgetHeaders describes the budgets the switch charged in the RateLimit-*
// headers: the caller's (when the switch charged it), then the session's
// when it is tighter; a spent one, with Retry-After, when the switch was
// refused.
func budgetHeaders(ctx *fasthttp.RequestCtx, call *session.Call, err error) {
	h := &ctx.Response.Header
	var se *session.Error
	if errors.Is(err, session.ErrRateLimited) && errors.As(err, &se) {
		var d struct {
			Limit        int64 `json:"limit"`
			RetryAfterUS int64 `json:"retry_after_us"`
			ResetAfterUS int64 `json:"reset_after_us"`
		}
		_ = json.Unmarshal(se.Details, &d)
		setRateHeaders(h, d.Limit, 0, time.Duration(d.ResetAfterUS)*time.Microsecond)
		var buf [20]byte
		h.SetBytesV("Retry-After", ratelimit.AppendSeconds(buf[:0], time.Duration(d.RetryAfterUS)*time.Microsecond))
		return
	}
	if b := call.Caller; b != nil && b.Charged {
		setRateHeaders(h, b.Burst, b.Remaining, b.ResetAfter)
	}
	if b := call.Budget; b != nil && b.Charged {
		if v := h.Peek("RateLimit-Remaining"); v == nil || b.Remaining < parseInt(v) {
			setRateHeaders(h, b.Burst, b.Remaining, b.ResetAfter)
		}
	}
}

// parseInt reads a decimal header value; garbage reads as a large number.
func parseInt(v []byte) int64 {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 1<<63 - 1
	}
	return n
}

// transition serves start, pause, resume and complete (op): one call
// taking the optional expected version (body or If-Match).
func (s *Sessions) transition(op string, do func(context.Context, string, int64, ...*session.Call) ([]byte, error)) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		id, ok := s.pathID(ctx)
		if !ok {
			return
		}
		v, err := ParseVersion(ctx.PostBody(), ctx.Request.Header.PeekBytes(ifMatch))
		call, ok := s.newCall(ctx, op, err)
		if !ok {
			return
		}
		state, err := do(s.ctx, id, v, call)
		s.reply(ctx, op, id, fasthttp.StatusOK, call, state, err)
	}
}

// Start serves POST /v1/sessions/{id}/start.
func (s *Sessions) Start() fasthttp.RequestHandler { return s.transition("start", s.eng.Start) }

// Pause serves POST /v1/sessions/{id}/pause.
func (s *Sessions) Pause() fasthttp.RequestHandler { return s.transition("pause", s.eng.Pause) }

// Resume serves POST /v1/sessions/{id}/resume.
func (s *Sessions) Resume() fasthttp.RequestHandler { return s.transition("resume", s.eng.Resume) }

// Complete serves POST /v1/sessions/{id}/complete.
func (s *Sessions) Complete() fasthttp.RequestHandler {
	return s.transition("complete", s.eng.Complete)
}

// Delete serves DELETE /v1/sessions/{id}: 204 whether or not it existed.
func (s *Sessions) Delete(ctx *fasthttp.RequestCtx) {
	id, ok := s.pathID(ctx)
	if !ok {
		return
	}
	v, err := ParseVersion(ctx.PostBody(), ctx.Request.Header.PeekBytes(ifMatch))
	call, ok := s.newCall(ctx, "delete", err)
	if !ok {
		return
	}
	if _, err := s.eng.Delete(s.ctx, id, v, call); err != nil {
		s.errs.Write(ctx, err)
		return
	}
	markReplayed(ctx, call)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}
