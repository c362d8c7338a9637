package cli

import (
	"context"
	"io"
)

// Fredtel runs the fredtel command with args (without the program name) and
// returns its exit code: 0 done, 1 failed, 2 bad usage.
func Fredtel(ctx context.Context, args []string, env Getenv, stdout, stderr io.Writer) int {
	cmds := map[string]command{
		"migrate":   {"create or upgrade the telemetry tables of a database", runMigrate},
		"serve":     {"run the ingest API", runServe},
		"keys":      {"create, list and revoke API keys: keys create --user ID | list | revoke PREFIX", runKeys},
		"insights":  {"answer the six questions for a time window", runInsights},
		"simulate":  {"drive a synthetic fleet through the real client", runSimulate},
		"dashboard": {"serve the insights as web pages, down to one session's timeline", runDashboard},
		"demo":      {"collector, fleet, insights and dashboard in one go", runDemo},
	}
	return dispatch(ctx, "fredtel", "fredtel: the operator side of Fred telemetry.", cmds, args, env, stdout, stderr)
}
