package fredtel

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/sim"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/server"
	"github.com/fredcode/fredtel/store"
)

func TestSimulateUsage(t *testing.T) {
	key := "fred_live_" + strings.Repeat("a", 32)
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "where to: --url URL"},
		{[]string{"--db", "sqlite::memory:", "--url", "http://x"}, "--db (self-hosted) goes alone"},
		{[]string{"--url", "http://x"}, "exactly one of --key"},
		{[]string{"--url", "http://x", "--key", key, "--server-db", "sqlite::memory:"}, "exactly one of --key"},
		{[]string{"--url", "http://x", "--key", "hunter2"}, "--key: want an API key"},
		{[]string{"--url", "http://x", "--key", key, "--users", "3"}, "--users: with --key"},
		{[]string{"--db", "sqlite::memory:", "--sessions", "0"}, `--sessions "0"`},
		{[]string{"--db", "sqlite::memory:", "--span", "40m"}, `--span "40m"`},
		{[]string{"--db", "sqlite::memory:", "--end", "yesterday"}, `--end "yesterday": want RFC 3339`},
		{[]string{"--db", "sqlite::memory:", "--end", time.Now().Add(time.Hour).Format(time.RFC3339)}, "is in the future"},
		{[]string{"--db", "sqlite::memory:", "--rate", "-1"}, `--rate "-1"`},
		{[]string{"--db", "sqlite::memory:", "extra"}, `unexpected argument "extra"`},
	} {
		code, out, errs := run(t, nil, append([]string{"simulate"}, c.args...)...)
		if code != 2 || !strings.Contains(errs, c.want) || out != "" {
			t.Errorf("simulate %v: exit %d, stderr %q, want 2 and %q", c.args, code, errs, c.want)
		}
		if strings.Contains(errs, "hunter2") {
			t.Errorf("simulate %v echoed the bad key: %s", c.args, errs)
		}
	}
}

// TestSimulateSelfHosted: --db writes the dsc_* tables through the
// self-hosted writer; --truth describes them.
func TestSimulateSelfHosted(t *testing.T) {
	db := testdb.SQLite(t)
	truth := filepath.Join(t.TempDir(), "truth.json")
	code, out, errs := run(t, nil, "simulate", "--db", db, "--sessions", "40", "--seed", "2", "--truth", truth)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "simulated 40 sessions of 2 users (seed 2)") || !strings.Contains(out, "self-hosted → sqlite:") || !strings.Contains(out, "ground truth: "+truth) {
		t.Errorf("output:\n%s", out)
	}
	var tr sim.Truth
	b, err := os.ReadFile(truth)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.Totals.Sessions != 40 || tr.Route != "self-hosted" || len(tr.SessionsList) != 40 {
		t.Errorf("truth: %+v, route %s", tr.Totals, tr.Route)
	}
	if got := testdb.QueryInt(t, db, "SELECT count(*) FROM dsc_tool_calls"); got != tr.Totals.ToolCalls || got == 0 {
		t.Errorf("%d tool calls stored, truth says %d", got, tr.Totals.ToolCalls)
	}
}

// testServer is the ingest API in process, on a store of its own.
func testServer(t *testing.T, db string) string {
	t.Helper()
	st, err := store.Open(context.Background(), db, store.Options{Set: schema.CentralSet, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(server.Config{}, st)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs.URL
}

// TestSimulateCentral: --server-db creates the users' keys; --key sends as
// the key's user (asked of the server), at the server's default rate limit.
func TestSimulateCentral(t *testing.T) {
	db := testdb.SQLite(t)
	api := testServer(t, db)
	code, out, errs := run(t, nil, "simulate", "--url", api, "--server-db", db, "--users", "3", "--sessions", "45")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "3 users' keys created") || !strings.Contains(out, "simulated 45 sessions of 3 users") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out, errs)
	}
	if n := testdb.QueryInt(t, db, "SELECT count(DISTINCT user_id) FROM telemetry_sessions"); n != 3 {
		t.Errorf("sessions of %d users, want 3", n)
	}
	if regexp.MustCompile(`fred_live_[A-Za-z0-9]{20}`).MatchString(out + errs) {
		t.Errorf("a key was printed:\n%s%s", out, errs)
	}

	code, key, errs := run(t, nil, "keys", "create", "--db", db, "--user", "carol")
	if code != 0 {
		t.Fatalf("keys create: %s", errs)
	}
	truth := filepath.Join(t.TempDir(), "t.json")
	// The key from the environment, out of the process list.
	code, out, errs = run(t, map[string]string{"FREDTEL_SIMULATE_KEY": strings.TrimSpace(key)}, "simulate", "--url", api, "--sessions", "10", "--truth", truth)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if n := testdb.QueryInt(t, db, "SELECT count(*) FROM telemetry_sessions WHERE user_id = 'carol'"); n != 10 {
		t.Errorf("%d sessions of carol, want 10\n%s", n, out)
	}
	if b, _ := os.ReadFile(truth); !strings.Contains(string(b), `"carol"`) {
		t.Errorf("the truth does not name the key's user:\n%.300s", b)
	}
}

