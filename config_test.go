package main

import (
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/synckairos/synckairos/auth"
	"github.com/synckairos/synckairos/engine"
	"github.com/synckairos/synckairos/wsrelay"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestConfigDefaults pins every default README's Configuration table gives.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	got, err := loadConfig(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Port: 3000, RedisTimeout: 3 * time.Second, IdempotencyTTL: engine.DefaultIdempotencyTTL,
		PersistWorker: true, PersistRetry: 5 * time.Second, AuditRefresh: 5 * time.Second, CORSOrigins: []string{"*"},
		LogLevel: slog.LevelInfo, LogFormat: "json", LogRequests: true,
		RateLimitEnabled: true, RateLimitIP: 100, RateLimitIPWindow: time.Minute,
		RateLimitSwitch: 10, RateLimitSwWindow: time.Second,
		EventStreamMax: 0, // no DATABASE_URL: the audit flag decides
		StateCacheMax:  10_000, BodyLimit: 1 << 20, ClockSync: time.Second, ShutdownWait: 15 * time.Second,
		WS: wsrelay.Config{Origins: []string{"*"}, MaxConns: 10000, MaxConnsPerIP: 100, QueueSize: 256,
			PingInterval: 5 * time.Second, WriteTimeout: 10 * time.Second, MaxMessageBytes: 4096},
		Expiry: ExpiryConfig{Enabled: true, Poll: 10 * time.Millisecond},
		Auth:   auth.Config{Mode: "off", Leeway: 5 * time.Second},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
}

// TestConfigValues: set values reach their field, trimmed.
func TestConfigValues(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"PORT": " 8080 ", "REDIS_URL": "redis://r:6379", "REDIS_TIMEOUT": "500ms", "IDEMPOTENCY_TTL": "1h",
		"DATABASE_URL": "postgres://x", "PERSIST_WORKER": "false", "EVENT_STREAM_MAX": "7",
		"CORS_ORIGINS": " https://a.example/ , ,https://b.example", "TRUST_PROXY": "true",
		"LOG_LEVEL": "warn", "LOG_FORMAT": "text", "RATE_LIMIT_ENABLED": "0",
		"WS_MAX_CONNECTIONS": "0", "WS_WORKERS": "3", "WS_PING_INTERVAL": "1s", "WS_MAX_MESSAGE_BYTES": "100",
		"EXPIRY_ENABLED": "false", "EXPIRY_POLL_MS": "250",
	}
	c, err := loadConfig(envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	origins := []string{"https://a.example", "https://b.example"}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"Port", c.Port, 8080}, {"RedisURL", c.RedisURL, "redis://r:6379"}, {"RedisTimeout", c.RedisTimeout, 500 * time.Millisecond},
		{"IdempotencyTTL", c.IdempotencyTTL, time.Hour}, {"PersistWorker", c.PersistWorker, false},
		{"EventStreamMax", c.EventStreamMax, int64(7)}, {"CORSOrigins", c.CORSOrigins, origins},
		{"LogLevel", c.LogLevel, slog.LevelWarn}, {"LogFormat", c.LogFormat, "text"}, {"RateLimitEnabled", c.RateLimitEnabled, false},
		{"WS.Origins", c.WS.Origins, origins}, {"WS.TrustProxy", c.WS.TrustProxy, true}, {"WS.MaxConns", c.WS.MaxConns, 0},
		{"WS.Workers", c.WS.Workers, 3}, {"WS.PingInterval", c.WS.PingInterval, time.Second}, {"WS.MaxMessageBytes", c.WS.MaxMessageBytes, int64(100)},
		{"Expiry", c.Expiry, ExpiryConfig{Enabled: false, Poll: 250 * time.Millisecond}},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
		}
	}
	env["WS_ORIGINS"] = "https://c.example/"
	if c, _ := loadConfig(envOf(env)); !reflect.DeepEqual(c.WS.Origins, []string{"https://c.example"}) {
		t.Errorf("WS_ORIGINS: %v", c.WS.Origins)
	}
}

