package main

import (
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/synckairos/synckairos/auth"
	"github.com/synckairos/synckairos/engine"
	"github.com/synckairos/synckairos/envconf"
	"github.com/synckairos/synckairos/wsrelay"
)

// Config is everything the service reads from the environment. README.md
// ("Configuration") documents each variable; defaults suit `make run`.
type Config struct {
	Port     int    // PORT
	RedisURL string // REDIS_URL; "" (and no REDIS_CLUSTER_ADDRS) starts an embedded dev-mode Redis
	// REDIS_CLUSTER_ADDRS: seed host:port list of a Redis Cluster; REDIS_URL
	// then gives only the credentials, TLS and options (redisconn)
	RedisClusterAddrs []string
	// REDIS_TIMEOUT: how long a Redis call may wait for its answer; a
	// transition past it answers 503 OUTCOME_UNKNOWN
	RedisTimeout time.Duration
	// IDEMPOTENCY_TTL: how long a reply stays kept under its Idempotency-Key
	IdempotencyTTL time.Duration
	DatabaseURL    string // DATABASE_URL; "" turns persistence off
	// PERSIST_WORKER=false: this instance serves but does not copy events to PostgreSQL
	PersistWorker bool
	PersistRetry  time.Duration // PERSIST_RETRY: between migration attempts while PostgreSQL is unreachable
	// AUDIT=off: record no audit events (set it on every instance); the
	// default, auto, follows the audit rule (auditwire.go)
	AuditOff     bool
	AuditRefresh time.Duration // AUDIT_REFRESH: how often the audit flag is re-read or re-written

	CORSOrigins []string // CORS_ORIGINS, comma-separated; "*": any origin, without credentials
	// DEBUG_ERRORS=true: 500 bodies and /ready show the internal cause
	// (addresses, users, driver messages). Off by default, and forced off by
	// NODE_ENV=production or PRODUCTION=true.
	DebugErrors bool
	Host        string // HOST: bind address; "" is every interface

	LogLevel    slog.Level // LOG_LEVEL: debug|info|warn|error
	LogFormat   string     // LOG_FORMAT: json|text
	LogRequests bool       // LOG_REQUESTS: one line per request (5xx are always logged)

	RateLimitEnabled  bool          // RATE_LIMIT_ENABLED
	RateLimitIP       int64         // RATE_LIMIT_IP_MAX requests per RATE_LIMIT_IP_WINDOW per client IP
	RateLimitIPWindow time.Duration // RATE_LIMIT_IP_WINDOW
	RateLimitSwitch   int64         // RATE_LIMIT_SWITCH_MAX switches per RATE_LIMIT_SWITCH_WINDOW per session
	RateLimitSwWindow time.Duration // RATE_LIMIT_SWITCH_WINDOW
	TrustProxy        bool          // TRUST_PROXY: take the client IP from X-Forwarded-For

	// EVENT_STREAM_MAX: per-shard audit stream cap this instance starts
	// with; 0 with AUDIT=off, and without DATABASE_URL until the audit flag says otherwise
	EventStreamMax int64
	StateCacheMax  int           // STATE_CACHE_MAX: large-session states cached per instance
	BodyLimit      int           // BODY_LIMIT_BYTES
	ClockSync      time.Duration // CLOCK_SYNC_INTERVAL: how often /v1/time re-reads Redis TIME
	ShutdownWait   time.Duration // SHUTDOWN_TIMEOUT

	WS     wsrelay.Config // WS_*: the WebSocket relay (wsrelaywire.go)
	Expiry ExpiryConfig   // EXPIRY_*: the expiry scheduler (expirywire.go)
	Auth   auth.Config    // AUTH_*: token verification (authwire.go)
}

