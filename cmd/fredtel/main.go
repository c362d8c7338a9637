// Command fredtel is the operator side of Fred telemetry: migrate, serve,
// keys, insights, dashboard, simulate and demo. See internal/cli/fredtel.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/fredcode/fredtel/internal/cli/fredtel"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := fredtel.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
