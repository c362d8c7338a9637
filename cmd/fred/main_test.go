package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/telemetry"
)

// These tests build the real fred binary and run it as a user would, each
// run with its own config dir and a clean environment.

var fredBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fred-bin")
	if err == nil {
		fredBin, err = testkit.Build(context.Background(), dir, "cmd/fred")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const key = "fred_live_0123456789abcdefghijKLMN"

// script is what the user types into the stand-in REPL; CANARY texts must
// never reach anything central.
const script = "CANARY-prompt-one please look\n/model fred-pro-2\n/mode plan\n/model CANARY-model with spaces\nCANARY-prompt-two again\n/quit\n"

type user struct {
	cfg, home string
	env       []string
}

func newUser(t *testing.T, loggedIn, noticeShown bool, extra ...string) *user {
	u := &user{cfg: filepath.Join(t.TempDir(), "cfg"), home: t.TempDir()}
	if loggedIn {
		if err := telemetry.SaveCredentials(u.cfg, telemetry.Credentials{APIKey: key}); err != nil {
			t.Fatal(err)
		}
	}
	if noticeShown {
		telemetry.SavePrefs(u.cfg, telemetry.Prefs{NoticeShownAt: "2026-01-01T00:00:00Z"})
	}
	// FRED_TELEMETRY_DEBUG makes the central route print what it would
	// send: any central record shows up on stderr.
	u.env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + u.home, "FRED_CONFIG_DIR=" + u.cfg,
		"FRED_TELEMETRY_DEBUG=1", "FRED_API_URL=http://127.0.0.1:1"}, extra...)
	return u
}

func (u *user) run(t *testing.T, stdin string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(fredBin, args...)
	cmd.Env = u.env
	cmd.Dir = u.home
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("fred %v: %v\n%s%s", args, err, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

func TestOffRoutesSendAndWriteNothing(t *testing.T) {
	for _, c := range []struct {
		name   string
		u      func(t *testing.T) *user
		args   []string
		status string
	}{
		{"--no-telemetry", func(t *testing.T) *user { return newUser(t, true, true) }, []string{"--no-telemetry", "repl"}, "off for this session (--no-telemetry)"},
		{"DO_NOT_TRACK", func(t *testing.T) *user { return newUser(t, true, true, "DO_NOT_TRACK=1") }, []string{"repl"}, "off (DO_NOT_TRACK is set)"},
		{"preference off", func(t *testing.T) *user {
			u := newUser(t, true, true)
			telemetry.SetTelemetry(u.cfg, false)
			return u
		}, []string{"repl"}, "off (turned off"},
		{"not logged in", func(t *testing.T) *user { return newUser(t, false, true) }, []string{"repl"}, "off (not logged in"},
		{"notice never shown, stderr not a terminal", func(t *testing.T) *user { return newUser(t, true, false) }, []string{"repl"}, "the telemetry notice has not been shown on a terminal yet"},
		{"corrupt preferences", func(t *testing.T) *user {
			u := newUser(t, true, true)
			os.WriteFile(filepath.Join(u.cfg, "telemetry.json"), []byte("{{{"), 0o600)
			return u
		}, []string{"repl"}, "preferences file cannot be read"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			u := c.u(t)
			before := testkit.Tree(filepath.Dir(u.cfg)) + testkit.Tree(u.home)
			out, errs := u.run(t, script[:strings.Index(script, "/quit")]+"/telemetry\n/quit\n", c.args...)
			if !strings.Contains(out, c.status) {
				t.Errorf("status: %q, want %q", out, c.status)
			}
			if strings.Contains(errs, "telemetry debug: batch") {
				t.Errorf("an off route sent records:\n%s", errs)
			}
			if c.name == "corrupt preferences" {
				if strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "telemetry is off") {
					t.Errorf("want one warning line, got %q", errs)
				}
			} else if errs != "" {
				t.Errorf("stderr: %q", errs)
			}
			if after := testkit.Tree(filepath.Dir(u.cfg)) + testkit.Tree(u.home); after != before {
				t.Errorf("files changed on an off route:\n%s\n---\n%s", before, after)
			}
		})
	}
}

func TestCentralRouteHandsOnlyRemoteSafeRecords(t *testing.T) {
	u := newUser(t, true, true)
	out, errs := u.run(t, script, "repl")
	if !strings.Contains(errs, "telemetry debug: batch 1") || !strings.Contains(errs, `"tool_calls":[{`) {
		t.Fatalf("no batch printed:\n%s\n%s", out, errs)
	}
	if strings.Contains(errs, "CANARY") || strings.Contains(errs, "please look") {
		t.Fatalf("text reached the central payload:\n%s", errs)
	}
	// /model CANARY-model… is a model the user typed: custom, centrally.
	for _, want := range []string{`"command":"model"`, `"to":"plan"`, `"to":"fred-pro-2"`, `"to":"custom"`, `"tool_name":"read_file"`, `"result_is_error":true`} {
		if !strings.Contains(errs, want) {
			t.Errorf("payload lacks %s:\n%s", want, errs)
		}
	}
}

