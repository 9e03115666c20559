package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/alicebob/miniredis/v2"
	"github.com/fasthttp/router"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/auth"
	"github.com/synckairos/synckairos/docs"
	"github.com/synckairos/synckairos/engine"
	"github.com/synckairos/synckairos/engine/ratelimit"
	"github.com/synckairos/synckairos/handlers"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/redisclock"
	"github.com/synckairos/synckairos/redisconn"
	"github.com/synckairos/synckairos/webassets"
)

// app is one running instance: the shared clients and the HTTP server.
//
// Extension points for the other components (wire them in wire()):
//   - a.handle(method, path, opts, h): a route behind the middleware
//     (request id, CORS, rate limits, metrics, log);
//   - a.router.GET("/ws", h): a raw route, e.g. one that upgrades the
//     connection itself;
//   - a.addReady(name, fn): a /ready check;
//   - a.onShutdown(name, fn): a step run after HTTP stopped accepting and
//     in-flight requests finished, in registration order (close
//     WebSockets, then drain persist); Redis closes after all of them;
//   - a.addMetrics(set): a metrics set exposed at /metrics;
//   - a.bg: a context cancelled once the shutdown steps ran.
type app struct {
	cfg     Config
	log     *slog.Logger
	rdb     redis.UniversalClient
	engine  *engine.Engine
	clock   *redisclock.Clock
	router  *router.Router
	mw      *handlers.Middleware
	auth    *handlers.Auth // nil with AUTH_MODE=off
	errs    *handlers.Errors
	httpSet *metrics.Set

	metricSets []*metrics.Set
	ready      []handlers.Check
	shutdown   []hook

	bg       context.Context
	stopBg   context.CancelFunc
	embedded *miniredis.Miniredis
	server   *fasthttp.Server

	badRequest fasthttp.RequestHandler // the middleware around Errors.BadRequest
	events     handlers.EventStore     // set by wirePersist; nil: the events route answers 503
}

type hook struct {
	name string
	fn   func(ctx context.Context) error
}

func (a *app) addReady(name string, fn func(context.Context) error) {
	a.ready = append(a.ready, handlers.Check{Name: name, Fn: fn})
}

func (a *app) onShutdown(name string, fn func(context.Context) error) {
	a.shutdown = append(a.shutdown, hook{name, fn})
}

func (a *app) addMetrics(s *metrics.Set) { a.metricSets = append(a.metricSets, s) }

func (a *app) handle(method, path string, o handlers.RouteOpts, h fasthttp.RequestHandler) {
	a.router.Handle(method, path, a.mw.Wrap(method, path, o, h))
}

// newApp connects to Redis (or starts the embedded one), loads the scripts
// and builds the routes. close releases what it opened.
func newApp(ctx context.Context, cfg Config, log *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, log: log}
	a.bg, a.stopBg = context.WithCancel(context.Background())
	if err := a.connect(ctx); err != nil {
		a.close()
		return nil, err
	}
	var err error
	if a.engine, err = newEngine(ctx, a.rdb, cfg); err != nil {
		a.close()
		return nil, err
	}
	a.clock = redisclock.New(a.rdb)
	if err := a.clock.Sync(ctx); err != nil {
		a.close()
		return nil, errors.New("reading Redis TIME: " + err.Error())
	}
	go a.clock.Run(a.bg, cfg.ClockSync, log)

	// TYPE lines make the histograms real Prometheus histograms to parsers.
	metrics.ExposeMetadata(true)
	a.errs = &handlers.Errors{Debug: cfg.DebugErrors, Log: log}
	a.httpSet = metrics.NewSet()
	a.addMetrics(a.httpSet)
	a.mw = &handlers.Middleware{
		Log: log, LogRequests: cfg.LogRequests, Errors: a.errs, Set: a.httpSet,
		IPLimit:    ratelimit.Limit{Max: cfg.RateLimitIP, Window: cfg.RateLimitIPWindow},
		TrustProxy: cfg.TrustProxy, Ctx: a.bg,
	}
	if len(cfg.CORSOrigins) > 0 {
		a.mw.CORS = handlers.NewCORS(cfg.CORSOrigins)
	}
	if cfg.RateLimitEnabled {
		a.mw.Limiter = ratelimit.New(a.rdb)
		if err := a.mw.Limiter.Load(ctx); err != nil {
			a.close()
			return nil, errors.New("loading the rate limit script: " + err.Error())
		}
	}
	a.addReady("redis", func(ctx context.Context) error { return a.rdb.Ping(ctx).Err() })
	if err := a.wireAuth(ctx); err != nil {
		a.close()
		return nil, err
	}
	a.routes()
	if err := a.wire(ctx); err != nil {
		a.close()
		return nil, err
	}
	a.onShutdown("stop background work", func(context.Context) error { a.stopBg(); return nil })
	return a, nil
}

