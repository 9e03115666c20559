package handlers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/auth"
	"github.com/synckairos/synckairos/clientip"
	"github.com/synckairos/synckairos/engine/ratelimit"
	"github.com/synckairos/synckairos/session"
)

// HeaderRequestID carries the request id in and out.
const HeaderRequestID = "X-Request-Id"

// RouteOpts says which cross-cutting steps a route skips or adds.
type RouteOpts struct {
	Quiet   bool // not logged: /health, /ready, /metrics
	NoLimit bool // exempt from the per-IP limit: those and /v1/time
	// CallerInCall: the handler has its one Redis call charge the caller's
	// budget (TakeCaller), which saves the limiter's round trip: the switch,
	// on a single Redis. A request it answers without that call is charged
	// after it, as before it.
	CallerInCall bool
	// Right is what the route needs with AUTH_MODE=jwt; auth.Open (the
	// zero value) needs no token.
	Right auth.Right
}

// Middleware wraps each route with request id, CORS, rate limits, metrics
// and the request log, in that order. Everything per route (labels,
// histogram) is built once by Wrap, not per request.
type Middleware struct {
	Log         *slog.Logger
	LogRequests bool // log every request; errors (5xx) are logged regardless
	Errors      *Errors
	Set         *metrics.Set
	CORS        *CORS // nil: no CORS headers
	Auth        *Auth // nil: AUTH_MODE=off, no token needed

	Limiter    *ratelimit.Limiter // nil: rate limits off (the switch's per-session budget: Sessions)
	IPLimit    ratelimit.Limit
	TrustProxy bool            // client IP from the first X-Forwarded-For entry
	Ctx        context.Context // bounds limiter calls

	idPrefix string
	idSeq    atomic.Uint64
	limitErr *metrics.Counter
}

var durationBuckets = []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000}

// route is one route's precomputed metrics.
type route struct {
	method, path string
	dur          *metrics.PrometheusHistogram
	byStatus     [600]atomic.Pointer[metrics.Counter]
}

func (m *Middleware) init() {
	if m.idPrefix != "" {
		return
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	m.idPrefix = hex.EncodeToString(b[:]) + "-"
	m.limitErr = m.Set.NewCounter("synckairos_rate_limit_errors_total")
	if m.Ctx == nil {
		m.Ctx = context.Background()
	}
}

func (r *route) counter(set *metrics.Set, status int) *metrics.Counter {
	if status < 0 || status >= len(r.byStatus) {
		status = 0
	}
	if c := r.byStatus[status].Load(); c != nil {
		return c
	}
	c := set.GetOrCreateCounter(`synckairos_http_requests_total{method="` + r.method +
		`",route="` + r.path + `",status_code="` + strconv.Itoa(status) + `"}`)
	r.byStatus[status].Store(c)
	return c
}

// Wrap returns h with the cross-cutting steps for method and path (the
// route template, as registered with the router).
func (m *Middleware) Wrap(method, path string, o RouteOpts, h fasthttp.RequestHandler) fasthttp.RequestHandler {
	m.init()
	r := &route{method: method, path: path}
	r.dur = m.Set.GetOrCreatePrometheusHistogramExt(`synckairos_http_request_duration_ms{method="`+method+
		`",route="`+path+`"}`, durationBuckets)
	limited := m.Limiter != nil && !o.NoLimit
	inCall := limited && o.CallerInCall
	guarded := o.Right != auth.Open
	mutating := method == fasthttp.MethodPost || method == fasthttp.MethodDelete
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		var idBuf [48]byte
		id := m.requestID(ctx, idBuf[:0])
		ctx.Response.Header.SetBytesV(HeaderRequestID, id)
		if m.CORS != nil {
			m.CORS.apply(ctx)
		}
		// The token is verified before the limiter so that a valid one is
		// limited by its sub; a refused one is limited by IP, then answered.
		var claims *auth.Claims
		var denied error
		if m.Auth != nil && guarded {
			claims, denied = m.Auth.check(ctx, o.Right)
		}
		switch {
		case mutating && len(ctx.Request.Body()) > 0 && !isJSONType(ctx.Request.Header.ContentType()):
			// A cross-origin text/plain or form POST is a CORS "simple"
			// request: no preflight stops it, so it must not run.
			m.Errors.Write(ctx, codeError(CodeUnsupportedMediaType))
		case inCall && denied == nil:
			p := &pendingCharge{Budget: budgetOf(m.IPLimit, m.callerKey(ctx, claims))}
			ctx.SetUserValue(pendingKey{}, p)
			m.call(ctx, h)
			if !p.taken {
				// answered without Redis (a bad id or body): a spent budget
				// answers 429 instead, as when the limiter ran first
				m.allow(ctx, claims)
			}
		case !limited || m.allow(ctx, claims):
			if denied != nil {
				m.Auth.Deny(ctx, denied)
			} else {
				m.call(ctx, h)
			}
		}
		status := ctx.Response.StatusCode()
		d := time.Since(start)
		r.dur.Update(float64(d.Microseconds()) / 1000)
		r.counter(m.Set, status).Inc()
		if (m.LogRequests && !o.Quiet) || status >= 500 {
			m.logRequest(ctx, r, id, status, d)
		}
	}
}

