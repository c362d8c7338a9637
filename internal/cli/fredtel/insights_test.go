package fredtel

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/store"
)

// fillDB migrates a fresh database of the backend and writes a few sessions
// started in the last hour; it returns the URL.
func fillDB(t *testing.T, be testdb.Backend, set schema.Set, sessions int) string {
	t.Helper()
	url := be.URL(t)
	ctx := context.Background()
	s, err := store.Open(ctx, url, store.Options{Set: set, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := fixture.New(7, time.Now())
	b := &store.Batch{UserID: "alice", Batch: g.Batch(sessions, 3, 3, 4)}
	if _, err := s.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	return url
}

// execDB runs a statement on the database at url.
func execDB(t *testing.T, url, stmt string) {
	t.Helper()
	db := testdb.Open(t, url)
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func TestInsightsReport(t *testing.T) {
	testdb.Each(t, func(t *testing.T, be testdb.Backend) {
		url := fillDB(t, be, schema.SelfHostedSet, 20)
		code, out, errs := run(t, nil, "insights", "--db", url, "--tables", "self-hosted", "--since", "2d")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		for _, want := range []string{"DETECTED PROBLEMS", "1. WHERE THE FAST MODEL GETS STUCK", "2. DEAD SLASH COMMANDS",
			"3. RETRY STORMS", "4. TOOL DISPATCH LOOPS", "5. PLAN-MODE ADOPTION", "6. PERMISSION PATTERNS", "20 sessions", "  → "} {
			if !strings.Contains(out, want) {
				t.Errorf("text report lacks %q:\n%s", want, out)
			}
		}
		code, out, errs = run(t, nil, "insights", "--db", url, "--tables", "self-hosted", "--format", "json")
		if code != 0 {
			t.Fatalf("json: exit %d: %s", code, errs)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("json: %v\n%s", err, out)
		}
		for _, k := range []string{"window", "tables", "problems", "stuck", "dead_commands", "retry_storms", "tool_loops", "plan_mode", "permissions"} {
			if _, ok := m[k]; !ok {
				t.Errorf("json lacks %q", k)
			}
		}
		if string(m["tables"]) != `"self-hosted"` {
			t.Errorf("tables %s", m["tables"])
		}
		// The data's span is quoted in one format on both backends.
		code, _, errs = run(t, nil, "insights", "--db", url, "--tables", "self-hosted", "--from", "2020-01-01", "--to", "2020-01-02")
		if code != 1 || !regexp.MustCompile(`\(the 20 sessions there started between 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z and 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\)$`).MatchString(strings.TrimSpace(errs)) {
			t.Errorf("empty window: exit %d, %q", code, errs)
		}
	})
}

func TestInsightsPrices(t *testing.T) {
	url := fillDB(t, testdb.Backends[1], schema.CentralSet, 30)
	dir := t.TempDir()
	good := filepath.Join(dir, "prices.txt")
	os.WriteFile(good, []byte("# currency EUR\n# model in out\nfred-flash-2 0.1 0.4\n"), 0o600)
	code, out, errs := run(t, nil, "insights", "--db", url, "--prices", good, "--format", "json", "--min-repeats", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Prices struct {
			Currency string   `json:"currency"`
			Unpriced []string `json:"unpriced_models"`
		} `json:"prices"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Prices.Currency != "EUR" {
		t.Errorf("currency %q", r.Prices.Currency)
	}
	for _, m := range r.Prices.Unpriced {
		if m == "fred-flash-2" {
			t.Errorf("a priced model listed as unpriced: %v", r.Prices.Unpriced)
		}
	}
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("fred-flash 0.1 0.4\nfred-pro 1.0 cheap\n"), 0o600)
	code, _, errs = run(t, nil, "insights", "--db", url, "--prices", bad)
	if code != 1 || !strings.Contains(errs, "bad.txt:2: output price") {
		t.Errorf("bad prices: exit %d, %q", code, errs)
	}
}

func TestInsightsBadInput(t *testing.T) {
	lite := testdb.Backends[1]
	empty := lite.URL(t)
	if s, err := store.Open(context.Background(), empty, store.Options{Set: schema.CentralSet, Migrate: true}); err != nil {
		t.Fatal(err)
	} else {
		s.Close()
	}
	full := fillDB(t, lite, schema.CentralSet, 3)
	newer := fillDB(t, lite, schema.CentralSet, 1)
	execDB(t, newer, "INSERT INTO telemetry_schema_migrations (version, name, applied_at) VALUES (99, '0099_future.sql', '2030-01-01T00:00:00.000Z')")
	older := fillDB(t, lite, schema.CentralSet, 1)
	execDB(t, older, "DELETE FROM telemetry_schema_migrations WHERE version > 1")
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"tables", []string{"--db", full, "--tables", "everything"}, 2, `--tables "everything": want central or self-hosted`},
		{"format", []string{"--db", full, "--format", "xml"}, 2, `--format "xml": want text or json`},
		{"since and from", []string{"--db", full, "--since", "1d", "--from", "2026-01-01"}, 2, "give one or the other"},
		{"since", []string{"--db", full, "--since", "yesterday"}, 2, `--since "yesterday": want a positive duration`},
		{"from", []string{"--db", full, "--from", "monday"}, 2, `--from: "monday": want RFC 3339`},
		{"from after to", []string{"--db", full, "--from", "2026-02-01", "--to", "2026-01-01"}, 2, "is not before --to"},
		{"min repeats", []string{"--db", full, "--min-repeats", "1"}, 2, `--min-repeats "1": want an integer, 2 or more`},
		{"agent", []string{"--db", full, "--agent", "vim"}, 2, `agent "vim": want one of fred`},
		{"model", []string{"--db", full, "--model", "a b"}, 2, `model "a b": want a model id`},
		{"empty database", []string{"--db", empty}, 1, "no data: the central tables hold no session"},
		{"window without data", []string{"--db", full, "--from", "2020-01-01", "--to", "2020-02-01"}, 1,
			"no data: no session started between 2020-01-01T00:00:00.000Z and 2020-02-01T00:00:00.000Z (the 3 sessions there started between"},
		{"no tables of the set", []string{"--db", full, "--tables", "self-hosted"}, 1, "no telemetry tables of the self-hosted set (dsc_schema_migrations is missing): run fredtel migrate --set self-hosted"},
		{"newer schema", []string{"--db", newer}, 1, fmt.Sprintf("the central tables are at schema version 99, newer than this fredtel reads (%d): upgrade fredtel", schema.Version)},
		{"older schema", []string{"--db", older}, 1, fmt.Sprintf("the central tables are at schema version 1, this fredtel reads %d: run fredtel migrate --set central", schema.Version)},
		{"no file", []string{"--db", "sqlite:" + filepath.Join(t.TempDir(), "none.db")}, 1, "database unreachable: no database file there"},
		{"unreachable", []string{"--db", "postgres://alice:hunter2@127.0.0.1:1/x?connect_timeout=2"}, 1, "postgres://alice:***@127.0.0.1:1/x?connect_timeout=2: database unreachable: dial: connect: connection refused"},
		{"scheme", []string{"--db", "mysql://root:hunter2@db/x"}, 1, "want postgres://"},
		{"no prices file", []string{"--db", full, "--prices", "/nonexistent/prices"}, 1, "prices: open /nonexistent/prices: no such file or directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := run(t, nil, append([]string{"insights"}, c.args...)...)
			if code != c.code || !strings.Contains(errs, c.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errs, c.code, c.want)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if strings.Contains(errs, "hunter2") || strings.Contains(errs, "goroutine") || strings.Count(strings.TrimSpace(errs), "\n") > 0 && c.code == 1 {
				t.Errorf("stderr is not one clean line: %q", errs)
			}
		})
	}
}

// TestInsightsBadInputPostgres: the cases whose detection differs by
// driver, on PostgreSQL.
func TestInsightsBadInputPostgres(t *testing.T) {
	pg := testdb.Backends[0]
	bare := pg.URL(t) // no tables at all
	full := fillDB(t, pg, schema.CentralSet, 2)
	newer := fillDB(t, pg, schema.CentralSet, 1)
	execDB(t, newer, "INSERT INTO telemetry_schema_migrations (version, name) VALUES (99, '0099_future.sql')")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no tables", []string{"--db", bare}, "no telemetry tables of the central set (telemetry_schema_migrations is missing): run fredtel migrate --set central"},
		{"other set", []string{"--db", full, "--tables", "self-hosted"}, "no telemetry tables of the self-hosted set"},
		{"newer schema", []string{"--db", newer}, fmt.Sprintf("schema version 99, newer than this fredtel reads (%d)", schema.Version)},
		{"window without data", []string{"--db", full, "--from", "2020-01-01", "--to", "2020-02-01"}, "no data: no session started between"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := run(t, nil, append([]string{"insights"}, c.args...)...)
			if code != 1 || !strings.Contains(errs, c.want) || out != "" || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and one line with %q", code, out, errs, c.want)
			}
		})
	}
}
