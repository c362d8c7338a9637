package canary_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	fredcli "github.com/fredcode/fredtel/internal/cli/fred"
	"github.com/fredcode/fredtel/internal/cli/fredtel"
	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/proof"
	"github.com/fredcode/fredtel/telemetry"
)

// The classes of issue 12 §4 and §5, through the real fred command and the
// real server: a config folder nobody else controls, and secrets masked in
// every form. hardening_mutants_test.go removes each protection.

func token(t *testing.T, kind string) string {
	var b [6]byte
	rand.Read(b[:])
	return "canary_" + hex.EncodeToString(b[:]) + "_" + kind
}

// fredIn runs the fred command in-process with stdin.
func fredIn(getenv func(string) string, stdin string, args ...string) (int, string) {
	var out, errb testkit.Buffer
	code := fredcli.Run(context.Background(), args, getenv, strings.NewReader(stdin), &out, &errb)
	return code, out.String() + errb.String()
}

// tap forwards to the real server and keeps every body it saw, so a check
// sees what reached the wire even when the server refuses it.
type tap struct {
	mu     sync.Mutex
	bodies []string
}

func (p *tap) posted() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.bodies...)
}

func newTap(t *testing.T, upstream string) (*tap, string) {
	p := &tap{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(io.LimitReader(r.Body, 32<<20))
		body := raw
		if zr, err := gzip.NewReader(bytes.NewReader(raw)); err == nil {
			body, _ = io.ReadAll(zr)
		}
		p.mu.Lock()
		p.bodies = append(p.bodies, r.Method+" "+r.URL.Path+" "+string(body))
		p.mu.Unlock()
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.RequestURI(), bytes.NewReader(raw))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return p, srv.URL
}