// call runs h, turning a panic into the 500 the error table gives it, so
// the request is still counted and logged like any other.
func (m *Middleware) call(ctx *fasthttp.RequestCtx, h fasthttp.RequestHandler) {
	defer func() {
		if v := recover(); v != nil {
			m.Errors.Panic(ctx, v)
		}
	}()
	h(ctx)
}

func (m *Middleware) logRequest(ctx *fasthttp.RequestCtx, r *route, id []byte, status int, d time.Duration) {
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	attrs := [6]slog.Attr{
		slog.String("request_id", string(id)),
		slog.String("method", r.method),
		slog.String("route", r.path),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
	}
	n := 5
	if cause, ok := ctx.UserValue(causeKey).(error); ok && cause != nil {
		attrs[5] = slog.String("error", cause.Error())
		n = 6
	}
	m.Log.LogAttrs(context.Background(), level, "request", attrs[:n]...)
}

// requestID honours a sane X-Request-Id and otherwise makes one from a
// per-process prefix and a counter (unique without a random read per call).
func (m *Middleware) requestID(ctx *fasthttp.RequestCtx, buf []byte) []byte {
	if in := ctx.Request.Header.Peek(HeaderRequestID); len(in) > 0 && len(in) <= 128 && printable(in) {
		return append(buf, in...)
	}
	buf = append(buf, m.idPrefix...)
	return strconv.AppendUint(buf, m.idSeq.Add(1), 10)
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// allow charges the caller's budget and answers 429 when it is spent; the
// RateLimit-* headers describe it (the switch's per-session budget is
// charged by the switch script itself, and Sessions adds it to the
// headers). When Redis fails the request goes through: the limiter
// protects, it must not take the service down with it.
func (m *Middleware) allow(ctx *fasthttp.RequestCtx, c *auth.Claims) bool {
	r, err := m.Limiter.Allow(m.Ctx, m.callerKey(ctx, c), m.IPLimit)
	if err != nil {
		m.limitErr.Inc()
		return true
	}
	h := &ctx.Response.Header
	setRateHeaders(h, r.Limit.Max, r.Remaining, r.ResetAfter)
	if r.Allowed {
		return true
	}
	var b [20]byte
	h.SetBytesV("Retry-After", ratelimit.AppendSeconds(b[:0], r.RetryAfter))
	m.Errors.Write(ctx, codeError(CodeRateLimited))
	return false
}

// callerKey is the caller's budget: a verified caller has its own wherever
// it calls from; the IP budget is for callers without a valid token.
func (m *Middleware) callerKey(ctx *fasthttp.RequestCtx, c *auth.Claims) string {
	if c != nil {
		return "sk:rl:sub:" + c.Subject
	}
	return "sk:rl:ip:" + clientip.Of(ctx, m.TrustProxy)
}

// pendingCharge is the caller's budget of a CallerInCall route, until its
// handler takes it into its Redis call.
type pendingCharge struct {
	session.Budget
	taken bool
}

type pendingKey struct{}

// TakeCaller returns the caller's budget for the handler's Redis call to
// charge, or nil when the middleware charges it (or limits are off). The
// handler must then make that call and describe the budget in the
// RateLimit-* headers, as the switch's budgetHeaders does.
func TakeCaller(ctx *fasthttp.RequestCtx) *session.Budget {
	p, _ := ctx.UserValue(pendingKey{}).(*pendingCharge)
	if p == nil {
		return nil
	}
	p.taken = true
	return &p.Budget
}

// budgetOf is a limit as a script's budget: Max at once, one earned back
// per Window/Max (as the limiter charges it), at key ("": the session's).
func budgetOf(l ratelimit.Limit, key string) session.Budget {
	return session.Budget{Key: key, Burst: l.Max, Interval: l.Window / time.Duration(max(l.Max, 1))}
}

// setRateHeaders describes one budget in the RateLimit-* headers.
func setRateHeaders(h *fasthttp.ResponseHeader, limit, remaining int64, reset time.Duration) {
	var b [20]byte
	h.SetBytesV("RateLimit-Limit", strconv.AppendInt(b[:0], limit, 10))
	h.SetBytesV("RateLimit-Remaining", strconv.AppendInt(b[:0], remaining, 10))
	h.SetBytesV("RateLimit-Reset", ratelimit.AppendSeconds(b[:0], reset))
}

var appJSON = []byte("application/json")

// isJSONType reports whether a Content-Type is application/json, in any
// letter case, with or without parameters such as charset.
func isJSONType(ct []byte) bool {
	ct = bytes.TrimLeft(ct, " \t")
	if len(ct) < len(appJSON) || !bytes.EqualFold(ct[:len(appJSON)], appJSON) {
		return false
	}
	rest := bytes.TrimLeft(ct[len(appJSON):], " \t")
	return len(rest) == 0 || rest[0] == ';'
}

// CORS answers browsers. "*" lets any origin read responses, as
// Access-Control-Allow-Origin: * without credentials; an origin listed by
// name is echoed with Access-Control-Allow-Credentials: true. Reflecting
// any origin with credentials would let every site act with the user's
// cookies.
type CORS struct {
	any   bool
	named [][]byte // lower case, no trailing slash
}

// NewCORS allows origins, such as "https://app.example.com" or "*".
func NewCORS(origins []string) *CORS {
	c := &CORS{}
	for _, o := range origins {
		if o == "*" {
			c.any = true
		} else if o = strings.ToLower(strings.TrimRight(o, "/")); o != "" {
			c.named = append(c.named, []byte(o))
		}
	}
	return c
}

const (
	corsExpose       = "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Idempotent-Replayed, WWW-Authenticate"
	corsAllowHeaders = "Content-Type, If-Match, X-Request-Id, Authorization, Idempotency-Key"
)

// apply sets the CORS headers of a response; false when the request's
// Origin is not allowed (or it has none). The answer depends on Origin, so
// caches are told so (Vary) whatever it is.
func (c *CORS) apply(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Response.Header
	h.Add("Vary", "Origin")
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 {
		return false
	}
	switch {
	case c.isNamed(origin):
		h.SetBytesV("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	case c.any:
		h.Set("Access-Control-Allow-Origin", "*")
	default:
		return false
	}
	h.Set("Access-Control-Expose-Headers", corsExpose)
	return true
}

func (c *CORS) isNamed(origin []byte) bool {
	for _, o := range c.named {
		if bytes.EqualFold(origin, o) {
			return true
		}
	}
	return false
}

// Preflight answers OPTIONS (the router's GlobalOPTIONS).
func (c *CORS) Preflight(ctx *fasthttp.RequestCtx) {
	if c.apply(ctx) {
		h := &ctx.Response.Header
		h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", "600")
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}
