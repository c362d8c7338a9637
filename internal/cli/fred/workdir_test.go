package fred

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fredcode/fredtel/telemetry"
)

// debugSessions runs `fred repl` on stdin with FRED_TELEMETRY_DEBUG=1 (the
// central route prints its batches on stderr) and returns the session
// records and the slash commands it printed.
func debugSessions(t *testing.T, stdin string) (sessions []map[string]any, commands []string) {
	t.Helper()
	dir := t.TempDir()
	telemetry.SaveCredentials(dir, telemetry.Credentials{APIKey: goodKey})
	telemetry.SavePrefs(dir, telemetry.Prefs{NoticeShownAt: "2026-01-01T00:00:00Z"})
	code, _, errs := fredRun(t, map[string]string{"FRED_CONFIG_DIR": dir, "FRED_TELEMETRY_DEBUG": "1"}, stdin, "repl")
	if code != 0 {
		t.Fatalf("fred repl: exit %d\n%s", code, errs)
	}
	for _, line := range strings.Split(errs, "\n") {
		i := strings.Index(line, "{")
		if !strings.Contains(line, "telemetry debug: batch") || i < 0 {
			continue
		}
		var b struct {
			Sessions []map[string]any `json:"sessions"`
			Events   []struct {
				Name  string            `json:"name"`
				Props map[string]string `json:"props"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(line[i:]), &b); err != nil {
			t.Fatalf("a debug batch is not JSON: %v\n%s", err, line)
		}
		sessions = append(sessions, b.Sessions...)
		for _, e := range b.Events {
			if e.Name == "slash_command" {
				commands = append(commands, e.Props["command"])
			}
		}
	}
	if len(sessions) == 0 {
		t.Fatalf("no session record printed:\n%s", errs)
	}
	return sessions, commands
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// TestReplDescribesTheWorkingDirectory: `fred repl` records git_dirty and
// agents_md_hash from the directory it runs in: null outside a repository
// and without AGENTS.md, false in a clean one, true with a change, and an
// HMAC of AGENTS.md (never its text) when there is one.
func TestReplDescribesTheWorkingDirectory(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("these tests need git on PATH")
	}
	const agents = "# AGENTS.md\nRun the CANARY-agents tests first.\n"
	for _, c := range []struct {
		name     string
		setup    func(t *testing.T, dir string)
		dirty    any // nil, true or false
		agentsMD bool
	}{
		{"not a repository, no AGENTS.md", func(t *testing.T, dir string) {}, nil, false},
		{"not a repository, AGENTS.md", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "AGENTS.md"), []byte(agents), 0o644)
		}, nil, true},
		{"clean repository with AGENTS.md", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "AGENTS.md"), []byte(agents), 0o644)
			git(t, dir, "init", "-q")
			git(t, dir, "add", "AGENTS.md")
			git(t, dir, "commit", "-q", "-m", "init")
		}, false, true},
		{"repository with a change, no AGENTS.md", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n"), 0o644)
			git(t, dir, "init", "-q")
			git(t, dir, "add", "main.go")
			git(t, dir, "commit", "-q", "-m", "init")
			os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main // edited\n"), 0o644)
		}, true, false},
		{"repository with an untracked file", func(t *testing.T, dir string) {
			git(t, dir, "init", "-q")
			git(t, dir, "commit", "-q", "--allow-empty", "-m", "init")
			os.WriteFile(filepath.Join(dir, "new.go"), []byte("package main\n"), 0o644)
		}, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.setup(t, dir)
			t.Chdir(dir)
			sessions, _ := debugSessions(t, "/quit\n")
			for _, s := range sessions {
				if s["git_dirty"] != c.dirty {
					t.Errorf("git_dirty %v, want %v", s["git_dirty"], c.dirty)
				}
				h, _ := s["agents_md_hash"].(string)
				if c.agentsMD != (len(h) == 64) || (!c.agentsMD && s["agents_md_hash"] != nil) {
					t.Errorf("agents_md_hash %v, want a hash: %v", s["agents_md_hash"], c.agentsMD)
				}
				if js, _ := json.Marshal(s); strings.Contains(string(js), "CANARY") || strings.Contains(string(js), dir) {
					t.Errorf("the session record holds AGENTS.md's text or the directory: %s", js)
				}
			}
		})
	}
}

// TestReplRecordsSlashTelemetry: /telemetry is recorded like every other
// command (it is in the catalog, and was never recorded, so it would look
// dead).
func TestReplRecordsSlashTelemetry(t *testing.T) {
	t.Chdir(t.TempDir())
	_, cmds := debugSessions(t, "/telemetry\n/help\n/telemetry status\n/made-up\n/quit\n")
	if got := strings.Join(cmds, " "); got != "telemetry help telemetry other quit" {
		t.Errorf("slash commands recorded: %s; want telemetry help telemetry other quit", got)
	}
}
