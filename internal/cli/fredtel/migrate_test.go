package fredtel

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/fredcode/fredtel/internal/testing/testdb"
)

// run runs fredtel in process with env as its environment.
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

func TestMigrateBothBackends(t *testing.T) {
	testdb.Each(t, func(t *testing.T, be testdb.Backend) {
		url := be.URL(t)
		code, out, errs := run(t, nil, "migrate", "--db", url, "--set", "both")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		for _, want := range []string{"central tables at", "applied migrations v1, v2", "telemetry_tool_calls", "dsc_turns", "17 columns"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		code, out, _ = run(t, nil, "migrate", "--db", url)
		if code != 0 || !strings.Contains(out, "up to date") {
			t.Fatalf("second run: exit %d\n%s", code, out)
		}
	})
}

func TestMigrateDefaultsToTheDataDir(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := run(t, map[string]string{"FREDTEL_DATA_DIR": dir}, "migrate")
	if code != 0 || !strings.Contains(out, "sqlite:"+dir+"/fredtel.db") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
}

func TestMigrateErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"migrate", "--db", "mysql://root:hunter2@db/x"}, 1, "want postgres://"},
		{[]string{"migrate", "--db", "sqlite::memory:", "--set", "all"}, 2, `--set "all": want central, self-hosted or both`},
		{[]string{"migrate", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"migrate", "--db", "postgres://alice:hunter2@127.0.0.1:1/x?connect_timeout=2"}, 1, "alice:***@127.0.0.1:1"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"insights", "--format", "yaml"}, 2, `--format "yaml": want text or json`},
		{[]string{"serve", "--log-format", "xml"}, 2, `--log-format "xml"`},
		{[]string{"keys", "create", "--user", "a b"}, 2, "--user: want"},
	} {
		code, _, errs := run(t, nil, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, code, errs, c.code, c.want)
		}
		if strings.Contains(errs, "hunter2") {
			t.Errorf("%v: stderr shows the password: %s", c.args, errs)
		}
	}
}

// A bad setting, from a flag or the environment, stops a command before it
// does anything: exit 2 and one line naming the setting, never a secret's
// value, never quietly the default.
func TestBadSettings(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"FREDTEL_RATE": "abc"}, []string{"serve"}, `fredtel serve: FREDTEL_RATE "abc": want a number above 0`},
		{map[string]string{"FREDTEL_DB_POOL": "0"}, []string{"serve"}, `fredtel serve: FREDTEL_DB_POOL "0": want an integer from 1 to 1000`},
		{nil, []string{"serve", "--pool", "-1"}, `fredtel serve: --pool "-1": want an integer from 1 to 1000`},
		{map[string]string{"FREDTEL_KEY_CACHE_TTL": "30"}, []string{"serve"}, `fredtel serve: FREDTEL_KEY_CACHE_TTL "30": want a duration`},
		{map[string]string{"FREDTEL_SCHEMA_VERSIONS": "1,9"}, []string{"serve"}, `"9" is not a schema version this build knows`},
		{map[string]string{"FREDTEL_DASHBOARD_TOKEN": "hunter2-secret"}, []string{"dashboard"}, "fredtel dashboard: FREDTEL_DASHBOARD_TOKEN: the dashboard token is 14 characters"},
		{map[string]string{"FREDTEL_LOG_FORMAT": "xml"}, []string{"dashboard"}, `FREDTEL_LOG_FORMAT "xml": want json or text`},
		{map[string]string{"FREDTEL_SIMULATE_KEY": "hunter2-secret"}, []string{"simulate", "--url", "http://127.0.0.1:1"}, "fredtel simulate: FREDTEL_SIMULATE_KEY: want an API key"},
	} {
		code, out, errs := run(t, c.env, c.args...)
		if code != 2 || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, c.want) || strings.Contains(errs, "hunter2") {
			t.Errorf("%v %v: exit %d, stdout %q, stderr %q; want 2 and one line with %q", c.env, c.args, code, out, errs, c.want)
		}
	}
}
