package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fredcode/fredtel/internal/replay"
	"github.com/fredcode/fredtel/internal/testing/testdb"
)

// `fred telemetry replay` through the real binary: the example it prints
// replays cleanly from standard input into the user's own database and,
// on the central route, as debug output; a malformed transcript exits 1,
// says where, and records nothing.

func TestReplayExampleThroughTheBinary(t *testing.T) {
	u := newUser(t, true, true)
	example, errs := u.run(t, "", "telemetry", "replay", "--example")
	if example != replay.Example || errs != "" {
		t.Fatalf("--example printed %q, stderr %q", example, errs)
	}

	// Central route, FRED_TELEMETRY_DEBUG=1 (newUser): the batches on
	// stderr, nothing sent (FRED_API_URL is unreachable anyway).
	out, errs := u.run(t, example, "telemetry", "replay", "-")
	if !strings.Contains(out, "replayed stdin: 1 session, 2 turns, 9 tool calls, 7 events → central → http://127.0.0.1:1 as fred_live_0123…") ||
		!strings.Contains(out, ": 20 records printed on stderr, not sent") || !strings.Contains(errs, "fred: telemetry debug: batch 1 (") {
		t.Fatalf("debug replay:\n%s\n%s", out, errs)
	}

	url := testdb.SQLite(t)
	u = newUser(t, false, false, "DSC_TELEMETRY_DB_URL="+url)
	out, errs = u.run(t, example, "telemetry", "replay", "-")
	if !strings.HasSuffix(out, "→ self-hosted → "+url+" (text included): 20 records written\n") || errs != "" {
		t.Fatalf("self-hosted replay:\n%s\n%s", out, errs)
	}
	testdb.Counts(t, url, map[string]int{
		"SELECT count(*) FROM dsc_sessions WHERE ended_at IS NOT NULL": 1,
		"SELECT count(*) FROM dsc_turns":                               2,
		"SELECT count(*) FROM dsc_tool_calls":                          9,
		"SELECT count(DISTINCT args_fingerprint) FROM dsc_tool_calls":  4,
		"SELECT count(*) FROM dsc_events":                              7,
	})
}

func TestReplayRefusesAMalformedTranscript(t *testing.T) {
	db := filepath.Join(t.TempDir(), "never.db")
	u := newUser(t, true, true, "DSC_TELEMETRY_DB_URL=sqlite:"+db)
	file := filepath.Join(u.home, "t.jsonl")
	bad := strings.Replace(replay.Example, `"permission":"denied"`, `"permission":"asked"`, 1)
	os.WriteFile(file, []byte(bad), 0o600)

	run := func(args ...string) (int, string, string) {
		cmd := exec.Command(fredBin, args...)
		cmd.Env, cmd.Dir = u.env, u.home
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}
	code, out, errs := run("telemetry", "replay", "t.jsonl", "--keep-times")
	want := "fred telemetry replay: t.jsonl:17: permission: \"asked\" is not one of auto_allowed, user_allowed, denied\n" +
		"fred telemetry replay: t.jsonl: 1 problem; nothing was replayed\n"
	if code != 1 || out != "" || errs != want {
		t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant   %q", code, out, errs, want)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatalf("the database was created: %v", err)
	}
	if code, _, errs := run("telemetry", "replay", "--later", "t.jsonl"); code != 2 || !strings.Contains(errs, "flag provided but not defined: -later") {
		t.Fatalf("bad flag: exit %d %q", code, errs)
	}
	if code, _, errs := run("telemetry", "replay", "a.jsonl", "b.jsonl"); code != 2 || !strings.Contains(errs, "want one FILE") {
		t.Fatalf("two files: exit %d %q", code, errs)
	}
}
