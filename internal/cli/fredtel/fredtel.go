// Package fredtel is the fredtel command, the operator side of Fred
// telemetry: migrate, serve, keys, insights, dashboard, simulate and demo.
// Each command's settings are one table of cli.Setting (flag, environment
// variable, default, parse and check, secret) its help is printed from.
package fredtel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/fredcode/fredtel/dashboard"
	"github.com/fredcode/fredtel/internal/cli"
)

// Run runs fredtel with args (without the program name) and returns its
// exit code: 0 done, 1 failed, 2 bad usage.
func Run(ctx context.Context, args []string, env cli.Getenv, stdout, stderr io.Writer) int {
	cmds := map[string]cli.Command{
		"migrate":   {Summary: "create or upgrade the telemetry tables of a database", Run: runMigrate},
		"serve":     {Summary: "run the ingest API", Run: runServe},
		"keys":      {Summary: "create, list and revoke API keys: keys create --user ID | list | revoke PREFIX", Run: runKeys},
		"insights":  {Summary: "answer the six questions for a time window", Run: runInsights},
		"simulate":  {Summary: "drive a synthetic fleet through the real client", Run: runSimulate},
		"dashboard": {Summary: "serve the insights as web pages, down to one session's timeline", Run: runDashboard},
		"demo":      {Summary: "collector, fleet, insights and dashboard in one go", Run: runDemo},
	}
	return cli.Dispatch(ctx, "fredtel", "fredtel: the operator side of Fred telemetry.", cmds, args, env, stdout, stderr)
}

// The settings several commands share.

// dbSetting is --db; its default is the embedded SQLite file in the data
// folder.
func dbSetting(p *string, env cli.Getenv) cli.Setting {
	*p = "sqlite:" + filepath.Join(dataDir(env), "fredtel.db")
	return cli.Setting{Flag: "db", Env: "FREDTEL_DB_URL", Value: cli.String(p),
		Usage: "database `URL`: postgres://…, postgresql://…, sqlite:PATH"}
}

// dataDir is where fredtel keeps its embedded database by default:
// FREDTEL_DATA_DIR, else the per-user data folder of the OS.
func dataDir(env cli.Getenv) string {
	if d := env("FREDTEL_DATA_DIR"); d != "" {
		return d
	}
	if d := env("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "fredtel")
	}
	home := env("HOME")
	switch runtime.GOOS {
	case "darwin":
		return filepath.Join(home, "Library", "Application Support", "fredtel")
	case "windows":
		if d := env("LocalAppData"); d != "" {
			return filepath.Join(d, "fredtel")
		}
	}
	if home == "" {
		return ".fredtel"
	}
	return filepath.Join(home, ".local", "share", "fredtel")
}

// tokenSetting is --dashboard-token. The environment variable is the
// better place: a flag's value is visible to every user of the machine in
// the process list.
func tokenSetting(p *string) cli.Setting {
	return cli.Setting{Flag: "dashboard-token", Env: "FREDTEL_DASHBOARD_TOKEN", Secret: true,
		Usage: "admin `TOKEN` that opens the dashboard, at least 16 characters (the variable is better: a flag shows in the process list); without one the dashboard is served only on a loopback address",
		Value: cli.Func(p, func(s string) (string, error) {
			if len(s) < dashboard.MinTokenLen {
				return "", fmt.Errorf("the dashboard token is %d characters: use at least %d (e.g. openssl rand -hex 16)", len(s), dashboard.MinTokenLen)
			}
			return s, nil
		})}
}

// logSetting is --log-format; def is the command's default.
func logSetting(p *string, def string) cli.Setting {
	*p = def
	return cli.Setting{Flag: "log-format", Env: "FREDTEL_LOG_FORMAT", Value: cli.OneOf(p, "json", "text"),
		Usage: "log lines on stderr: json or text"}
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

// seedSetting is --seed: the same seed, the same fleet.
func seedSetting(p *uint64) cli.Setting {
	*p = 1
	return cli.Setting{Flag: "seed", Usage: "the fleet's `SEED`: the same seed makes the same fleet",
		Value: cli.Func(p, func(s string) (uint64, error) {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return 0, errors.New("want a whole number")
			}
			return n, nil
		})}
}
