package fred

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fredcode/fredtel/internal/apikey"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
)

// usersServer answers /v1/whoami with the user id of each known key.
func usersServer(t *testing.T, users map[string]string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := users[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if r.URL.Path != "/v1/whoami" || !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"user_id":` + u + `}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// spoolSome puts a batch body in dir's spool under a name the sender writes.
func spoolSome(t *testing.T, dir string) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "spool"), 0o700)
	if err := os.WriteFile(filepath.Join(dir, "spool", "1700000000000000000-0123456789ab.json"), []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, _ := central.SpoolSize(dir); n != 1 {
		t.Fatalf("spool of %d batches", n)
	}
}

// TestLoginAsAnotherUserPurgesTheSpool: records spooled under one user's
// key are never sent under another's (issue 12 §4): `fred logout` deletes
// the spool, and so does `fred login` with a key of another user (or when
// nobody was logged in); the same key, or another key of the same user,
// keeps it.
func TestLoginAsAnotherUserPurgesTheSpool(t *testing.T) {
	const (
		alice1 = "fred_live_alice1alice1alice1alice1"
		alice2 = "fred_live_alice2alice2alice2alice2"
		bob    = "fred_live_bobbobbobbobbobbobbobbob"
	)
	api := usersServer(t, map[string]string{alice1: `"alice"`, alice2: `"alice"`, bob: `"bob"`})
	dir := t.TempDir()
	env := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": api}
	login := func(key string) string {
		code, out, errs := fredRun(t, env, "", "login", "--key", key)
		if code != 0 {
			t.Fatalf("login: exit %d %s %s", code, out, errs)
		}
		return out
	}
	if out := login(alice1); !strings.Contains(out, "logged in as alice") {
		t.Fatal(out)
	}
	for _, c := range []struct {
		key  string
		kept bool
	}{
		{alice1, true},  // the same key again
		{alice2, true},  // another key of the same user
		{bob, false},    // another user
		{alice1, false}, // and back
	} {
		spoolSome(t, dir)
		out := login(c.key)
		n, _ := central.SpoolSize(dir)
		if (n == 1) != c.kept {
			t.Errorf("login with %s: %d spooled batches left, want kept=%v (%q)", apikey.Shown(c.key), n, c.kept, out)
		}
		if !c.kept && !strings.Contains(out, "deleted 1 unsent telemetry batch of the previous login") {
			t.Errorf("login did not say it deleted the spool: %q", out)
		}
	}
	spoolSome(t, dir)
	if code, out, _ := fredRun(t, env, "", "logout"); code != 0 || !strings.Contains(out, "unsent telemetry deleted") {
		t.Fatalf("logout: %d %q", code, out)
	}
	if n, _ := central.SpoolSize(dir); n != 0 {
		t.Errorf("logout left %d spooled batches", n)
	}
	// Logged out, a spool can only be an earlier login's: it goes.
	spoolSome(t, dir)
	login(bob)
	if n, _ := central.SpoolSize(dir); n != 0 {
		t.Errorf("login after logout left %d spooled batches", n)
	}
}

// TestServerTextIsCleanedForTheTerminal: the user id whoami answers reaches
// the terminal (and the credentials file) without control characters and
// bounded in length.
func TestServerTextIsCleanedForTheTerminal(t *testing.T) {
	hostile := `"\u001b]0;pwned\u0007\u001b[2Jalice\r\nfred: key accepted` + strings.Repeat("x", 5000) + `"`
	api := usersServer(t, map[string]string{goodKey: hostile})
	dir := t.TempDir()
	code, out, errs := fredRun(t, map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": api}, "", "login", "--key", goodKey)
	if code != 0 {
		t.Fatalf("exit %d %s", code, errs)
	}
	line, _, _ := strings.Cut(out, "\n")
	if strings.ContainsAny(out+errs, "\x1b\x07\r") || utf8.RuneCountInString(line) > 120 {
		t.Errorf("login printed the server's text raw: %q", line)
	}
	c, _ := telemetry.LoadCredentials(dir)
	if strings.ContainsAny(c.User, "\x1b\x07\r\n") || utf8.RuneCountInString(c.User) > maxUserID {
		t.Errorf("stored user %.80q", c.User)
	}
}

// TestAPIURLSecretsNeverPrinted: a FRED_API_URL with user-info appears in no
// message of login, status or the sender (issue 12 §5).
func TestAPIURLSecretsNeverPrinted(t *testing.T) {
	for _, api := range []string{
		"http://user:SECRETpw@127.0.0.1:1",
		"http://SECRETtoken@127.0.0.1:1/",
		"http://user:SECRET/pw@127.0.0.1:1", // not a URL Go can parse
		"http://user:SECRETpw@127.0.0.1:bad",
	} {
		dir := t.TempDir()
		env := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": api}
		_, out1, errs1 := fredRun(t, env, "", "login", "--key", goodKey)
		telemetry.SavePrefs(dir, telemetry.Prefs{NoticeShownAt: "2026-01-01T00:00:00Z"})
		_, out2, errs2 := fredRun(t, env, "", "telemetry", "status")
		_, out3, errs3 := fredRun(t, env, "prompt\n", "repl")
		all := out1 + errs1 + out2 + errs2 + out3 + errs3
		if strings.Contains(all, "SECRET") {
			t.Errorf("FRED_API_URL=%s: a secret was printed:\n%s", api, all)
		}
		if !strings.Contains(all, "127.0.0.1") {
			t.Errorf("FRED_API_URL=%s: the endpoint is not named at all:\n%s", api, all)
		}
	}
}
