package cli

import (
	"context"
	"io"
)

// Fred runs the fred command's telemetry controls with args (without the
// program name) and returns its exit code.
func Fred(ctx context.Context, args []string, env Getenv, stdout, stderr io.Writer) int {
	cmds := map[string]command{
		"telemetry": {"telemetry on|off|status|show (issue 3)", notYet(3)},
		"login":     {"store an API key: fred login [--key KEY] (issue 3)", notYet(3)},
		"logout":    {"forget the stored API key (issue 3)", notYet(3)},
	}
	return dispatch(ctx, "fred", "fred: the telemetry controls of the Fred CLI.", cmds, args, env, stdout, stderr)
}
