// Command synckairos serves shared clocks: every transition is one atomic
// Redis script, and every client sees the same time.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv); err != nil {
		slog.Error("synckairos stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string) error {
	_ = ctx
	_ = args
	_ = getenv
	fmt.Println("synckairos: HTTP server not built yet")
	return nil
}
