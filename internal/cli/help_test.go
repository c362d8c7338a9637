package cli_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fredcode/fredtel/internal/cli/fred"
	"github.com/fredcode/fredtel/internal/cli/fredtel"
)

var update = flag.Bool("update", false, "rewrite testdata/help/*.golden from the commands' help")

// TestHelp compares each command's help with its golden file
// (go test ./internal/cli -update rewrites them). The environment holds
// values the help must not show: a password in a URL, a token.
func TestHelp(t *testing.T) {
	env := map[string]string{"FREDTEL_DATA_DIR": "/data", "FREDTEL_DB_URL": "postgres://alice:hunter2@db/x",
		"FREDTEL_DASHBOARD_TOKEN": "hunter2hunter2hunter2", "FREDTEL_SIMULATE_KEY": "fred_live_hunter2hunter2hunter2hunter2"}
	getenv := func(k string) string { return env[k] }
	run := func(bin string, args ...string) (int, string) {
		var out, errb bytes.Buffer
		var code int
		if bin == "fred" {
			code = fred.Run(context.Background(), args, getenv, strings.NewReader(""), &out, &errb)
		} else {
			code = fredtel.Run(context.Background(), args, getenv, &out, &errb)
		}
		return code, out.String() + errb.String()
	}
	for _, c := range [][]string{
		{"fred"}, {"fred", "login"}, {"fred", "otel-relay"}, {"fred", "telemetry", "replay"},
		{"fredtel"}, {"fredtel", "migrate"}, {"fredtel", "serve"}, {"fredtel", "keys", "create"}, {"fredtel", "insights"},
		{"fredtel", "dashboard"}, {"fredtel", "simulate"}, {"fredtel", "demo"},
	} {
		name := strings.Join(c, "-")
		code, got := run(c[0], append(c[1:], "-h")...)
		if code != 0 || strings.Contains(got, "hunter2") {
			t.Errorf("%s -h: exit %d, or a secret shown:\n%s", name, code, got)
		}
		path := filepath.Join("testdata", "help", name+".golden")
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test ./internal/cli -update writes it)", err)
		}
		if got != string(want) {
			t.Errorf("%s -h differs from %s (go test ./internal/cli -update rewrites it):\n%s", name, path, got)
		}
	}
}
