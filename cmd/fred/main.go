// Command fred holds the user-facing telemetry controls of the Fred CLI:
// login, logout, telemetry on|off|status|show|replay, --no-telemetry, a
// stand-in agent loop and the OTLP relay. See internal/cli/fred.
package main

import (
	"context"
	"os"

	"github.com/fredcode/fredtel/internal/cli/fred"
)

func main() {
	os.Exit(fred.Run(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}