// TestConfigInvalid: each bad value stops the start with a message naming
// the variable and saying what it wants; several are all reported.
func TestConfigInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"PORT": "x"}, `PORT: want a non-negative integer, got "x"`},
		{map[string]string{"PORT": "-1"}, `PORT: want a non-negative integer, got "-1"`},
		{map[string]string{"PORT": "70000"}, `PORT: out of range`},
		{map[string]string{"REDIS_TIMEOUT": "3"}, `REDIS_TIMEOUT: want a positive duration such as 1m or 500ms, got "3"`},
		{map[string]string{"REDIS_TIMEOUT": "0s"}, `REDIS_TIMEOUT: want a positive duration such as 1m or 500ms, got "0s"`},
		{map[string]string{"LOG_REQUESTS": "maybe"}, `LOG_REQUESTS: want true or false, got "maybe"`},
		{map[string]string{"IDEMPOTENCY_TTL": "5m"}, `IDEMPOTENCY_TTL: at least 10m, so that a client retrying after a long outage still gets its reply`},
		{map[string]string{"RATE_LIMIT_SWITCH_MAX": "0"}, `RATE_LIMIT_*_MAX must be > 0; use RATE_LIMIT_ENABLED=false to switch limits off`},
		{map[string]string{"AUDIT": "Sometimes"}, `AUDIT: want auto or off, got "sometimes"`},
		{map[string]string{"LOG_FORMAT": "xml"}, `LOG_FORMAT: want json or text, got "xml"`},
		{map[string]string{"LOG_LEVEL": "loud"}, `LOG_LEVEL: slog: level string "loud": unknown name`},
		{map[string]string{"HOST": "[::1]:80"}, `HOST: want an address without a port (the port is PORT), got "[::1]:80"`},
		{map[string]string{"WS_MAX_CONNECTIONS": "many"}, `WS_MAX_CONNECTIONS: want a non-negative integer, got "many"`},
		{map[string]string{"WS_WRITE_TIMEOUT": "-1s"}, `WS_WRITE_TIMEOUT: want a positive duration such as 1m or 500ms, got "-1s"`},
		{map[string]string{"WS_QUEUE_SIZE": "0"}, `WS_QUEUE_SIZE: must be > 0`},
		{map[string]string{"EXPIRY_ENABLED": "on"}, `EXPIRY_ENABLED: want true or false, got "on"`},
		{map[string]string{"EXPIRY_POLL_MS": "0"}, `EXPIRY_POLL_MS: want an integer in [1, 60000], got "0"`},
		{map[string]string{"EXPIRY_POLL_MS": "60001"}, `EXPIRY_POLL_MS: want an integer in [1, 60000], got "60001"`},
		{map[string]string{"EXPIRY_POLL_MS": "1s"}, `EXPIRY_POLL_MS: want an integer in [1, 60000], got "1s"`},
		{map[string]string{"PORT": "x", "WS_QUEUE_SIZE": "0", "EXPIRY_POLL_MS": "0", "LOG_FORMAT": "xml"},
			"PORT: want a non-negative integer, got \"x\"\nWS_QUEUE_SIZE: must be > 0\n" +
				"EXPIRY_POLL_MS: want an integer in [1, 60000], got \"0\"\nLOG_FORMAT: want json or text, got \"xml\""},
	}
	for _, tt := range tests {
		_, err := loadConfig(envOf(tt.env))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%v:\n got %v\nwant %s", tt.env, err, tt.want)
		}
	}
	// a bad value falls back to the default, so the message is the only effect
	if c, _ := loadConfig(envOf(map[string]string{"EXPIRY_ENABLED": "on", "WS_QUEUE_SIZE": "x"})); !c.Expiry.Enabled || c.WS.QueueSize != 256 {
		t.Errorf("fallbacks: expiry %v, queue %d", c.Expiry.Enabled, c.WS.QueueSize)
	}
}