// TestFolderAttacks: the config folder, spool/ and audit/ must be the
// user's own. Each attack of issue 12 §4 is set up as another local user
// would, then the user works as usual (a REPL session, `fred telemetry
// show`, `off`, `logout`, `login`): nothing is sent (the tap sees no
// request, the central tables hold no row), nothing of the private folder
// is read, shown or deleted, and the user is told once.
func TestFolderAttacks(t *testing.T) {
	db := testdb.Postgres(t)
	srv := testkit.StartServer(t, db, "")
	alice := testkit.CreateKey(t, db, "alice")
	mallory := testkit.CreateKey(t, db, "mallory")

	// A batch as the sender spools it, to plant where it must not be sent
	// from: made by a session of alice's to an endpoint that never answers.
	batchDir := filepath.Join(t.TempDir(), "batch")
	fixture.LogIn(t, batchDir, alice)
	fredIn(mapEnv(map[string]string{"FRED_CONFIG_DIR": batchDir, "FRED_API_URL": testkit.Blackhole(t)}), "a prompt\n", "repl")
	spooled, _ := os.ReadDir(filepath.Join(batchDir, "spool"))
	if len(spooled) == 0 {
		t.Fatal("the setup session spooled nothing")
	}
	batch, err := os.ReadFile(filepath.Join(batchDir, "spool", spooled[0].Name()))
	if err != nil {
		t.Fatal(err)
	}

	type attack struct {
		name  string
		setup func(t *testing.T, secret string) (env map[string]string, private string)
		warn  string // the one warning line says this
	}
	privateFolder := func(t *testing.T, secret string) string {
		p := filepath.Join(t.TempDir(), "private")
		os.Mkdir(p, 0o700)
		files := map[string]string{
			"1700000000000000000-aaaaaaaaaaaa.json": string(batch),
			"1700000000000000001-bbbbbbbbbbbb.json": secret,
			"diary.txt":                             secret,
		}
		for i := 0; i < 15; i++ {
			files[fmt.Sprintf("%020d-sent-1700000000000000000-%012x.json", 1700000000000000000+i, i)] = secret
		}
		for n, b := range files {
			os.WriteFile(filepath.Join(p, n), []byte(b), 0o600)
		}
		return p
	}
	symlinked := func(sub string) func(*testing.T, string) (map[string]string, string) {
		return func(t *testing.T, secret string) (map[string]string, string) {
			dir := fixture.LoggedIn(t, alice)
			p := privateFolder(t, secret)
			os.Symlink(p, filepath.Join(dir, sub))
			return map[string]string{"FRED_CONFIG_DIR": dir}, p
		}
	}
	attacks := []attack{
		{"symlinked spool", symlinked("spool"), "symbolic link"},
		{"symlinked audit", symlinked("audit"), "symbolic link"},
		{"folder anyone may write (0777) with another user's key", func(t *testing.T, secret string) (map[string]string, string) {
			dir := filepath.Join(t.TempDir(), "fred-config")
			fixture.LogIn(t, dir, mallory)
			os.Chmod(dir, 0o777)
			return map[string]string{"FRED_CONFIG_DIR": dir}, ""
		}, "writable by others"},
		{"folder another user made, with their key", func(t *testing.T, secret string) (map[string]string, string) {
			if os.Geteuid() != 0 {
				t.Skip("making a folder another user's takes root (chown); the mode case covers the check as anyone")
			}
			dir := filepath.Join(t.TempDir(), "fred-config")
			fixture.LogIn(t, dir, mallory)
			os.Chown(dir, 65534, 65534)
			return map[string]string{"FRED_CONFIG_DIR": dir}, ""
		}, "belongs to another user"},
		{"no home", func(t *testing.T, secret string) (map[string]string, string) {
			// As on main's fallback: a folder in the temporary folder,
			// logged in with another user's key. With no home there must
			// be no config folder at all.
			return map[string]string{"TMPDIR": t.TempDir()}, ""
		}, "FRED_CONFIG_DIR"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			secret := token(t, "private")
			vars, private := a.setup(t, secret)
			var before []byte
			if private != "" {
				before, _ = folder(t, private)
			}
			p, url := newTap(t, "http://"+srv.URL)
			vars["FRED_API_URL"] = url
			env := mapEnv(vars)
			var out strings.Builder
			_, o := fredIn(env, "first prompt\nsecond prompt\n", "repl")
			out.WriteString(o)
			warnings := 0
			for _, l := range strings.Split(o, "\n") {
				if strings.HasPrefix(l, "fred: ") {
					warnings++
				}
			}
			if warnings != 1 || !strings.Contains(o, a.warn) {
				t.Errorf("the session: want one warning line saying %q, got:\n%s", a.warn, o)
			}
			cmds := [][]string{{"telemetry", "show"}, {"telemetry"}, {"telemetry", "off"}, {"logout"}}
			if a.name == "no home" {
				// Nothing that writes: under its mutant, a write would
				// land in the machine's shared temporary folder.
				cmds = cmds[:2]
			}
			for _, args := range cmds {
				_, o := fredIn(env, "", args...)
				out.WriteString(o)
			}
			if got := p.posted(); len(got) != 0 {
				t.Errorf("%d requests reached the server; the first: %.300s", len(got), got[0])
			}
			if n := testdb.Rows(t, db); n != 0 {
				t.Errorf("%d rows in the central tables", n)
			}
			if strings.Contains(out.String(), secret) {
				t.Errorf("the commands printed the private folder's text:\n%.2000s", out.String())
			}
			if private != "" {
				after, _ := folder(t, private)
				if !bytes.Equal(before, after) {
					t.Error("the private folder changed")
				}
			}
			proof.Figure(t, "canary", "config folder: "+a.name, "nothing sent (0 requests, 0 rows), nothing of the private folder read, shown or deleted; one warning line (%q)", a.warn)
		})
	}

	// A file of the user's own spool, of a spooled batch's name, holding a
	// field no batch may carry: it never reaches the wire.
	t.Run("smuggled field in the spool", func(t *testing.T) {
		secret := token(t, "smuggled")
		dir := fixture.LoggedIn(t, alice)
		smuggled := strings.Replace(string(batch), `"turns":[{`, `"turns":[{"user_input":"`+secret+`",`, 1)
		if smuggled == string(batch) {
			t.Fatal("the batch has no turn")
		}
		os.MkdirAll(filepath.Join(dir, "spool"), 0o700)
		planted := filepath.Join(dir, "spool", "1600000000000000000-000000000001.json")
		os.WriteFile(planted, []byte(smuggled), 0o600)
		p, url := newTap(t, "http://"+srv.URL)
		_, out := fredIn(mapEnv(map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": url}), "a prompt\n", "repl")
		posted := p.posted()
		if len(posted) == 0 {
			t.Fatalf("the session sent nothing at all:\n%s", out)
		}
		for _, b := range posted {
			if strings.Contains(b, secret) {
				t.Errorf("the smuggled field reached the wire: %.300s", b)
			}
		}
		if _, err := os.Stat(planted); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the smuggled file is still in the spool (%v)", err)
		}
		// The session's own batch may be spooled when the server answered
		// after the close budget (a busy machine); it must not carry the field.
		left, _ := os.ReadDir(filepath.Join(dir, "spool"))
		for _, e := range left {
			if b, _ := os.ReadFile(filepath.Join(dir, "spool", e.Name())); bytes.Contains(b, []byte(secret)) {
				t.Errorf("spool file %s carries the smuggled field", e.Name())
			}
		}
		proof.Figure(t, "canary", "spool: a planted file with a field off the allowlist", "validated before sending with the server's own validator: never on the wire (%d requests seen), deleted", len(posted))
	})
}

