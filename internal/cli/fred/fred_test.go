package fred

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fredcode/fredtel/telemetry"
)

func fredRun(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

const goodKey = "fred_live_0123456789abcdefghijKLMN"

// whoamiServer answers /v1/whoami on 127.0.0.1 like the ingest API.
func whoamiServer(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/v1/whoami":
			http.NotFound(w, r)
		case r.Header.Get("Authorization") == "Bearer "+goodKey:
			w.Write([]byte(`{"user_id":"alice"}`))
		case strings.Contains(r.Header.Get("Authorization"), "broken"):
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestLogin(t *testing.T) {
	api := whoamiServer(t)
	for _, c := range []struct {
		name   string
		args   []string
		stdin  string
		code   int
		out    string
		err    string
		stored bool
	}{
		{"verified by flag", []string{"login", "--key", goodKey}, "", 0, "logged in as alice with fred_live_0123…", "", true},
		{"verified from stdin", []string{"login"}, goodKey + "\n", 0, "logged in as alice", "", true},
		{"bad format", []string{"login", "--key", "sk-123"}, "", 1, "", "not a Fred API key", false},
		{"rejected", []string{"login", "--key", "fred_live_zzzzzzzzzzzzzzzzzzzzzzzz"}, "", 1, "", "rejected the key fred_live_zzzz…", false},
		{"server error: stored, unverified", []string{"login", "--key", "fred_live_brokenbrokenbrokenbroken"}, "", 0, "logged in with fred_live_brok…", "could not verify", true},
		{"empty stdin", []string{"login"}, "", 1, "", "no key", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			code, out, errs := fredRun(t, map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": api}, c.stdin, c.args...)
			if code != c.code || !strings.Contains(out, c.out) || !strings.Contains(errs, c.err) {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
			}
			cr, _ := telemetry.LoadCredentials(dir)
			if (cr.APIKey != "") != c.stored {
				t.Fatalf("stored %q, want stored=%v", cr.APIKey, c.stored)
			}
			if c.stored {
				fi, err := os.Stat(filepath.Join(dir, "credentials.json"))
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("credentials mode %v, %v; want 0600", fi.Mode(), err)
				}
			}
			if strings.Contains(out+errs, goodKey) {
				t.Fatal("the whole key was printed")
			}
		})
	}
}

func TestTelemetryOnOffStatusLogout(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": whoamiServer(t), "FRED_TELEMETRY_DEBUG": "1"}
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"telemetry"}, "telemetry: off (not logged in; fred login turns it on)"},
		{[]string{"login", "--key", goodKey}, "logged in as alice"},
		{[]string{"telemetry", "status"}, "off: the telemetry notice has not been shown on a terminal yet, and nothing is sent until it has; then central → " + env["FRED_API_URL"] + " as fred_live_0123…"},
		{[]string{"telemetry", "off"}, "telemetry: off (saved; unsent batches deleted)\ntelemetry: off (turned off"},
		{[]string{"--no-telemetry", "telemetry"}, "telemetry: off for this session (--no-telemetry)"},
		{[]string{"telemetry", "on"}, "telemetry: on (saved)\ntelemetry: off: the telemetry notice has not been shown"},
		{[]string{"logout"}, "logged out (unsent telemetry deleted)\ntelemetry: off (not logged in"},
	}
	for _, s := range steps {
		code, out, errs := fredRun(t, env, "", s.args...)
		if code != 0 || !strings.Contains(out, s.want) {
			t.Fatalf("fred %v: exit %d, stdout %q, stderr %q; want %q", s.args, code, out, errs, s.want)
		}
	}
	env["DSC_TELEMETRY_DB_URL"] = "postgresql://alice:s3cret@db:5432/fred"
	_, out, _ := fredRun(t, env, "", "telemetry")
	if !strings.Contains(out, "self-hosted → postgresql://alice:***@db:5432/fred (text included)") || strings.Contains(out, "s3cret") {
		t.Fatalf("self-hosted status %q", out)
	}
	if code, _, errs := fredRun(t, env, "", "telemetry", "maybe"); code != 2 || !strings.Contains(errs, `unknown subcommand "maybe"`) {
		t.Fatalf("bad subcommand: %d %q", code, errs)
	}
}

func TestReplTelemetryOff(t *testing.T) {
	dir := t.TempDir()
	telemetry.SaveCredentials(dir, telemetry.Credentials{APIKey: goodKey})
	telemetry.SavePrefs(dir, telemetry.Prefs{NoticeShownAt: "2026-01-01T00:00:00Z"})
	env := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_TELEMETRY_DEBUG": "1"}
	code, out, errs := fredRun(t, env, "", "repl")
	if code != 0 {
		t.Fatal(errs)
	}
	code, out, errs = fredRun(t, env, "main.go\n/telemetry\n/telemetry off\nsecond prompt\n/quit\n", "repl")
	if code != 0 || !strings.Contains(out, "telemetry: central → https://api.fredcode.net as fred_live_0123…") ||
		!strings.Contains(out, "telemetry: off (saved)") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	// Nothing was flushed before /telemetry off (the flush interval is 2 s),
	// and nothing after it: the debug sink printed no batch.
	if strings.Contains(errs, "telemetry debug: batch") {
		t.Fatalf("a batch was sent around /telemetry off:\n%s", errs)
	}
	if p, _ := telemetry.LoadPrefs(dir); !p.Off() {
		t.Fatal("/telemetry off was not saved")
	}
}

// TestReplPrintsHints: the stand-in agent prints the live hints, with
// telemetry off: reading one file three times in a row is a loop, and three
// turns cut short on the fast model suggest the stronger one.
func TestReplPrintsHints(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // a prompt starting with / is a command: relative names
	small, big := "small.go", "big.txt"
	os.WriteFile(small, []byte("package x\n"), 0o600)
	os.WriteFile(big, bytes.Repeat([]byte("x"), replContext+1), 0o600)
	env := map[string]string{"FRED_CONFIG_DIR": filepath.Join(dir, "cfg")}
	in := strings.Join([]string{small, small, small, big, small, big, big, "/quit"}, "\n") + "\n"
	code, out, errs := fredRun(t, env, in, "--no-telemetry", "repl")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	loop := "hint: read_file ran 3 times in a row with the same arguments and the same result"
	stuck := "hint: fred-flash-2 struggled 3 turns (cut short, failing or tool-heavy): try /model fred-pro-2"
	if strings.Count(out, loop) != 1 || strings.Count(out, stuck) != 1 {
		t.Fatalf("want one loop hint and one stuck hint:\n%s", out)
	}
	if strings.Index(out, loop) > strings.Index(out, stuck) {
		t.Fatalf("hints out of order:\n%s", out)
	}
}
