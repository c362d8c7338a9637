package selfhost_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/selfhost"
)

func session(t *testing.T, url string, noText bool, stderr *testkit.Buffer) *telemetry.Session {
	env := map[string]string{"FRED_CONFIG_DIR": t.TempDir(), "DSC_TELEMETRY_DB_URL": url}
	if noText {
		env["DSC_TELEMETRY_NO_TEXT"] = "1"
	}
	return telemetry.Start(telemetry.Options{
		FredVersion:   "1.2.3",
		Getenv:        func(k string) string { return env[k] },
		Stderr:        stderr,
		SelfHosted:    selfhost.Open,
		FlushInterval: 20 * time.Millisecond,
		CloseBudget:   5 * time.Second,
	}, telemetry.SessionInfo{Model: "fred-flash-2", Tools: []string{"read_file"}, Commands: []string{"help"}, SystemPrompt: "sys"})
}

func record(s *telemetry.Session) {
	s.SlashCommand("/help me please")
	for i := 0; i < 2; i++ {
		tr := s.BeginTurn("act", "fred-flash-2")
		tr.ToolCall(telemetry.ToolCall{Name: "read_file", Args: []byte(`{"path":"a.go"}`), Result: "package a", Permission: "auto_allowed"})
		tr.ToolCall(telemetry.ToolCall{Name: "read_file", Args: []byte(`{ "path" : "a.go" }`), Result: "Error: gone", Permission: "denied", Failed: true})
		tr.End(telemetry.TurnResult{FinishReason: "stop", UserInput: "explain a.go", AssistantText: "It is package a."})
	}
}

func TestSelfHostedWritesRowsWithAndWithoutText(t *testing.T) {
	for _, be := range testdb.Backends {
		for _, noText := range []bool{false, true} {
			t.Run(be.Name+map[bool]string{false: "/text", true: "/no-text"}[noText], func(t *testing.T) {
				t.Parallel()
				url := be.URL(t)
				var stderr testkit.Buffer
				s := session(t, url, noText, &stderr)
				if r := s.Route(); r.Kind != telemetry.SelfHosted || r.NoText != noText {
					t.Fatalf("route %+v", r)
				}
				record(s)
				s.Close(context.Background())
				if st := s.Stats(); st.Written != st.Recorded || st.Dropped != 0 {
					t.Fatalf("stats %+v, stderr %q", st, stderr.String())
				}
				testdb.Counts(t, url, map[string]int{
					"SELECT count(*) FROM dsc_sessions WHERE ended_at IS NOT NULL": 1,
					"SELECT count(*) FROM dsc_turns":                               2,
					"SELECT count(*) FROM dsc_tool_calls":                          4,
					"SELECT count(DISTINCT args_fingerprint) FROM dsc_tool_calls":  1,
					"SELECT count(*) FROM dsc_tool_calls WHERE result_is_error":    2,
					"SELECT count(*) FROM dsc_events":                              1,
					"SELECT count(*) FROM dsc_turns WHERE prompt_chars = 12":       2,
				})
				withText := testdb.QueryInt(t, url, "SELECT count(*) FROM dsc_turns WHERE user_input = 'explain a.go' AND assistant_text = 'It is package a.'")
				anyText := testdb.QueryInt(t, url, "SELECT count(*) FROM dsc_turns WHERE user_input IS NOT NULL OR assistant_text IS NOT NULL")
				if noText && anyText != 0 {
					t.Errorf("DSC_TELEMETRY_NO_TEXT=1 but %d turns have text", anyText)
				}
				if !noText && withText != 2 {
					t.Errorf("%d turns kept their text, want 2", withText)
				}
				if stderr.String() != "" {
					t.Errorf("stderr: %q", stderr.String())
				}
			})
		}
	}
}

// TestSelfHostedDatabaseDown: a database that is not there costs the agent
// one line on stderr and nothing else; Close keeps to its budget.
func TestSelfHostedDatabaseDown(t *testing.T) {
	var stderr testkit.Buffer
	env := map[string]string{"FRED_CONFIG_DIR": t.TempDir(), "DSC_TELEMETRY_DB_URL": "postgres://alice:hunter2@127.0.0.1:1/fred?connect_timeout=1"}
	s := telemetry.Start(telemetry.Options{
		Getenv: func(k string) string { return env[k] }, Stderr: &stderr, SelfHosted: selfhost.Open,
		FlushInterval: 10 * time.Millisecond, QueueBytes: 32 << 10, CloseBudget: 100 * time.Millisecond,
	}, telemetry.SessionInfo{Model: "m"})
	for i := 0; i < 200; i++ {
		record(s)
	}
	testkit.WaitFor(t, 5*time.Second, "the failed connection", func() bool { return s.Stats().Failures > 0 })
	start := time.Now()
	s.Close(context.Background())
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with the database down", d)
	}
	out := stderr.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "alice:***@127.0.0.1:1") || strings.Contains(out, "hunter2") {
		t.Errorf("want one masked line on stderr, got %q", out)
	}
	if st := s.Stats(); st.Dropped == 0 || st.Written != 0 || st.Failures == 0 {
		t.Errorf("stats %+v", st)
	}
}
