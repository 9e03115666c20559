package main

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/synckairos/synckairos/redisclock"
	"github.com/synckairos/synckairos/wsrelay"
)

// loadWSConfig reads the relay's variables:
//
//	WS_ORIGINS                 allowed Origins, comma-separated (default: CORS_ORIGINS)
//	WS_MAX_CONNECTIONS         per instance (10000; 0 = no cap)
//	WS_MAX_CONNECTIONS_PER_IP  per client IP (100; 0 = no cap; TRUST_PROXY applies);
//	                           a handshake over either cap gets HTTP 503
//	WS_QUEUE_SIZE              messages queued per client before it is dropped as slow (256)
//	WS_PING_INTERVAL           protocol ping period; one missed pong drops the client (5s)
//	WS_WRITE_TIMEOUT           per-frame write deadline (10s)
//	WS_MAX_MESSAGE_BYTES       largest client frame (4096)
//	WS_WORKERS                 fan-out workers (0 = 2 x GOMAXPROCS)
func loadWSConfig(getenv func(string) string, corsOrigins []string, trustProxy bool) (wsrelay.Config, error) {
	var errs []error
	num := func(name string, def int64) int64 {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, errors.New(name+": want a non-negative integer, got "+strconv.Quote(v)))
			return def
		}
		return n
	}
	dur := func(name string, def time.Duration) time.Duration {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, errors.New(name+": want a positive duration such as 5s, got "+strconv.Quote(v)))
			return def
		}
		return d
	}
	c := wsrelay.Config{
		Origins:         corsOrigins,
		MaxConns:        int(num("WS_MAX_CONNECTIONS", 10000)),
		MaxConnsPerIP:   int(num("WS_MAX_CONNECTIONS_PER_IP", 100)),
		TrustProxy:      trustProxy,
		QueueSize:       int(num("WS_QUEUE_SIZE", 256)),
		Workers:         int(num("WS_WORKERS", 0)),
		PingInterval:    dur("WS_PING_INTERVAL", 5*time.Second),
		WriteTimeout:    dur("WS_WRITE_TIMEOUT", 10*time.Second),
		MaxMessageBytes: num("WS_MAX_MESSAGE_BYTES", 4096),
	}
	if v := strings.TrimSpace(getenv("WS_ORIGINS")); v != "" {
		c.Origins = splitOrigins(v)
	}
	if c.QueueSize == 0 {
		errs = append(errs, errors.New("WS_QUEUE_SIZE must be > 0"))
	}
	return c, errors.Join(errs...)
}

// wireRelay mounts the WebSocket relay at /ws (a raw route: it upgrades the
// connection itself, outside the HTTP middleware) and closes its clients
// with 1001 first at shutdown.
func (a *app) wireRelay(context.Context) error {
	set := metrics.NewSet()
	cfg := a.cfg.WS
	if a.auth != nil {
		cfg.Auth = a.auth
	}
	relay := wsrelay.New(cfg, a.rdb, a.engine, a.engine.Assembler(), clockMS{a.clock}, a.log, set)
	a.addMetrics(set)
	a.router.GET("/ws", relay.Handler)
	a.onShutdown("close WebSockets", relay.Shutdown)
	return nil
}

// clockMS adapts the µs Redis clock to the relay's ms one.
type clockMS struct{ c *redisclock.Clock }

func (c clockMS) NowMS() int64 { return c.c.Now() / 1000 }
