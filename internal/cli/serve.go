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
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/fredcode/fredtel/dashboard"
	"github.com/fredcode/fredtel/insights"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/server"
	"github.com/fredcode/fredtel/store"
)

// envDefault returns the environment's value for name, else def.
func envDefault(env Getenv, name, def string) string {
	if v := env(name); v != "" {
		return v
	}
	return def
}

func runServe(ctx context.Context, args []string, env Getenv, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fredtel serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envDefault(env, "FREDTEL_ADDR", "127.0.0.1:8700"), "listen address `HOST:PORT` (env FREDTEL_ADDR)")
	db := fs.String("db", defaultDBURL(env), "database `URL`: postgres://…, postgresql://…, sqlite:PATH (env FREDTEL_DB_URL)")
	migrateDB := fs.String("migrate-db", env("FREDTEL_MIGRATE_DB_URL"), "direct database `URL` for migrations when --db goes through a transaction pooler (env FREDTEL_MIGRATE_DB_URL; default --db)")
	minClient := fs.String("min-client-version", env("FREDTEL_MIN_CLIENT_VERSION"), "refuse clients older than this `VERSION` with 426 (env FREDTEL_MIN_CLIENT_VERSION)")
	rate := fs.Float64("rate", envFloat(env, "FREDTEL_RATE", 20), "requests per second per key before 429 (env FREDTEL_RATE)")
	burst := fs.Int("burst", int(envFloat(env, "FREDTEL_BURST", 40)), "requests a key may send at once (env FREDTEL_BURST)")
	// A few connections, not one per request: batches beyond them wait in
	// arrival order, which keeps the tail latency near the median, while
	// more writers at once only contend inside the database (measured on 2
	// cores: 16 gave p99 335 ms at 46k records/s, 4 gave 210-250 ms at
	// 53-55k).
	pool := fs.Int("pool", int(envFloat(env, "FREDTEL_DB_POOL", 4)), "PostgreSQL connections, so batches written at once; more wait in arrival order. About twice the database's cores (env FREDTEL_DB_POOL)")
	keyTTL := fs.Duration("key-cache-ttl", envDuration(env, "FREDTEL_KEY_CACHE_TTL", 30*time.Second), "how long a key's status is cached; a revoked key is refused within this (env FREDTEL_KEY_CACHE_TTL)")
	writeTimeout := fs.Duration("write-timeout", envDuration(env, "FREDTEL_WRITE_TIMEOUT", 10*time.Second), "longest database write before 503 (env FREDTEL_WRITE_TIMEOUT)")
	versions := fs.String("schema-versions", env("FREDTEL_SCHEMA_VERSIONS"), "wire schema `VERSIONS` accepted, comma-separated (env FREDTEL_SCHEMA_VERSIONS; default every version this build knows); others get 422 and stay in the clients' spools")
	dashToken := dashboardTokenFlag(fs)
	dashPrices := fs.String("dashboard-prices", env("FREDTEL_DASHBOARD_PRICES"), "price table `FILE` (docs/insights.md) the dashboard shows costs with (env FREDTEL_DASHBOARD_PRICES); none: no money shown")
	logFormat := fs.String("log-format", envDefault(env, "FREDTEL_LOG_FORMAT", "json"), "json or text (env FREDTEL_LOG_FORMAT)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: fredtel serve [flags]\n\nRuns the ingest API (POST /v1/batch, GET /v1/whoami, /v1/schema, /healthz, /readyz, /metrics)\n"+
			"and the dashboard at /dashboard/ (with a token, or on a loopback address).\n"+
			"Migrates the database on start; stops gracefully on SIGINT or SIGTERM.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
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
	if *minClient != "" && !schema.PatSemver.Match(*minClient) {
		return &usageError{msg: fmt.Sprintf("--min-client-version %q: want a version such as 1.4.0", *minClient)}
	}
	var accept []int
	if *versions != "" {
		for _, f := range strings.Split(*versions, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || v < 1 || v > schema.Version {
				return &usageError{msg: fmt.Sprintf("--schema-versions: %q is not a schema version this build knows (1 to %d)", strings.TrimSpace(f), schema.Version)}
			}
			accept = append(accept, v)
		}
	}
	log := slog.New(h)
	if env("GOGC") == "" {
		// The live heap of an ingest server is small and its garbage is
		// per-request: the default GOGC collects ~30 times a second under
		// load. 400 trades ~40 MiB of RSS for a sixth of the CPU.
		debug.SetGCPercent(400)
	}
	if env("GOMEMLIMIT") == "" {
		// GOGC 400 lets the heap grow to five times what is live: under
		// a flood of worst-case bodies (each admitted one holds up to 8
		// MiB) that alone would pass 256 MiB. A soft limit makes the
		// collector work harder only when the heap nears it.
		debug.SetMemoryLimit(defaultMemoryLimit)
	}

	mig := *migrateDB
	if mig == "" {
		mig = *db
	}
	ms, err := store.Open(ctx, mig, store.Options{Set: schema.CentralSet, Migrate: true, MaxConns: 1})
	if err != nil {
		return err
	}
	ms.Close()
	st, err := store.Open(ctx, *db, store.Options{Set: schema.CentralSet, MaxConns: int32(*pool)})
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := server.New(server.Config{MinClientVersion: *minClient, Rate: *rate, Burst: *burst, Logger: log,
		KeyCacheTTL: *keyTTL, WriteTimeout: *writeTimeout, Versions: accept}, st)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	dcfg := dashboard.Config{DBURL: *db, Tables: insights.TablesCentral,
		Token: dashboardToken(*dashToken, env), IngestURL: "http://" + ln.Addr().String(), Logger: log}
	if *dashPrices != "" {
		if dcfg.Prices, err = insights.LoadPrices(*dashPrices); err != nil {
			ln.Close()
			return err
		}
	}
	handler, dashSay, err := withDashboard(srv, ln, dcfg)
	if err != nil {
		ln.Close()
		return err
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	log.Info("listening", "addr", ln.Addr().String(), "db", st.Location().Masked)
	fmt.Fprintf(stdout, "fredtel serve: listening on http://%s (database %s)\n%s\n", ln.Addr(), st.Location(), dashSay)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Stop accepting, let the batches in flight commit, then close the pool.
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	fmt.Fprintln(stdout, "fredtel serve: stopped")
	return nil
}

// defaultMemoryLimit is the Go runtime's soft memory limit for fredtel
// serve when GOMEMLIMIT is not set.
const defaultMemoryLimit = 160 << 20

func envDuration(env Getenv, name string, def time.Duration) time.Duration {
	if v := env(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envFloat(env Getenv, name string, def float64) float64 {
	if v := env(name); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return def
}

func runKeys(ctx context.Context, args []string, env Getenv, stdout, stderr io.Writer) error {
	usage := "usage: fredtel keys create --user ID [--label L] | list | revoke PREFIX  [--db URL]"
	if len(args) == 0 {
		return &usageError{msg: usage}
	}
	fs := flag.NewFlagSet("fredtel keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", defaultDBURL(env), "database `URL` (env FREDTEL_DB_URL)")
	user := fs.String("user", "", "the user the key's records belong to (create)")
	label := fs.String("label", "", "a note on the key (create)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &usageError{}
	}
	open := func() (store.Store, error) {
		return store.Open(ctx, *db, store.Options{Set: schema.CentralSet, Migrate: true, MaxConns: 2})
	}
	switch args[0] {
	case "create":
		if fs.NArg() > 0 {
			return &usageError{msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
		}
		if !schema.PatUserID.Match(*user) {
			return &usageError{msg: "--user: want " + schema.PatUserID.Doc}
		}
		if !schema.PatLabel.Match(*label) {
			return &usageError{msg: "--label: want " + schema.PatLabel.Doc}
		}
		st, err := open()
		if err != nil {
			return err
		}
		defer st.Close()
		key, rec := server.NewKey(*user, *label, time.Now().UTC())
		if err := st.CreateKey(ctx, rec); err != nil {
			return err
		}
		fmt.Fprintln(stdout, key)
		fmt.Fprintf(stderr, "fredtel: key %s… for user %s created; it is shown only this once (only its SHA-256 is stored)\n", rec.Prefix, rec.UserID)
		return nil
	case "list":
		st, err := open()
		if err != nil {
			return err
		}
		defer st.Close()
		keys, err := st.ListKeys(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-20s %-20s %-20s %-20s %-20s %s\n", "PREFIX", "USER", "CREATED", "LAST USED", "REVOKED", "LABEL")
		day := func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format("2006-01-02 15:04")
		}
		for _, k := range keys {
			fmt.Fprintf(stdout, "%-20s %-20s %-20s %-20s %-20s %s\n", k.Prefix+"…", k.UserID, day(k.CreatedAt), day(k.LastUsedAt), day(k.RevokedAt), k.Label)
		}
		return nil
	case "revoke":
		if fs.NArg() != 1 {
			return &usageError{msg: "usage: fredtel keys revoke PREFIX"}
		}
		st, err := open()
		if err != nil {
			return err
		}
		defer st.Close()
		k, err := st.RevokeKey(ctx, fs.Arg(0), time.Now().UTC())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s… (user %s); every server refuses it within a minute\n", k.Prefix, k.UserID)
		return nil
	}
	return &usageError{msg: usage}
}