// TestSecretsMasked: a password written in any form — URL user-info,
// ?password=, ?sslpassword=, a keyword/value connection string, a URL Go
// cannot parse — and a FRED_API_URL with user-info never appear in what
// `fred` (status, a session that cannot connect, login) or `fredtel
// migrate` print.
func TestSecretsMasked(t *testing.T) {
	var forms []string
	dbURLs := map[string]string{}
	for _, f := range []string{
		"postgres://alice:%s@127.0.0.1:1/fred?connect_timeout=1",
		"postgresql://alice@127.0.0.1:1/fred?password=%s&connect_timeout=1",
		"postgres://alice@127.0.0.1:1/fred?sslmode=require&sslpassword=%s&connect_timeout=1",
		"host=127.0.0.1 port=1 user=alice password=%s dbname=fred",
		"host=127.0.0.1 port=1 user=alice password='%s with spaces' dbname=fred",
		"postgres://alice:%s/x@127.0.0.1:1/fred",
	} {
		s := token(t, "dbpassword")
		dbURLs[fmt.Sprintf(f, s)] = s
		forms = append(forms, f)
	}
	apiURLs := map[string]string{}
	for _, f := range []string{"http://alice:%s@127.0.0.1:1", "http://%s@127.0.0.1:1/", "http://alice:%s@127.0.0.1:bad"} {
		s := token(t, "apisecret")
		apiURLs[fmt.Sprintf(f, s)] = s
		forms = append(forms, f)
	}
	const key = "fred_live_0123456789abcdefghijKLMN"
	for raw, secret := range dbURLs {
		env := mapEnv(map[string]string{"FRED_CONFIG_DIR": t.TempDir(), "DSC_TELEMETRY_DB_URL": raw})
		_, status := fredIn(env, "", "telemetry", "status")
		_, session := fredIn(env, "a prompt\n", "repl")
		var out, errb testkit.Buffer
		fredtel.Run(context.Background(), []string{"migrate", "--db", raw}, mapEnv(nil), &out, &errb)
		all := status + session + out.String() + errb.String()
		if strings.Contains(all, secret) {
			t.Errorf("a password was printed:\n%s", all)
		}
		if !strings.Contains(all, "***") {
			t.Errorf("nothing was masked: the location is not named at all?\n%s", all)
		}
	}
	for raw, secret := range apiURLs {
		dir := t.TempDir()
		env := mapEnv(map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": raw})
		var all strings.Builder
		_, o := fredIn(env, "", "login", "--key", key)
		all.WriteString(o)
		telemetry.SavePrefs(dir, telemetry.Prefs{NoticeShownAt: "2026-01-01T00:00:00Z"})
		for _, args := range [][]string{{"telemetry", "status"}, {"repl"}} {
			_, o := fredIn(env, "a prompt\n", args...)
			all.WriteString(o)
		}
		if strings.Contains(all.String(), secret) {
			t.Errorf("FRED_API_URL's secret was printed:\n%s", all.String())
		}
		if !strings.Contains(all.String(), "127.0.0.1") {
			t.Errorf("the endpoint is not named at all:\n%s", all.String())
		}
	}
	proof.Figure(t, "canary", "secrets in every form", "%d forms of a database password or API URL credential (%s): none in the output of fred telemetry status, a session that cannot connect, fred login or fredtel migrate",
		len(forms), strings.Join(forms, " · "))
}
