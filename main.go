// Command synckairos serves shared clocks: every transition is one atomic
// Redis script, and every client sees the same time.
//
// Usage: synckairos [healthcheck | migrate | token ...]. Configuration comes from the environment
// (config.go, README.md "Configuration").
package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		slog.Error("synckairos stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, out)
	if len(args) > 0 {
		switch args[0] {
		case "healthcheck":
			return healthcheck(cfg.Host, cfg.Port)
		case "migrate":
			return migrate(ctx, cfg, log)
		case "token":
			return mintToken(args[1:], cfg.Auth, out)
		default:
			return errors.New("unknown command " + args[0] + " (want no argument, healthcheck, migrate or token)")
		}
	}
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := listen(cfg.Host, cfg.Port)
	if err != nil {
		a.close()
		return err
	}
	return a.serve(ctx, ln)
}

func newLogger(cfg Config, out io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(out, opts))
	}
	return slog.New(slog.NewJSONHandler(out, opts))
}

// healthcheck asks the local server's /health; the Docker HEALTHCHECK runs
// it because the image has no shell or curl. It calls the HOST the server
// binds, or loopback when that is every interface.
func healthcheck(host string, port int) error {
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	c := &http.Client{Timeout: 3 * time.Second}
	res, err := c.Get("http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/health")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return errors.New("health: " + res.Status)
	}
	return nil
}
