// Command fred holds the user-facing telemetry controls of the Fred CLI:
// login, logout, telemetry on|off|status|show and --no-telemetry.
package main

import (
	"context"
	"os"

	"github.com/fredcode/fredtel/internal/cli"
)

func main() {
	os.Exit(cli.Fred(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
