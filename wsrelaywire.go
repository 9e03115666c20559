package main

import (
	"context"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/synckairos/synckairos/envconf"
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
func loadWSConfig(e *envconf.Reader, corsOrigins []string, trustProxy bool) wsrelay.Config {
	c := wsrelay.Config{
		Origins:         splitOrigins(e.List("WS_ORIGINS", corsOrigins)),
		MaxConns:        int(e.Int("WS_MAX_CONNECTIONS", 10000)),
		MaxConnsPerIP:   int(e.Int("WS_MAX_CONNECTIONS_PER_IP", 100)),
		TrustProxy:      trustProxy,
		QueueSize:       int(e.Int("WS_QUEUE_SIZE", 256)),
		Workers:         int(e.Int("WS_WORKERS", 0)),
		PingInterval:    e.Duration("WS_PING_INTERVAL", 5*time.Second),
		WriteTimeout:    e.Duration("WS_WRITE_TIMEOUT", 10*time.Second),
		MaxMessageBytes: e.Int("WS_MAX_MESSAGE_BYTES", 4096),
	}
	if c.QueueSize == 0 {
		e.Invalid("WS_QUEUE_SIZE", "must be > 0")
	}
	return c
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
	relay := wsrelay.New(cfg, a.rdb, a.engine, a.engine.Assembler(), a.clock, a.log, set)
	a.addMetrics(set)
	a.router.GET("/ws", relay.Handler)
	a.onShutdown("close WebSockets", relay.Shutdown)
	return nil
}
