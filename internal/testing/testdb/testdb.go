// Package testdb gives every test a database of its own, on a real
// PostgreSQL server and on an embedded SQLite file, so tests run in parallel
// and never see each other's rows.
//
// PostgreSQL is found through DATABASE_URL (an admin URL: it must be allowed
// to CREATE DATABASE), else postgres://postgres@127.0.0.1:5432/postgres. When
// it cannot be reached the PostgreSQL half of a test is skipped with the
// reason, unless FREDTEL_REQUIRE_DB=1 (set by scripts/test, and so in CI),
// where that is a failure. A test that breaks the database on purpose gets a
// private cluster instead (StartCluster).
package testdb

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the drivers Open uses
	_ "modernc.org/sqlite"
)

// DefaultAdminURL is used when DATABASE_URL is not set.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the URL tests create their databases through.
func AdminURL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// Required reports whether an unreachable PostgreSQL fails tests instead of
// skipping them.
func Required() bool { return os.Getenv("FREDTEL_REQUIRE_DB") == "1" || os.Getenv("CI") == "true" }

var (
	probeOnce sync.Once
	probeErr  error
)

// Postgres creates an empty database for t and returns its URL. The
// database is dropped when t ends.
func Postgres(t testing.TB) string {
	t.Helper()
	probeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminURL())
		if err == nil {
			c.Close(ctx)
		}
		probeErr = err
	})
	if probeErr != nil {
		if Required() {
			t.Fatalf("PostgreSQL is required (FREDTEL_REQUIRE_DB=1 or CI) but unreachable: %v", probeErr)
		}
		t.Skipf("PostgreSQL unreachable at DATABASE_URL or %s (run scripts/test to start it): %v", DefaultAdminURL, probeErr)
	}
	u, drop, err := Create(context.Background(), AdminURL(), "fredtel_t_")
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("testdb: %v", err)
		}
	})
	return u
}

// Create makes an empty database, named prefix and random letters, on the
// server of adminURL, and returns its URL and how to drop it. The
// benchmarks (internal/devcmd) make theirs with it too.
func Create(ctx context.Context, adminURL, prefix string) (string, func() error, error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL at %s: %w", u.Redacted(), err)
	}
	defer admin.Close(ctx)
	var rnd [6]byte
	rand.Read(rnd[:])
	name := prefix + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	return u.String(), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, adminURL)
		if err == nil {
			defer c.Close(ctx)
			_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		}
		if err != nil {
			return fmt.Errorf("drop %s: %w", name, err)
		}
		return nil
	}, nil
}

// SQLite returns the URL of a new SQLite file in t's temporary folder.
func SQLite(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "test.db")
}

// Backend is one database kind a suite runs on.
type Backend struct {
	Name string
	URL  func(testing.TB) string // a fresh database for each call
}

// Backends lists both backends.
var Backends = []Backend{
	{Name: "postgres", URL: Postgres},
	{Name: "sqlite", URL: SQLite},
}

// Open opens the database at url (a URL of either backend) through
// database/sql, with a pool of its own; the caller closes it.
func Open(t testing.TB, url string) *sql.DB {
	t.Helper()
	driver, dsn := "pgx", url
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		driver, dsn = "sqlite", path
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// Each runs fn on each backend, in parallel subtests named after them.
func Each(t *testing.T, fn func(t *testing.T, be Backend)) {
	for _, be := range Backends {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			fn(t, be)
		})
	}
}

// QueryInt runs a query returning one integer on the database at url (a
// URL of either backend), through a connection of its own.
func QueryInt(t testing.TB, url, q string) int {
	t.Helper()
	db := Open(t, url)
	defer db.Close()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// Counts checks that each query of want returns its number on the
// database at url.
func Counts(t testing.TB, url string, want map[string]int) {
	t.Helper()
	for q, n := range want {
		if got := QueryInt(t, url, q); got != n {
			t.Errorf("%s = %d, want %d", q, got, n)
		}
	}
}

// Rows counts every row of the central record tables at url.
func Rows(t testing.TB, url string) int {
	return QueryInt(t, url, `SELECT (SELECT count(*) FROM telemetry_sessions) + (SELECT count(*) FROM telemetry_turns)
		+ (SELECT count(*) FROM telemetry_tool_calls) + (SELECT count(*) FROM telemetry_events)`)
}

// PGDump is the whole database at url, schema and data, as pg_dump's
// plain format writes it.
func PGDump(t testing.TB, url string) []byte {
	t.Helper()
	bin, err := exec.LookPath("pg_dump")
	if err != nil {
		// Debian installs the versioned binaries off PATH; the newest reads
		// every older server.
		paths, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
		version := func(p string) int { v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p)))); return v }
		sort.Slice(paths, func(i, j int) bool { return version(paths[i]) > version(paths[j]) })
		if len(paths) == 0 {
			t.Fatal("pg_dump is not installed (not on PATH nor in /usr/lib/postgresql/*/bin); scripts/test installs it")
		}
		bin = paths[0]
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--format=plain", "--no-password", "--dbname="+url)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, stderr.String())
	}
	return out
}
