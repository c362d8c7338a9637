package relay

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testkit"
	"github.com/fredcode/fredtel/telemetry"
)

func TestDebugDump(t *testing.T) {
	dir := fixturesDir(t)
	folders, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, folder := range folders {
		if fi, err := os.Stat(folder); err != nil || !fi.IsDir() {
			continue
		}
		var errs testkit.Buffer
		env := map[string]string{"FRED_TELEMETRY_DEBUG": "1", "FRED_CONFIG_DIR": t.TempDir(), "FRED_API_URL": "http://127.0.0.1:1"}
		telemetry.SaveCredentials(env["FRED_CONFIG_DIR"], telemetry.Credentials{APIKey: "fred_live_ab12cd34ef56gh78ij90kl"})
		telemetry.SavePrefs(env["FRED_CONFIG_DIR"], telemetry.Prefs{NoticeShownAt: "2026-01-02T03:04:05Z"})
		r := New(Options{Telemetry: telemetry.Options{Getenv: func(k string) string { return env[k] }, Stderr: &errs, FlushInterval: time.Hour}})
		for _, rq := range fixtureRequests(t, folder) {
			if c := send(t, r, rq, false); c != 200 {
				t.Errorf("%s: %d", rq.name, c)
			}
		}
		r.Close(context.Background())
		t.Logf("=== %s %+v\n%s", filepath.Base(folder), r.Stats(), errs.String())
	}
}