func TestSimulateFailures(t *testing.T) {
	key := "fred_live_" + strings.Repeat("b", 32)
	code, _, errs := run(t, nil, "simulate", "--url", "http://127.0.0.1:1", "--key", key, "--sessions", "3")
	if code != 1 || !strings.Contains(errs, "cannot reach the ingest API") {
		t.Errorf("unreachable API: exit %d: %s", code, errs)
	}
	api := testServer(t, testdb.SQLite(t))
	truth := filepath.Join(t.TempDir(), "t.json")
	code, _, errs = run(t, nil, "simulate", "--url", api, "--key", key, "--sessions", "3", "--truth", truth)
	if code != 1 || !strings.Contains(errs, "refused the key fred_live_bbbb…") || strings.Contains(errs, key) {
		t.Errorf("unknown key: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(truth); err == nil {
		t.Error("a failed run left a truth file")
	}
	code, _, errs = run(t, nil, "simulate", "--url", api, "--server-db", testdb.SQLite(t), "--sessions", "3")
	if code != 1 || !strings.Contains(errs, "is the key's database the server's?") {
		t.Errorf("keys made in another database: exit %d: %s", code, errs)
	}
	code, _, errs = run(t, nil, "simulate", "--db", "postgres://nobody:s3cret@127.0.0.1:1/x", "--sessions", "3")
	if code != 1 || strings.Contains(errs, "s3cret") {
		t.Errorf("unreachable database: exit %d: %s", code, errs)
	}
}

// TestDemoExit: demo --exit prints the report and removes its folder.
func TestDemoExit(t *testing.T) {
	code, out, errs := run(t, nil, "demo", "--exit", "--sessions", "80", "--users", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs, out)
	}
	for _, want := range []string{"fredtel demo: ingest API on http://127.0.0.1:", "80 sessions of 4 users", "DETECTED PROBLEMS",
		"1. WHERE THE FAST MODEL GETS STUCK", "never used: /bug, /doctor, /export", "6. PERMISSION PATTERNS", "fredtel demo: done (--exit)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`embedded database (\S+)central\.db`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no database path in:\n%s", out)
	}
	if _, err := os.Stat(m[1]); err == nil {
		t.Errorf("the demo left %s behind", m[1])
	}
}

// TestDemoServesUntilStopped: without --exit the API keeps answering after
// the report, the last line names its URL, and a stop (Ctrl-C) ends it.
func TestDemoServesUntilStopped(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := filepath.Join(t.TempDir(), "demo")
	var out, errs testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"demo", "--sessions", "30", "--users", "2", "--dir", dir}, func(string) string { return "" }, &out, &errs)
	}()
	re := regexp.MustCompile(`fredtel demo: serving (http://127\.0\.0\.1:\d+) until Ctrl-C`)
	var url string
	deadline := time.Now().Add(60 * time.Second)
	for url == "" {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
			break
		}
		select {
		case code := <-done:
			t.Fatalf("demo ended (%d) before serving:\n%s\n%s", code, out.String(), errs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo not serving after 60 s:\n%s", out.String())
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.Contains(lines[len(lines)-1], url) {
		t.Errorf("the last line does not name the URL: %q", lines[len(lines)-1])
	}
	resp, err := http.Get(url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz while serving: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(url + "/dashboard/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "stuck") {
		t.Errorf("dashboard while serving: %d\n%.500s", resp.StatusCode, page)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after the stop: %s", code, errs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop")
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("still answering after the stop")
	}
	if _, err := os.Stat(filepath.Join(dir, "central.db")); err != nil {
		t.Errorf("--dir: the database is not kept: %v", err)
	}
}

func TestSimulateRefusesAMemoryDatabase(t *testing.T) {
	code, _, errs := run(t, nil, "simulate", "--db", "sqlite::memory:", "--sessions", "2")
	if code != 1 || !strings.Contains(errs, "give a file (sqlite:PATH)") {
		t.Errorf("exit %d: %s", code, errs)
	}
}