// connect opens REDIS_URL or REDIS_CLUSTER_ADDRS (redisconn), or with
// neither starts an in-process miniredis.
func (a *app) connect(ctx context.Context) error {
	rc := redisconn.Config{URL: a.cfg.RedisURL, ClusterAddrs: a.cfg.RedisClusterAddrs, Timeout: a.cfg.RedisTimeout}
	if rc.URL == "" && len(rc.ClusterAddrs) == 0 {
		m, err := redisconn.Embedded()
		if err != nil {
			return err
		}
		a.embedded = m
		rc.URL = "redis://" + m.Addr()
		a.log.Warn("REDIS_URL is not set: running on an EMBEDDED in-process Redis. " +
			"This is single-instance DEV MODE: state is lost on exit and other instances cannot share it.")
	}
	// A script that may have run is never sent again (redisconn): a call
	// without an answer is OUTCOME_UNKNOWN, and the client retries with its
	// Idempotency-Key. Contexts bound calls, so /ready's deadline holds even
	// while Redis hangs.
	rdb, err := redisconn.Open(rc)
	if err != nil {
		return err
	}
	a.rdb = rdb
	if err := a.rdb.Ping(ctx).Err(); err != nil {
		return errors.New("connecting to Redis at " + rc.Addr() + ": " + err.Error())
	}
	old, err := keyspace.CheckShards(ctx, a.rdb)
	if err != nil {
		return errors.New("Redis at " + rc.Addr() + ": " + err.Error())
	}
	if len(old) > 0 {
		a.log.Warn("Redis holds keys of the older 16-shard layout, which this build does not read: "+
			"sessions and audit events there are not served or persisted", "keys", old)
	}
	// An evicting Redis could drop a running session or unwritten audit
	// events without a word; noeviction turns a full Redis into refused
	// writes instead. CONFIG may be disabled (managed Redis): then say nothing.
	if p, err := a.rdb.ConfigGet(ctx, "maxmemory-policy").Result(); err == nil {
		if v := p["maxmemory-policy"]; v != "" && v != "noeviction" {
			a.log.Warn("Redis maxmemory-policy is "+v+", not noeviction: when Redis is full it may evict "+
				"sessions or audit events silently", "redis", rc.Addr())
		}
	}
	return nil
}

// readyTimeout bounds /ready's checks together (README "Health"): a hung
// Redis makes it answer 503 by then, not hang the load balancer's probe.
const readyTimeout = time.Second

func (a *app) routes() {
	r := router.New()
	r.PanicHandler = a.errs.Panic
	any := handlers.RouteOpts{}
	r.NotFound = a.mw.Wrap("ANY", "unmatched", any, a.errs.NotFound)
	r.MethodNotAllowed = a.mw.Wrap("ANY", "unmatched", any, a.errs.MethodNotAllowed)
	if a.mw.CORS != nil {
		r.GlobalOPTIONS = a.mw.CORS.Preflight
	}
	a.router = r
	// A request fasthttp could not read (body over the limit, malformed)
	// gets the request id, CORS headers, metrics and log line of any other.
	a.badRequest = a.mw.Wrap("ANY", "unreadable", handlers.RouteOpts{NoLimit: true}, a.errs.BadRequest)

	// Right: what each route needs with AUTH_MODE=jwt (auth.Open: nothing).
	s := handlers.NewSessions(a.bg, a.engine, a.errs, a.httpSet)
	if a.cfg.RateLimitEnabled {
		s.SwitchBudget = ratelimit.Limit{Max: a.cfg.RateLimitSwitch, Window: a.cfg.RateLimitSwWindow}
	}
	create := handlers.RouteOpts{Right: auth.Create}
	control := handlers.RouteOpts{Right: auth.Control}
	read := handlers.RouteOpts{Right: auth.Read}
	a.handle("POST", "/v1/sessions", create, s.Create)
	a.handle("GET", "/v1/sessions/{id}", read, s.Get)
	a.handle("DELETE", "/v1/sessions/{id}", control, s.Delete)
	a.handle("POST", "/v1/sessions/{id}/start", control, s.Start())
	// On a single Redis the switch charges the caller's budget itself; a
	// Cluster keeps that budget's key in a slot of its own, so the
	// middleware charges it first.
	a.handle("POST", "/v1/sessions/{id}/switch",
		handlers.RouteOpts{Right: auth.Switch, CallerInCall: len(a.cfg.RedisClusterAddrs) == 0}, s.Switch)
	a.handle("POST", "/v1/sessions/{id}/pause", control, s.Pause())
	a.handle("POST", "/v1/sessions/{id}/resume", control, s.Resume())
	a.handle("POST", "/v1/sessions/{id}/complete", control, s.Complete())

	exempt := handlers.RouteOpts{NoLimit: true}
	quiet := handlers.RouteOpts{NoLimit: true, Quiet: true}
	a.handle("GET", "/v1/time", exempt, handlers.Time(a.clock))
	a.handle("GET", "/health", quiet, handlers.Health)
	a.handle("GET", "/ready", quiet, handlers.Ready(&a.ready, readyTimeout, a.cfg.DebugErrors))
	a.handle("GET", "/metrics", quiet, handlers.Metrics(&a.metricSets))
	a.handle("GET", "/openapi.json", quiet, docs.OpenAPI)

	// The SDK bundle and the demo, embedded (webassets): no Redis, no limit.
	a.handle("GET", "/sdk/synckairos.js", exempt, webassets.SDK)
	a.handle("GET", "/demo/", exempt, webassets.Demo(a.errs.NotFound))
	a.handle("GET", "/demo/{file}", exempt, webassets.Demo(a.errs.NotFound))
}

