package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/fredcode/fredtel/dashboard"
	"github.com/fredcode/fredtel/insights"
	"github.com/fredcode/fredtel/store"
)

// tokenEnv is where the dashboard token is best given: a flag's value is
// visible to every user of the machine in the process list.
const tokenEnv = "FREDTEL_DASHBOARD_TOKEN"

// dashboardTokenFlag declares --dashboard-token. Its default is not the
// environment's value: flag usage prints defaults, and the token must not
// be printed.
func dashboardTokenFlag(fs *flag.FlagSet) *string {
	return fs.String("dashboard-token", "", "admin `TOKEN` that opens the dashboard, at least 16 characters (env "+tokenEnv+", preferred: a flag shows in the process list); "+
		"without one the dashboard is served only on a loopback address")
}

func dashboardToken(flagValue string, env Getenv) string {
	if flagValue != "" {
		return flagValue
	}
	return env(tokenEnv)
}

// isLoopback reports whether a listener's address is on the loopback
// interface.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// withDashboard returns api with /dashboard/ routed to a dashboard over the
// tables of cfg (api nil: the dashboard alone, / redirecting to it), and
// the line that says where the dashboard is, or why it is off.
func withDashboard(api http.Handler, ln net.Listener, cfg dashboard.Config) (http.Handler, string, error) {
	cfg.Loopback = isLoopback(ln.Addr())
	dh, err := dashboard.New(cfg)
	if err != nil {
		if errors.Is(err, dashboard.ErrConfig) {
			return nil, "", &usageError{msg: err.Error()}
		}
		return nil, "", err
	}
	mux := http.NewServeMux()
	mux.Handle("/dashboard/", dh)
	mux.Handle("/dashboard", dh)
	if api != nil {
		mux.Handle("/", api)
	} else {
		mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/dashboard/", http.StatusSeeOther)
		})
	}
	var say string
	switch {
	case cfg.Token != "":
		say = fmt.Sprintf("dashboard: http://%s/dashboard/ (log in with the dashboard token)", ln.Addr())
	case cfg.Loopback:
		say = fmt.Sprintf("dashboard: http://%s/dashboard/ (loopback only, no token)", ln.Addr())
	default:
		say = fmt.Sprintf("dashboard: off on %s: set --dashboard-token or %s to serve it on a non-loopback address", ln.Addr(), tokenEnv)
	}
	return mux, say, nil
}

func runDashboard(ctx context.Context, args []string, env Getenv, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fredtel dashboard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", defaultDBURL(env), "database `URL`: postgres://…, postgresql://…, sqlite:PATH (env FREDTEL_DB_URL)")
	tables := fs.String("tables", "central", "central (telemetry_*: an ingest server's database) or self-hosted (dsc_*: DSC_TELEMETRY_DB_URL's)")
	addr := fs.String("addr", envDefault(env, "FREDTEL_DASHBOARD_ADDR", "127.0.0.1:8701"), "listen address `HOST:PORT` (env FREDTEL_DASHBOARD_ADDR)")
	token := dashboardTokenFlag(fs)
	prices := fs.String("prices", "", "price table `FILE` (docs/insights.md) to show what problems cost; none: no money shown")
	logFormat := fs.String("log-format", envDefault(env, "FREDTEL_LOG_FORMAT", "text"), "json or text (env FREDTEL_LOG_FORMAT)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: fredtel dashboard [--db URL] [--tables central|self-hosted] [--addr 127.0.0.1:8701] [--prices FILE]\n\n"+
			"Serves the dashboard (the insights as pages, down to one session's timeline) over a database's tables,\n"+
			"without the ingest API: a self-hoster's dsc_* tables with --tables self-hosted. Read-only.\n"+
			"A non-loopback --addr needs a token (--dashboard-token or "+tokenEnv+").\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *tables != insights.TablesCentral && *tables != insights.TablesSelfHosted {
		return &usageError{msg: fmt.Sprintf("--tables %q: want central or self-hosted", *tables)}
	}
	var h slog.Handler
	switch *logFormat {
	case "json":
		h = slog.NewJSONHandler(stderr, nil)
	case "text":
		h = slog.NewTextHandler(stderr, nil)
	default:
		return &usageError{msg: fmt.Sprintf("--log-format %q: want json or text", *logFormat)}
	}
	tok := dashboardToken(*token, env)
	if tok != "" && len(tok) < dashboard.MinTokenLen {
		return &usageError{msg: fmt.Sprintf("the dashboard token is %d characters: use at least %d (e.g. openssl rand -hex 16)", len(tok), dashboard.MinTokenLen)}
	}
	loc, err := store.ParseURL(*db)
	if err != nil {
		return err
	}
	cfg := dashboard.Config{DBURL: *db, Tables: *tables, Token: tok, Logger: slog.New(h)}
	if *prices != "" {
		p, err := insights.LoadPrices(*prices)
		if err != nil {
			return err
		}
		cfg.Prices = p
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	defer ln.Close()
	if tok == "" && !isLoopback(ln.Addr()) {
		return &usageError{msg: fmt.Sprintf("--addr %s is not a loopback address: give a token (--dashboard-token or %s), or listen on 127.0.0.1", *addr, tokenEnv)}
	}
	handler, say, err := withDashboard(nil, ln, cfg)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	fmt.Fprintf(stdout, "fredtel dashboard: listening on http://%s (database %s, %s tables)\n%s\n", ln.Addr(), loc.Masked, *tables, say)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	<-errc
	fmt.Fprintln(stdout, "fredtel dashboard: stopped")
	return nil
}
