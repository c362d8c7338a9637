package telemetry

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/fredcode/fredtel/internal/testing/testkit"
)

// TestNoHomeMeansNoConfigFolder: with HOME and XDG_CONFIG_HOME unset (or
// relative) and no FRED_CONFIG_DIR there is no config folder, not a shared
// one in /tmp (issue 12 §4: main fell back to /tmp/fred-config). Telemetry
// is off with one warning line, and nothing is written anywhere.
func TestNoHomeMeansNoConfigFolder(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the config folder comes from AppData on Windows")
	}
	for _, env := range []map[string]string{
		{},
		{"HOME": "relative/home", "XDG_CONFIG_HOME": "rel"},
	} {
		if d := ConfigDir(envOf(env)); d != "" {
			t.Fatalf("ConfigDir(%v) = %q, want none", env, d)
		}
	}
	if d := ConfigDir(envOf(map[string]string{"HOME": "/home/a"})); d != filepath.Join("/home/a", ".config", "fred") && runtime.GOOS == "linux" {
		t.Fatalf("ConfigDir with HOME = %q", d)
	}
	shared := filepath.Join(os.TempDir(), "fred-config")
	_, existed := os.Lstat(shared)
	var stderr testkit.Buffer
	opts, sink := centralOptions("", &stderr)
	opts.Getenv = envOf(map[string]string{})
	s := Start(opts, SessionInfo{Model: "fred-flash-2", AgentsMD: "agents"})
	tr := s.BeginTurn("act", "fred-flash-2")
	tr.End(TurnResult{FinishReason: "stop"})
	s.Close(t.Context())
	if r := s.Route(); r.Kind != Off || r.Rule != RuleConfigDir {
		t.Errorf("route %v (%s), want off: %s", r.Kind, r.Rule, RuleConfigDir)
	}
	if w := stderr.String(); strings.Count(w, "\n") != 1 || !strings.Contains(w, "FRED_CONFIG_DIR") {
		t.Errorf("want one warning line saying to set FRED_CONFIG_DIR, got %q", w)
	}
	if _, n := sink.all(); n != 0 {
		t.Errorf("%d records sent without a config folder", n)
	}
	if _, err := os.Lstat(shared); err == nil && existed != nil {
		t.Error("a shared fred-config folder appeared in the temporary folder")
	}
	for _, f := range []func() error{
		func() error { return SetTelemetry("", false) },
		func() error { return SaveCredentials("", Credentials{APIKey: "fred_live_ab12cd34ef56gh78ij90kl"}) },
		func() error { _, err := LoadCredentials(""); return err },
		func() error { _, err := installKey(""); return err },
	} {
		if err := f(); !errors.Is(err, ErrConfigDir) {
			t.Errorf("with no config folder: %v, want ErrConfigDir", err)
		}
	}
}

// TestConfigFolderMustBeTheUsersOwn: a folder that is a symbolic link,
// group- or world-writable, or someone else's is not read: its key and
// preference do not turn telemetry on, and nothing is written into it.
func TestConfigFolderMustBeTheUsersOwn(t *testing.T) {
	for _, c := range []struct {
		name string
		make func(t *testing.T, dir string) string
		why  string
	}{
		{"mode 0777", func(t *testing.T, dir string) string { os.Chmod(dir, 0o777); return dir }, "writable by others"},
		{"mode 0722", func(t *testing.T, dir string) string { os.Chmod(dir, 0o722); return dir }, "writable by others"},
		{"symbolic link", func(t *testing.T, dir string) string {
			link := filepath.Join(t.TempDir(), "link")
			os.Symlink(dir, link)
			return link
		}, "symbolic link"},
		{"another user's", func(t *testing.T, dir string) string {
			if os.Geteuid() != 0 {
				t.Skip("making a folder another user's takes root (chown); the other cases run as anyone")
			}
			os.Chown(dir, 65534, 65534)
			return dir
		}, "belongs to another user"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := c.make(t, configDir(t, true, true))
			for _, err := range []error{
				func() error { _, err := LoadPrefs(dir); return err }(),
				func() error { _, err := LoadCredentials(dir); return err }(),
				SetTelemetry(dir, true),
				CheckConfigDir(dir),
			} {
				if !errors.Is(err, ErrConfigDir) || !strings.Contains(err.Error(), c.why) {
					t.Errorf("got %v, want ErrConfigDir saying %q", err, c.why)
				}
			}
			var stderr testkit.Buffer
			opts, sink := centralOptions(dir, &stderr)
			s := Start(opts, SessionInfo{Model: "fred-flash-2"})
			s.Close(t.Context())
			if r := s.Route(); r.Kind != Off || r.Rule != RuleConfigDir {
				t.Errorf("route %v (%s), want off", r.Kind, r.Rule)
			}
			if strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("want one warning line, got %q", stderr.String())
			}
			if _, n := sink.all(); n != 0 {
				t.Errorf("%d records sent", n)
			}
		})
	}
}

// TestConfigFilesAreNotFollowed: credentials.json or telemetry.json as a
// link (to a key or preference file elsewhere) is not read.
func TestConfigFilesAreNotFollowed(t *testing.T) {
	other := configDir(t, true, true)
	dir := t.TempDir()
	for _, f := range []string{credsFile, prefsFile} {
		if err := os.Symlink(filepath.Join(other, f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := LoadCredentials(dir); err == nil || c.APIKey != "" {
		t.Errorf("credentials read through a link: %v %v", c, err)
	}
	if _, err := LoadPrefs(dir); err == nil {
		t.Error("preferences read through a link")
	}
	// Writing replaces the link, never the file it points to.
	before, _ := os.ReadFile(filepath.Join(other, prefsFile))
	if err := SetTelemetry(dir, false); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(other, prefsFile))
	if string(before) != string(after) {
		t.Error("SetTelemetry wrote through a link")
	}
	if fi, err := os.Lstat(filepath.Join(dir, prefsFile)); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("preferences after SetTelemetry: %v %v, want a regular file 0600", fi.Mode(), err)
	}
}

// TestSecretsCannotBePrinted: a Route, the Credentials and a
// CentralConfig hold a key or a database URL; no fmt verb nor slog shows it.
func TestSecretsCannotBePrinted(t *testing.T) {
	const key = "fred_live_SECRETab12cd34ef56gh78ij90"
	const pw = "S3cretDbPw"
	values := []any{
		resolve(routeInput{getenv: envOf(map[string]string{"DSC_TELEMETRY_DB_URL": "postgres://a:" + pw + "@db/x"})}),
		resolve(routeInput{getenv: envOf(map[string]string{"FRED_API_URL": "http://u:" + pw + "@api"}), creds: Credentials{APIKey: key}}),
		Credentials{APIKey: key},
		CentralConfig{APIURL: "http://u:" + pw + "@api", APIKey: key},
	}
	for _, v := range values {
		var b strings.Builder
		for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			fmt.Fprintf(&b, f+"\n", v)
			fmt.Fprintf(&b, f+"\n", &v)
			fmt.Fprintf(&b, f+"\n", []any{v})
		}
		slog.New(slog.NewTextHandler(&b, nil)).Info("m", "v", v)
		slog.New(slog.NewJSONHandler(&b, nil)).Info("m", "v", v)
		if out := b.String(); strings.Contains(out, "SECRET") || strings.Contains(out, pw) {
			t.Errorf("%T printed with a secret:\n%s", v, out)
		}
	}
}
