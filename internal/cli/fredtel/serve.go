package fredtel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/fredcode/fredtel/dashboard"
	"github.com/fredcode/fredtel/insights"
	"github.com/fredcode/fredtel/internal/cli"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/server"
	"github.com/fredcode/fredtel/store"
)

// serveConfig is what fredtel serve runs with.
type serveConfig struct {
	server.Config
	addr, db, migrateDB, token, prices, logFormat string
	pool                                          int
	foldEvery                                     time.Duration
}

// serveSettings is fredtel serve's table of settings. c holds their
// defaults: the server's own for those of server.Config.
func serveSettings(c *serveConfig, env cli.Getenv) []cli.Setting {
	c.Config = server.Config{}.WithDefaults()
	c.addr, c.pool, c.foldEvery = "127.0.0.1:8700", 4, 10*time.Second
	return []cli.Setting{
		{Flag: "addr", Env: "FREDTEL_ADDR", Value: cli.String(&c.addr), Usage: "listen address `HOST:PORT` (:0 picks a free port)"},
		dbSetting(&c.db, env),
		{Flag: "migrate-db", Env: "FREDTEL_MIGRATE_DB_URL", Value: cli.String(&c.migrateDB),
			Usage: "direct database `URL` for migrations when --db goes through a transaction pooler (default --db)"},
		{Flag: "min-client-version", Env: "FREDTEL_MIN_CLIENT_VERSION", Usage: "refuse clients older than this `VERSION` with 426",
			Value: cli.Match(&c.MinClientVersion, schema.PatSemver().Match, "a version such as 1.4.0")},
		{Flag: "rate", Env: "FREDTEL_RATE", Usage: "each key's requests per second: at most `N`, then 429",
			Value: cli.Func(&c.Rate, func(s string) (float64, error) {
				r, err := strconv.ParseFloat(s, 64)
				if err != nil || !(r > 0) || math.IsInf(r, 0) {
					return 0, errors.New("want a number above 0")
				}
				return r, nil
			})},
		{Flag: "burst", Env: "FREDTEL_BURST", Value: cli.Int(&c.Burst, 1, math.MaxInt), Usage: "requests a key may send at once"},
		// Why a few connections and not one per request: docs/operations.md.
		{Flag: "pool", Env: "FREDTEL_DB_POOL", Value: cli.Int(&c.pool, 1, 1000),
			Usage: "PostgreSQL connections, so batches written at once; more wait in arrival order. About twice the database's cores"},
		{Flag: "key-cache-ttl", Env: "FREDTEL_KEY_CACHE_TTL", Value: cli.Duration(&c.KeyCacheTTL, time.Millisecond, math.MaxInt64),
			Usage: "how long a key's status is cached; a revoked key is refused within this"},
		{Flag: "write-timeout", Env: "FREDTEL_WRITE_TIMEOUT", Value: cli.Duration(&c.WriteTimeout, time.Millisecond, math.MaxInt64),
			Usage: "longest database write before 503"},
		{Flag: "schema-versions", Env: "FREDTEL_SCHEMA_VERSIONS", Value: cli.Func((*versionList)(&c.Versions), parseVersions),
			Usage: "wire schema `VERSIONS` accepted, comma-separated; others get 422 and stay in the clients' spools"},
		tokenSetting(&c.token),
		{Flag: "dashboard-prices", Env: "FREDTEL_DASHBOARD_PRICES", Value: cli.String(&c.prices),
			Usage: "price table `FILE` (docs/insights.md) the dashboard shows costs with; none: no money shown"},
		{Flag: "fold-every", Env: "FREDTEL_FOLD_EVERY", Value: cli.Duration(&c.foldEvery, 100*time.Millisecond, 24*time.Hour),
			Usage: "how often the turns written since are folded into turn_hours (PostgreSQL; docs/insights.md)"},
		logSetting(&c.logFormat, "json"),
	}
}

// versionList is --schema-versions as it is written: 1,2.
type versionList []int

func (v versionList) String() string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func parseVersions(s string) (versionList, error) {
	var vs versionList
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 || v > schema.WireVersion {
			return nil, fmt.Errorf("%q is not a schema version this build knows (1 to %d)", strings.TrimSpace(f), schema.WireVersion)
		}
		vs = append(vs, v)
	}
	return vs, nil
}