// loadConfig reads the environment through getenv, so tests pass their own.
// Every component's variables go through one envconf.Reader; errs holds the
// checks that look at more than one value.
func loadConfig(getenv func(string) string) (Config, error) {
	e := envconf.New(getenv)
	str, integer, boolean, duration := e.Str, e.Int, e.Bool, e.Duration
	var errs []error

	c := Config{
		Port:              int(integer("PORT", 3000)),
		RedisURL:          str("REDIS_URL", ""),
		RedisTimeout:      duration("REDIS_TIMEOUT", 3*time.Second),
		IdempotencyTTL:    duration("IDEMPOTENCY_TTL", engine.DefaultIdempotencyTTL),
		DatabaseURL:       str("DATABASE_URL", ""),
		PersistWorker:     boolean("PERSIST_WORKER", true),
		PersistRetry:      duration("PERSIST_RETRY", 5*time.Second),
		AuditRefresh:      duration("AUDIT_REFRESH", 5*time.Second),
		Host:              str("HOST", ""),
		LogFormat:         str("LOG_FORMAT", "json"),
		LogRequests:       boolean("LOG_REQUESTS", true),
		RateLimitEnabled:  boolean("RATE_LIMIT_ENABLED", true),
		RateLimitIP:       integer("RATE_LIMIT_IP_MAX", 100),
		RateLimitIPWindow: duration("RATE_LIMIT_IP_WINDOW", time.Minute),
		RateLimitSwitch:   integer("RATE_LIMIT_SWITCH_MAX", 10),
		RateLimitSwWindow: duration("RATE_LIMIT_SWITCH_WINDOW", time.Second),
		TrustProxy:        boolean("TRUST_PROXY", false),
		EventStreamMax:    integer("EVENT_STREAM_MAX", 100_000),
		StateCacheMax:     int(integer("STATE_CACHE_MAX", 10_000)),
		BodyLimit:         int(integer("BODY_LIMIT_BYTES", 1<<20)),
		ClockSync:         duration("CLOCK_SYNC_INTERVAL", time.Second),
		ShutdownWait:      duration("SHUTDOWN_TIMEOUT", 15*time.Second),
	}
	c.RedisClusterAddrs = e.List("REDIS_CLUSTER_ADDRS", nil)
	c.CORSOrigins = splitOrigins(e.List("CORS_ORIGINS", []string{"*"}))
	production := str("NODE_ENV", "") == "production" || boolean("PRODUCTION", false)
	c.DebugErrors = boolean("DEBUG_ERRORS", false) && !production
	if err := c.LogLevel.UnmarshalText([]byte(str("LOG_LEVEL", "info"))); err != nil {
		errs = append(errs, errors.New("LOG_LEVEL: "+err.Error()))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, errors.New("LOG_FORMAT: want json or text, got "+strconv.Quote(c.LogFormat)))
	}
	if _, _, err := net.SplitHostPort(c.Host); err == nil {
		errs = append(errs, errors.New("HOST: want an address without a port (the port is PORT), got "+strconv.Quote(c.Host)))
	}
	if c.Port > 65535 {
		errs = append(errs, errors.New("PORT: out of range"))
	}
	if c.IdempotencyTTL < 10*time.Minute {
		errs = append(errs, errors.New("IDEMPOTENCY_TTL: at least 10m, so that a client retrying after a long outage still gets its reply"))
	}
	if c.RateLimitIP == 0 || c.RateLimitSwitch == 0 {
		errs = append(errs, errors.New("RATE_LIMIT_*_MAX must be > 0; use RATE_LIMIT_ENABLED=false to switch limits off"))
	}
	switch v := strings.ToLower(str("AUDIT", "auto")); v {
	case "auto":
	case "off":
		c.AuditOff = true
	default:
		errs = append(errs, errors.New("AUDIT: want auto or off, got "+strconv.Quote(v)))
	}
	if c.DatabaseURL == "" || c.AuditOff {
		// Without PostgreSQL the audit flag in Redis decides (auditwire.go).
		c.EventStreamMax = 0
	}
	c.WS = loadWSConfig(e, c.CORSOrigins, c.TrustProxy)
	c.Expiry = loadExpiryConfig(e)
	c.Auth = loadAuthConfig(e)
	return c, errors.Join(append([]error{e.Err()}, errs...)...)
}

// splitOrigins cleans an origin list (CORS_ORIGINS, WS_ORIGINS): a trailing
// slash dropped, entries left empty skipped.
func splitOrigins(list []string) []string {
	var out []string
	for _, o := range list {
		if o = strings.TrimRight(o, "/"); o != "" {
			out = append(out, o)
		}
	}
	return out
}
