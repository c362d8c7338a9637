package fredtel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/fredcode/fredtel/dashboard"
	"github.com/fredcode/fredtel/insights"
	"github.com/fredcode/fredtel/internal/cli"
	"github.com/fredcode/fredtel/store"
)

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
			return nil, "", cli.Usagef("%v", err)
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
		say = fmt.Sprintf("dashboard: off on %s: set --dashboard-token or FREDTEL_DASHBOARD_TOKEN to serve it on a non-loopback address", ln.Addr())
	}
	return mux, say, nil
}

func runDashboard(ctx context.Context, args []string, env cli.Getenv, stdout, stderr io.Writer) error {
	var db, token, prices, logFormat string
	addr, tables := "127.0.0.1:8701", insights.TablesCentral
	const help = "Usage: fredtel dashboard [--db URL] [--tables central|self-hosted] [--addr 127.0.0.1:8701] [--prices FILE]\n\n" +
		"Serves the dashboard (the insights as pages, down to one session's timeline) over a database's tables,\n" +
		"without the ingest API: a self-hoster's dsc_* tables with --tables self-hosted. Read-only.\n" +
		"A non-loopback --addr needs a token (--dashboard-token or FREDTEL_DASHBOARD_TOKEN)."
	if err := cli.Parse(env, args, stderr, help,
		dbSetting(&db, env),
		cli.Setting{Flag: "tables", Value: cli.OneOf(&tables, insights.TablesCentral, insights.TablesSelfHosted),
			Usage: "central (telemetry_*: an ingest server's database) or self-hosted (dsc_*: DSC_TELEMETRY_DB_URL's)"},
		cli.Setting{Flag: "addr", Env: "FREDTEL_DASHBOARD_ADDR", Value: cli.String(&addr), Usage: "listen address `HOST:PORT`"},
		tokenSetting(&token),
		cli.Setting{Flag: "prices", Value: cli.String(&prices), Usage: "price table `FILE` (docs/insights.md) to show what problems cost; none: no money shown"},
		logSetting(&logFormat, "text"),
	); err != nil {
		return err
	}
	loc, err := store.ParseURL(db)
	if err != nil {
		return err
	}
	cfg := dashboard.Config{DBURL: db, Tables: tables, Token: token, Logger: newLogger(logFormat, stderr)}
	if prices != "" {
		p, err := insights.LoadPrices(prices)
		if err != nil {
			return err
		}
		cfg.Prices = p
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	defer ln.Close()
	if token == "" && !isLoopback(ln.Addr()) {
		return cli.Usagef("--addr %s is not a loopback address: give a token (--dashboard-token or FREDTEL_DASHBOARD_TOKEN), or listen on 127.0.0.1", addr)
	}
	handler, say, err := withDashboard(nil, ln, cfg)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	fmt.Fprintf(stdout, "fredtel dashboard: listening on http://%s (database %s, %s tables)\n%s\n", ln.Addr(), loc.Masked, tables, say)
	if err := cli.Serve(ctx, hs, ln, 10*time.Second); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "fredtel dashboard: stopped")
	return nil
}
