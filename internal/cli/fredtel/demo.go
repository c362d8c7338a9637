package fredtel

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/fredcode/fredtel/dashboard"
	"github.com/fredcode/fredtel/insights"
	"github.com/fredcode/fredtel/internal/cli"
	"github.com/fredcode/fredtel/internal/sim"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/server"
	"github.com/fredcode/fredtel/store"
)

// demoWindow is the window of the demo's report: the insights' default.
const demoWindow = 7 * 24 * time.Hour

func runDemo(ctx context.Context, args []string, env cli.Getenv, stdout, stderr io.Writer) error {
	sessions, users, addr, exit, folder := 300, 12, "127.0.0.1:0", false, ""
	var seed uint64
	const help = "Usage: fredtel demo [--exit] [--sessions N] [--users N] [--seed S] [--addr HOST:PORT] [--dir FOLDER]\n\n" +
		"Everything in one command, nothing to install or configure: the ingest API on the embedded SQLite store\n" +
		"in a temporary folder, on a free loopback port; API keys for a few users; a simulated fleet of sessions\n" +
		"recorded through the real client library; the insights report. Then it keeps serving the API and the\n" +
		"dashboard (/dashboard/) until Ctrl-C."
	if err := cli.Parse(env, args, stderr, help,
		cli.Setting{Flag: "sessions", Value: cli.Int(&sessions, 1, 100_000), Usage: "sessions the simulated fleet records"},
		cli.Setting{Flag: "users", Value: cli.Int(&users, 1, 1000), Usage: "simulated users, one API key each"},
		seedSetting(&seed),
		cli.Setting{Flag: "addr", Value: cli.String(&addr), Usage: "listen address `HOST:PORT` of the ingest API (:0 picks a free port)"},
		cli.Setting{Flag: "exit", Value: cli.Bool(&exit), Usage: "stop after the report instead of serving until Ctrl-C"},
		cli.Setting{Flag: "dir", Value: cli.String(&folder), Usage: "keep the database and the server log in this `FOLDER` (default a temporary folder, removed at exit)"},
	); err != nil {
		return err
	}

	if folder == "" {
		tmp, err := os.MkdirTemp("", "fredtel-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		folder = tmp
	} else if err := os.MkdirAll(folder, 0o700); err != nil {
		return err
	}
	dbURL := "sqlite:" + filepath.Join(folder, "central.db")
	st, err := store.Open(ctx, dbURL, store.Options{Set: schema.CentralSet, Migrate: true})
	if err != nil {
		return err
	}
	defer st.Close()
	logFile, err := os.OpenFile(filepath.Join(folder, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	// The fleet is the only client and runs as fast as it can: no rate
	// limit worth the name.
	log := slog.New(slog.NewTextHandler(logFile, nil))
	srv, err := server.New(server.Config{Rate: 1e6, Burst: 1e6, Logger: log}, st)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--addr %s: %w", addr, err)
	}
	url := "http://" + ln.Addr().String()
	// The dashboard, as fredtel serve mounts it: without a token, on a
	// loopback address only.
	handler, dashSay, err := withDashboard(srv, ln, dashboard.Config{DBURL: dbURL, Tables: insights.TablesCentral, IngestURL: url, Logger: log})
	if err != nil {
		ln.Close()
		return err
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
		<-served
	}()
	fmt.Fprintf(stdout, "fredtel demo: ingest API on %s, embedded database %s (server log: %s)\n",
		url, filepath.Join(folder, "central.db"), filepath.Join(folder, "server.log"))

	keys, err := sim.CreateKeysIn(ctx, st, users)
	if err != nil {
		return err
	}
	bar := newProgress(stderr, sessions, "recording sessions")
	start := time.Now()
	tr, err := sim.Run(ctx, sim.Config{Sessions: sessions, Seed: seed, Rate: -1, TempDir: folder, Progress: bar.add},
		sim.Target{APIURL: url, Keys: keys})
	bar.finish()
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "fredtel demo: stopped")
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fredtel demo: %d sessions of %d users (seed %d) recorded through the client library and sent to the API in %.1fs: %d turns, %d tool calls, %d events\n",
		tr.Totals.Sessions, len(tr.Users), seed, time.Since(start).Seconds(), tr.Totals.Turns, tr.Totals.ToolCalls, tr.Totals.Events)
	fmt.Fprintf(stdout, "fredtel demo: injected %d stuck flash sessions, %d retry storms, %d tool loops, %d dead commands: the report should find them\n\n",
		len(tr.Stuck.Sessions), len(tr.RetryStorms.StormSessions), len(tr.ToolLoops.Loops), len(tr.Commands.Unused))

	now := time.Now()
	rep, err := insights.Compute(ctx, dbURL, insights.Options{Tables: insights.TablesCentral, From: now.Add(-demoWindow), To: now.Add(time.Minute)})
	if err != nil {
		return err
	}
	if err := rep.WriteText(stdout); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if exit {
		fmt.Fprintf(stdout, "fredtel demo: done (--exit)\n")
		return nil
	}
	fmt.Fprintf(stdout, "fredtel demo: try `fredtel insights --db %s --format json` in another terminal; send your own sessions with FRED_API_URL=%s\n", dbURL, url)
	fmt.Fprintf(stdout, "fredtel demo: %s\n", dashSay)
	fmt.Fprintf(stdout, "fredtel demo: serving %s until Ctrl-C; the dashboard: %s/dashboard/\n", url, url)
	select {
	case <-ctx.Done():
		fmt.Fprintln(stderr, "fredtel demo: stopped")
		return nil
	case err := <-served:
		served <- err // for the deferred shutdown
		return fmt.Errorf("the ingest API stopped: %w", err)
	}
}