// unreadable is the server's ErrorHandler: fasthttp calls it with the
// read error, outside the router.
func (a *app) unreadable(ctx *fasthttp.RequestCtx, err error) {
	ctx.SetUserValue(handlers.ReadErrorKey, err)
	a.badRequest(ctx)
}

// wire plugs in the audit rule, the WebSocket relay, the expiry scheduler and persistence. Each adds its routes,
// /ready check, metrics and shutdown step through the extension points
// listed on app.
func (a *app) wire(ctx context.Context) error {
	if err := a.wireAudit(ctx); err != nil { // first: the cap must be right before any script runs
		return err
	}
	if err := a.wireRelay(ctx); err != nil {
		return err
	}
	if err := a.wireExpiry(ctx); err != nil {
		return err
	}
	if err := a.wirePersist(ctx); err != nil {
		return err
	}
	a.handle("GET", "/v1/sessions/{id}/events", handlers.RouteOpts{Right: auth.Read}, handlers.NewEvents(a.bg, a.events, a.errs).List)
	return nil
}

// serve answers HTTP until ctx is done, then shuts down gracefully: stop
// accepting, finish in-flight requests, run the shutdown steps in order,
// close Redis. All of it within cfg.ShutdownWait.
func (a *app) serve(ctx context.Context, ln net.Listener) error {
	a.server = &fasthttp.Server{
		Handler:               a.router.Handler,
		Name:                  "synckairos",
		MaxRequestBodySize:    a.cfg.BodyLimit,
		ErrorHandler:          a.unreadable,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           60 * time.Second,
		CloseOnShutdown:       true,
		NoDefaultServerHeader: true,
		// No route reads forms: a multipart body gets the 415 of any
		// non-JSON body instead of being parsed first.
		DisablePreParseMultipartForm: true,
		Logger:                       newFasthttpLogger(a.log, time.Now),
	}
	served := make(chan error, 1)
	go func() { served <- a.server.Serve(ln) }()
	a.log.Info("listening", "addr", ln.Addr().String(), "redis_embedded", a.embedded != nil,
		"persistence", a.cfg.DatabaseURL != "", "rate_limits", a.cfg.RateLimitEnabled)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down: no new connections, finishing in-flight requests")
	dctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownWait)
	defer cancel()
	var errs []error
	if err := a.server.ShutdownWithContext(dctx); err != nil {
		errs = append(errs, errors.New("http: "+err.Error()))
	}
	for _, h := range a.shutdown {
		a.log.Info("shutdown step", "step", h.name)
		if err := h.fn(dctx); err != nil {
			errs = append(errs, errors.New(h.name+": "+err.Error()))
		}
	}
	a.close()
	err := errors.Join(errs...)
	if err != nil {
		a.log.Error("shutdown finished with errors", "err", err)
	} else {
		a.log.Info("shutdown complete")
	}
	return err
}

// close releases Redis (and the embedded server); safe on a partial app.
func (a *app) close() {
	a.stopBg()
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
	if a.embedded != nil {
		a.embedded.Close()
	}
}

// listen binds host (HOST; "" is every interface) and port.
func listen(host string, port int) (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
}

// fasthttpLogPerSecond bounds fasthttp's own log lines: it writes one per
// connection that sent a malformed request, so a flood of them must not
// fill the disk.
const fasthttpLogPerSecond = 10

// fasthttpLogger sends fasthttp's own messages to slog, at most
// fasthttpLogPerSecond a second. The lines dropped are counted, and the
// count is logged before the next line let through.
type fasthttpLogger struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	window  time.Time // start of the current second
	n       int       // lines let through in it
	dropped int       // lines dropped since the last one let through
}

func newFasthttpLogger(log *slog.Logger, now func() time.Time) *fasthttpLogger {
	return &fasthttpLogger{log: log, now: now}
}

func (l *fasthttpLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	if now := l.now(); now.Sub(l.window) >= time.Second {
		l.window, l.n = now, 0
	}
	if l.n >= fasthttpLogPerSecond {
		l.dropped++
		l.mu.Unlock()
		return
	}
	l.n++
	dropped := l.dropped
	l.dropped = 0
	l.mu.Unlock()
	if dropped > 0 {
		l.log.Warn("fasthttp: warnings dropped by the log rate limit", "dropped", dropped,
			"limit_per_second", fasthttpLogPerSecond)
	}
	// A request's logger prefixes its URI, which may carry a WebSocket ?token=.
	l.log.Warn("fasthttp: " + handlers.RedactToken(fmt.Sprintf(format, args...)))
}