func TestSelfHostedRouteWritesTheUsersDatabase(t *testing.T) {
	for _, be := range testdb.Backends {
		for _, noText := range []bool{false, true} {
			t.Run(be.Name+map[bool]string{false: "/text", true: "/no-text"}[noText], func(t *testing.T) {
				t.Parallel()
				url := be.URL(t)
				extra := []string{"DSC_TELEMETRY_DB_URL=" + url}
				if noText {
					extra = append(extra, "DSC_TELEMETRY_NO_TEXT=1")
				}
				u := newUser(t, true, true, extra...) // logged in too: self-hosted still wins
				out, errs := u.run(t, script[:strings.Index(script, "/quit")]+"/telemetry\n", "repl")
				if !strings.Contains(out, "telemetry: self-hosted → ") || strings.Contains(errs, "debug: batch") || errs != "" {
					t.Fatalf("stdout %q\nstderr %q", out, errs)
				}
				counts := map[string]int{
					"SELECT count(*) FROM dsc_sessions WHERE ended_at IS NOT NULL": 1,
					"SELECT count(*) FROM dsc_turns":                               2,
					"SELECT count(*) FROM dsc_tool_calls":                          2,
					"SELECT count(*) FROM dsc_events":                              7, // the script's /telemetry too
				}
				testdb.Counts(t, url, counts)
				texts := testdb.QueryInt(t, url, "SELECT count(*) FROM dsc_turns WHERE user_input LIKE 'CANARY-prompt-%' AND assistant_text IS NOT NULL")
				anyText := testdb.QueryInt(t, url, "SELECT count(*) FROM dsc_turns WHERE user_input IS NOT NULL OR assistant_text IS NOT NULL")
				if noText && anyText != 0 {
					t.Errorf("DSC_TELEMETRY_NO_TEXT=1, yet %d turns have text", anyText)
				}
				if !noText && texts != 2 {
					t.Errorf("%d turns with text, want 2", texts)
				}
			})
		}
	}
}

// runPTY runs fred with stdin, stdout and stderr on a pseudo-terminal and
// returns everything it printed.
func runPTY(t *testing.T, u *user, input string, args ...string) string {
	t.Helper()
	cmd := exec.Command(fredBin, args...)
	cmd.Env = append(u.env, "TERM=xterm")
	cmd.Dir = u.home
	f, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, f); close(done) }()
	for _, line := range strings.SplitAfter(input, "\n") {
		f.Write([]byte(line))
		time.Sleep(20 * time.Millisecond)
	}
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("fred on a pty: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("fred on a pty did not exit:\n%s", out.String())
	}
	f.Close()
	<-done
	return out.String()
}

// TestNoticeOnceOnATerminal: the first run in a pipe sends nothing and
// shows nothing; the first run on a terminal shows the dim notice before
// anything is sent; later runs, on a terminal or not, never show it again.
func TestNoticeOnceOnATerminal(t *testing.T) {
	u := newUser(t, true, false)
	const notice = "Fred sends anonymized behavioral telemetry"
	in := "main.go\n/quit\n"

	_, errs := u.run(t, in, "repl")
	if strings.Contains(errs, notice) || strings.Contains(errs, "debug: batch") {
		t.Fatalf("pipe run before the notice: %q", errs)
	}
	if p, _ := telemetry.LoadPrefs(u.cfg); p.NoticeShownAt != "" {
		t.Fatal("notice recorded as shown after a pipe run")
	}

	out := runPTY(t, u, in, "repl")
	i, j := strings.Index(out, notice), strings.Index(out, "debug: batch")
	if i < 0 || j < 0 || j < i {
		t.Fatalf("terminal run: notice at %d, first batch at %d:\n%q", i, j, out)
	}
	if !strings.Contains(out, "\x1b[2m"+notice) {
		t.Errorf("the notice is not dim on a terminal: %q", out)
	}
	if p, _ := telemetry.LoadPrefs(u.cfg); p.NoticeShownAt == "" {
		t.Fatal("notice not recorded as shown")
	}

	out = runPTY(t, u, in, "repl")
	if strings.Contains(out, notice) || !strings.Contains(out, "debug: batch") {
		t.Fatalf("second terminal run: %q", out)
	}
	_, errs = u.run(t, in, "repl")
	if strings.Contains(errs, notice) || !strings.Contains(errs, "debug: batch") {
		t.Fatalf("pipe run after the notice: %q", errs)
	}
}

func TestSubprocessEnvironmentCarriesTheOptOut(t *testing.T) {
	u := newUser(t, true, true)
	// The stand-in REPL has no subprocesses; the library's Env is what Fred
	// hands them. Checked in-process here against a session started exactly
	// as the binary starts it.
	s := telemetry.Start(telemetry.Options{NoTelemetry: true, Getenv: func(k string) string {
		for _, kv := range u.env {
			if strings.HasPrefix(kv, k+"=") {
				return kv[len(k)+1:]
			}
		}
		return ""
	}}, telemetry.SessionInfo{})
	defer s.Close(context.Background())
	if env := strings.Join(s.Env(nil), " "); env != "DO_NOT_TRACK=1" {
		t.Fatalf("subprocess env %q", env)
	}
}