func runServe(ctx context.Context, args []string, env cli.Getenv, stdout, stderr io.Writer) error {
	var c serveConfig
	const help = "Usage: fredtel serve [flags]\n\nRuns the ingest API (POST /v1/batch, GET /v1/whoami, /v1/schema, /healthz, /readyz, /metrics)\n" +
		"and the dashboard at /dashboard/ (with a token, or on a loopback address).\n" +
		"Migrates the database on start; stops gracefully on SIGINT or SIGTERM."
	if err := cli.Parse(env, args, stderr, help, serveSettings(&c, env)...); err != nil {
		return err
	}
	c.Logger = newLogger(c.logFormat, stderr)
	if env("GOGC") == "" {
		// The live heap of an ingest server is small and its garbage is
		// per-request: the default GOGC collects many times a second
		// under load, and 400 trades some RSS for much less CPU
		// (docs/operations.md).
		debug.SetGCPercent(400)
	}
	if env("GOMEMLIMIT") == "" {
		// GOGC 400 lets the heap grow to five times what is live: under
		// a flood of worst-case bodies (each admitted one holds up to 8
		// MiB) that alone would pass 256 MiB. A soft limit makes the
		// collector work harder only when the heap nears it.
		debug.SetMemoryLimit(defaultMemoryLimit)
	}

	mig := c.migrateDB
	if mig == "" {
		mig = c.db
	}
	ms, err := store.Open(ctx, mig, store.Options{Set: schema.CentralSet, Migrate: true, MaxConns: 1})
	if err != nil {
		return err
	}
	ms.Close()
	st, err := store.Open(ctx, c.db, store.Options{Set: schema.CentralSet, MaxConns: int32(c.pool)})
	if err != nil {
		return err
	}
	defer st.Close()
	if f, ok := st.(store.Folder); ok {
		// Stopped, and waited for, before the pool closes.
		fctx, stop := context.WithCancel(ctx)
		folded := make(chan struct{})
		go func() { defer close(folded); store.FoldEvery(fctx, f, c.foldEvery, c.Logger) }()
		defer func() { stop(); <-folded }()
	}
	srv, err := server.New(c.Config, st)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.addr, err)
	}
	dcfg := dashboard.Config{DBURL: c.db, Tables: insights.TablesCentral,
		Token: c.token, IngestURL: "http://" + ln.Addr().String(), Logger: c.Logger}
	if c.prices != "" {
		if dcfg.Prices, err = insights.LoadPrices(c.prices); err != nil {
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
	c.Logger.Info("listening", "addr", ln.Addr().String(), "db", st.Location().Masked)
	fmt.Fprintf(stdout, "fredtel serve: listening on http://%s (database %s)\n%s\n", ln.Addr(), st.Location(), dashSay)
	// On Ctrl-C: stop accepting, let the batches in flight commit, then
	// close the pool.
	if err := cli.Serve(ctx, hs, ln, 15*time.Second); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "fredtel serve: stopped")
	return nil
}

// defaultMemoryLimit is the Go runtime's soft memory limit for fredtel
// serve when GOMEMLIMIT is not set.
const defaultMemoryLimit = 160 << 20

func runKeys(ctx context.Context, args []string, env cli.Getenv, stdout, stderr io.Writer) error {
	const usage = "usage: fredtel keys create --user ID [--label L] | list | revoke PREFIX  [--db URL]"
	if len(args) == 0 {
		return cli.Usagef(usage)
	}
	var db, user, label string
	rest, err := cli.ParseArgs(env, args[1:], stderr, "U"+usage[1:], dbSetting(&db, env),
		cli.Setting{Flag: "user", Value: cli.String(&user), Usage: "the `ID` of the user the key's records belong to (create)"},
		cli.Setting{Flag: "label", Value: cli.String(&label), Usage: "a `NOTE` on the key (create)"})
	if err != nil {
		return err
	}
	open := func() (store.Store, error) {
		return store.Open(ctx, db, store.Options{Set: schema.CentralSet, Migrate: true, MaxConns: 2})
	}
	switch args[0] {
	case "create":
		if len(rest) > 0 {
			return cli.Usagef("unexpected argument %q", rest[0])
		}
		if !schema.PatUserID().Match(user) {
			return cli.Usagef("--user: want %s", schema.PatUserID().Doc())
		}
		if !schema.PatLabel().Match(label) {
			return cli.Usagef("--label: want %s", schema.PatLabel().Doc())
		}
		st, err := open()
		if err != nil {
			return err
		}
		defer st.Close()
		key, rec := server.NewKey(user, label, time.Now().UTC())
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
		if len(rest) != 1 {
			return cli.Usagef("usage: fredtel keys revoke PREFIX")
		}
		st, err := open()
		if err != nil {
			return err
		}
		defer st.Close()
		k, err := st.RevokeKey(ctx, rest[0], time.Now().UTC())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s… (user %s); every server refuses it within a minute\n", k.Prefix, k.UserID)
		return nil
	}
	return cli.Usagef(usage)
}
