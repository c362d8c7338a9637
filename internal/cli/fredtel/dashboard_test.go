package fredtel

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testdb"
)

// dashBuffer is a bytes.Buffer a running command writes while the test
// reads it.
type dashBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *dashBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *dashBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs fredtel with args until the test ends and returns the
// address it listens on.
func dashStart(t *testing.T, env map[string]string, args ...string) (string, *dashBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb dashBuffer
	done := make(chan int, 1)
	go func() { done <- Run(ctx, args, func(k string) string { return env[k] }, &out, &errb) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("%s exited %d: %s", args[0], code, errb.String())
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop", args[0])
		}
	})
	re := regexp.MustCompile(`listening on http://(\S+)`)
	for i := 0; i < 300; i++ {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1], &out
		}
		select {
		case code := <-done:
			t.Fatalf("%s exited %d: %s%s", args[0], code, out.String(), errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not start: %s", args[0], errb.String())
	return "", nil
}

func dashFetch(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 30 * time.Second}
	r, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r, string(b)
}

func TestDashboardCommand(t *testing.T) {
	db := testdb.SQLite(t)
	if code, _, errs := run(t, nil, "migrate", "--db", db, "--set", "self-hosted"); code != 0 {
		t.Fatal(errs)
	}
	addr, out := dashStart(t, nil, "dashboard", "--db", db, "--tables", "self-hosted", "--addr", "127.0.0.1:0")
	if !strings.Contains(out.String(), "dashboard: http://"+addr+"/dashboard/ (loopback only, no token)") {
		t.Errorf("output: %s", out.String())
	}
	r, _ := dashFetch(t, "http://"+addr+"/")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/dashboard/" {
		t.Errorf("/: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	r, body := dashFetch(t, "http://"+addr+"/dashboard/")
	if r.StatusCode != 200 || !strings.Contains(body, "fredtel simulate --db DATABASE_URL --sessions 300 --seed 1") || !strings.Contains(body, "self-hosted tables") {
		t.Errorf("empty self-hosted dashboard: %d\n%s", r.StatusCode, body)
	}
}

// TestServeMountsDashboard: fredtel serve answers the ingest API and, with
// a token from the environment, the dashboard's login.
func TestServeMountsDashboard(t *testing.T) {
	const tok = "serve-dashboard-token-0123456789"
	db := testdb.SQLite(t)
	addr, out := dashStart(t, map[string]string{"FREDTEL_DASHBOARD_TOKEN": tok}, "serve", "--db", db, "--addr", "127.0.0.1:0")
	if !strings.Contains(out.String(), "dashboard: http://"+addr+"/dashboard/ (log in with the dashboard token)") {
		t.Errorf("output: %s", out.String())
	}
	if r, _ := dashFetch(t, "http://"+addr+"/healthz"); r.StatusCode != 200 {
		t.Errorf("healthz: %d", r.StatusCode)
	}
	r, _ := dashFetch(t, "http://"+addr+"/dashboard/")
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/dashboard/login") {
		t.Errorf("dashboard without the cookie: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if strings.Contains(out.String(), tok) {
		t.Errorf("the token is printed")
	}
}

func TestDashboardErrors(t *testing.T) {
	const tok = "env-token-must-not-be-printed-0123"
	env := map[string]string{"FREDTEL_DASHBOARD_TOKEN": tok}
	for _, c := range []struct {
		args []string
		env  map[string]string
		code int
		want string
	}{
		{[]string{"dashboard", "--tables", "all"}, nil, 2, `--tables "all": want central or self-hosted`},
		{[]string{"dashboard", "--addr", "0.0.0.0:0", "--db", "sqlite::memory:"}, nil, 2, "is not a loopback address: give a token"},
		{[]string{"dashboard", "--dashboard-token", "short", "--db", "sqlite::memory:"}, nil, 2, "the dashboard token is 5 characters: use at least 16"},
		{[]string{"dashboard", "--db", "mysql://root:hunter2@db/x"}, nil, 1, "want postgres://"},
		{[]string{"dashboard", "-h"}, env, 0, "-dashboard-token TOKEN"},
		{[]string{"serve", "-h"}, env, 0, "-dashboard-token TOKEN"},
		{[]string{"serve", "--dashboard-token", "short", "--db", testdb.SQLite(t), "--addr", "127.0.0.1:0"}, nil, 2, "use at least 16"},
	} {
		code, out, errs := run(t, c.env, c.args...)
		if code != c.code || !strings.Contains(out+errs, c.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", c.args, code, c.code, c.want, out, errs)
		}
		if strings.Contains(out+errs, tok) || strings.Contains(out+errs, "hunter2") {
			t.Errorf("%v printed a secret:\n%s%s", c.args, out, errs)
		}
	}
}
