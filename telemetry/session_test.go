package telemetry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testkit"
)

// texts are the raw texts a scripted session feeds the library.
type texts struct {
	prompt, response, path, result, system, agentsMD, cmdArg, tool, model string
}

var canaries = texts{
	prompt:   "CANARY-prompt please refactor the billing module",
	response: "CANARY-response I changed three files",
	path:     "/home/alice/CANARY-path/secret-plan.md",
	result:   "CANARY-result contents of the secret plan",
	system:   "CANARY-system You are Fred, a coding agent",
	agentsMD: "CANARY-agents always run the tests",
	cmdArg:   "CANARY-cmdarg gpt-secret",
	tool:     "CANARY tool with spaces",
	model:    "CANARY model with spaces",
}

func sessionInfo(x texts) SessionInfo {
	return SessionInfo{
		Model: "fred-flash-2", Shell: "/usr/bin/zsh", GitDirty: boolp(true),
		AgentsMD: x.agentsMD, SystemPrompt: x.system,
		Tools: []string{"read_file", "bash"}, Commands: []string{"/model", "/help", "/telemetry"},
	}
}

// agentLoop is a scripted agent. What it prints must not depend on the route.
func agentLoop(s *Session, x texts) string {
	var out strings.Builder
	s.SlashCommand("/model " + x.cmdArg)
	s.SlashCommand("/" + x.cmdArg)
	s.ModeChange("act", "plan")
	for i := 0; i < 3; i++ {
		t := s.BeginTurn("plan", "fred-flash-2")
		for j := 0; j < 4; j++ {
			args := fmt.Sprintf(`{"path":%q,"n":%d}`, x.path, j%2)
			res := "ok " + x.result
			if j == 3 {
				res = "Error: " + x.result
			}
			name := "read_file"
			if j == 2 {
				name = x.tool
			}
			t.ToolCall(ToolCall{Name: name, Args: []byte(args), Result: res, Permission: "auto_allowed", Duration: time.Millisecond})
			fmt.Fprintf(&out, "tool %d.%d -> %d bytes\n", i, j, len(res))
		}
		s.APIRetry(Retry{Attempt: 1, Delay: 500 * time.Millisecond, Latency: 90 * time.Millisecond, ErrorType: "rate_limit", Status: 429})
		t.End(TurnResult{PromptTokens: 100, CompletionTokens: 20, FinishReason: "stop", UserInput: x.prompt, AssistantText: x.response})
		fmt.Fprintf(&out, "turn %d done\n", i)
	}
	s.ModelSwap("fred-flash-2", x.model)
	s.End()
	return out.String()
}

func TestCentralSessionSendsRemoteSafeRecords(t *testing.T) {
	opts, sink := centralOptions(configDir(t, true, true), &testkit.Buffer{})
	s := Start(opts, sessionInfo(canaries))
	if r := s.Route(); r.Kind != Central {
		t.Fatalf("route %v (%s), want central", r.Kind, r.Status())
	}
	agentLoop(s, canaries)
	s.Close(context.Background())

	all, n := sink.all()
	b := sink.decoded(t)
	if n != 24 || len(b.Sessions) != 2 || len(b.Turns) != 3 || len(b.ToolCalls) != 12 || len(b.Events) != 7 {
		t.Fatalf("got %d records: %d sessions, %d turns, %d tool calls, %d events", n, len(b.Sessions), len(b.Turns), len(b.ToolCalls), len(b.Events))
	}
	if b.Sessions[0].SessionID != b.Sessions[1].SessionID || b.Sessions[1].EndedAt.IsZero() {
		t.Errorf("the session must be sent at start and again with ended_at")
	}
	if !sink.closed {
		t.Error("sink not closed")
	}
	for _, c := range []string{"CANARY", "alice", "secret"} {
		if strings.Contains(all, c) {
			t.Errorf("central payload contains %q:\n%s", c, all)
		}
	}
	// Same args within a session: same fingerprint; different args: different.
	fp := map[string]int{}
	for _, c := range b.ToolCalls {
		fp[c.ArgsFingerprint.String()]++
	}
	if len(fp) != 2 {
		t.Errorf("%d distinct fingerprints for 2 distinct args: %v", len(fp), fp)
	}
	var errs, others int
	for _, c := range b.ToolCalls {
		if c.ResultIsError {
			errs++
		}
		if c.ToolName == "other" {
			others++
		}
	}
	if errs != 3 || others != 3 {
		t.Errorf("%d error results (want 3), %d tools named other (want 3: a sentence is not a tool name)", errs, others)
	}
	var cmds []string
	for _, e := range b.Events {
		if e.Name == "slash_command" {
			cmds = append(cmds, string(e.Props))
		}
	}
	if strings.Join(cmds, " ") != `{"command":"model"} {"command":"other"}` {
		t.Errorf("slash commands recorded as %v", cmds)
	}
	if s.Stats().Written != int64(n) || s.Stats().Dropped != 0 || s.Stats().Panics != 0 {
		t.Errorf("stats %+v", s.Stats())
	}
}

// offCase is a route that must record nothing.
type offCase struct {
	name string
	opts func(*testing.T) (Options, *recSink)
	rule Rule
}

func offCases() []offCase {
	mk := func(loggedIn, notice bool, env map[string]string, flag bool) func(*testing.T) (Options, *recSink) {
		return func(t *testing.T) (Options, *recSink) {
			dir := configDir(t, loggedIn, notice)
			opts, sink := testOptions(dir, env, &testkit.Buffer{}), &recSink{}
			opts.Central, opts.NoTelemetry = sink, flag
			return opts, sink
		}
	}
	return []offCase{
		{"--no-telemetry", mk(true, true, nil, true), RuleFlag},
		{"DO_NOT_TRACK", mk(true, true, map[string]string{"DO_NOT_TRACK": "1"}, false), RuleDoNotTrack},
		{"preference off", func(t *testing.T) (Options, *recSink) {
			o, k := mk(true, true, nil, false)(t)
			SetTelemetry(ConfigDir(o.Getenv), false)
			return o, k
		}, RulePreference},
		{"not logged in", mk(false, true, nil, false), RuleNotLoggedIn},
		{"notice never shown, no terminal", mk(true, false, nil, false), RuleNoticeUnseen},
		{"no sender", func(t *testing.T) (Options, *recSink) {
			o, k := mk(true, true, nil, false)(t)
			o.Central = nil
			return o, k
		}, RuleNoSender},
	}
}

// TestOffMeansOff: on every route that is off, the library sends nothing,
// writes no file and starts no goroutine.
func TestOffMeansOff(t *testing.T) {
	for _, c := range offCases() {
		t.Run(c.name, func(t *testing.T) {
			opts, sink := c.opts(t)
			dir := ConfigDir(opts.Getenv)
			before := testkit.Tree(filepath.Dir(dir))
			g0 := libraryGoroutines()
			opened := false
			opts.SelfHosted = func(context.Context, string) (LocalSink, error) { opened = true; return nil, nil }
			s := Start(opts, sessionInfo(canaries))
			if r := s.Route(); r.Kind != Off || r.Rule != c.rule {
				t.Fatalf("route %v/%q, want off/%q", r.Kind, r.Rule, c.rule)
			}
			agentLoop(s, canaries)
			if g := libraryGoroutines(); g != g0 {
				t.Errorf("%d library goroutines running, want %d", g, g0)
			}
			s.Close(context.Background())
			if _, n := sink.all(); n != 0 || opened {
				t.Errorf("sent %d records (opened a database: %v)", n, opened)
			}
			if after := testkit.Tree(filepath.Dir(dir)); after != before {
				t.Errorf("files changed:\nbefore\n%s\nafter\n%s", before, after)
			}
			env := s.Env([]string{"PATH=/bin", "DO_NOT_TRACK=0"})
			if strings.Join(env, " ") != "PATH=/bin DO_NOT_TRACK=1" {
				t.Errorf("subprocess env %v, want the opt-out DO_NOT_TRACK=1", env)
			}
		})
	}
}

// TestAgentBehavesTheSameOnEveryRoute: the scripted agent's own output, and
// every value the API hands back, do not depend on the route.
func TestAgentBehavesTheSameOnEveryRoute(t *testing.T) {
	var outputs, names []string
	for _, c := range offCases() {
		opts, _ := c.opts(t)
		s := Start(opts, sessionInfo(canaries))
		outputs = append(outputs, agentLoop(s, canaries))
		names = append(names, c.name)
		s.Close(context.Background())
	}
	opts, _ := centralOptions(configDir(t, true, true), &testkit.Buffer{})
	s := Start(opts, sessionInfo(canaries))
	outputs = append(outputs, agentLoop(s, canaries))
	names = append(names, "central")
	s.Close(context.Background())

	opts = testOptions(configDir(t, false, false), map[string]string{"DSC_TELEMETRY_DB_URL": "sqlite:/nonexistent"}, &testkit.Buffer{})
	opts.SelfHosted = func(context.Context, string) (LocalSink, error) { return &memLocal{}, nil }
	s = Start(opts, sessionInfo(canaries))
	outputs = append(outputs, agentLoop(s, canaries))
	names = append(names, "self-hosted")
	s.Close(context.Background())

	for i := range outputs {
		if outputs[i] != outputs[0] {
			t.Errorf("agent output on %s differs from %s:\n%s\n---\n%s", names[i], names[0], outputs[i], outputs[0])
		}
	}
	// Methods of a closed or off session are safe no-ops.
	var nilTurn Turn
	nilTurn.ToolCall(ToolCall{Name: "x"})
	nilTurn.End(TurnResult{})
	s.BeginTurn("act", "m").ToolCall(ToolCall{Name: "after close"})
}

type memLocal struct {
	batches []LocalBatch
	fail    error
}

func (m *memLocal) Write(_ context.Context, b *LocalBatch) error {
	if m.fail != nil {
		return m.fail
	}
	cp := LocalBatch{}
	cp.Sessions = append(cp.Sessions, b.Sessions...)
	cp.Turns = append(cp.Turns, b.Turns...)
	cp.ToolCalls = append(cp.ToolCalls, b.ToolCalls...)
	cp.Events = append(cp.Events, b.Events...)
	m.batches = append(m.batches, cp)
	return nil
}
func (m *memLocal) Close() error { return nil }

// TestNoticeOnceEver: across sessions sharing a config dir, the notice is
// printed exactly once, on the first session with a terminal, and nothing
// is sent before it.
func TestNoticeOnceEver(t *testing.T) {
	dir := configDir(t, true, false)
	type run struct {
		terminal   bool
		wantNotice bool
		wantSent   bool
	}
	for i, r := range []run{
		{terminal: false, wantNotice: false, wantSent: false}, // CI or a pipe: nobody reads it
		{terminal: true, wantNotice: true, wantSent: true},
		{terminal: true, wantNotice: false, wantSent: true},
		{terminal: false, wantNotice: false, wantSent: true}, // shown once already: a pipe is fine now
	} {
		var stderr testkit.Buffer
		opts, sink := centralOptions(dir, &stderr)
		opts.StderrIsTerminal = func() bool { return r.terminal }
		s := Start(opts, sessionInfo(canaries))
		agentLoop(s, canaries)
		s.Close(context.Background())
		gotNotice := strings.Contains(stderr.String(), "Fred sends anonymized behavioral telemetry")
		if gotNotice != r.wantNotice {
			t.Errorf("session %d: notice printed %v, want %v (stderr %q)", i, gotNotice, r.wantNotice, stderr.String())
		}
		if gotNotice && !strings.HasPrefix(stderr.String(), "\x1b[2m") {
			t.Errorf("session %d: notice on a terminal is not dim: %q", i, stderr.String())
		}
		if _, n := sink.all(); (n > 0) != r.wantSent {
			t.Errorf("session %d: sent %d records, want sent=%v", i, n, r.wantSent)
		}
	}
	p, err := LoadPrefs(dir)
	if err != nil || p.NoticeShownAt == "" {
		t.Fatalf("notice date not persisted: %+v %v", p, err)
	}
}

func TestCorruptPreferencesMeanCentralOff(t *testing.T) {
	for _, content := range []string{"{not json", `{"telemetry":"maybe"}`, `{"telemetry":"on","extra":1}`} {
		dir := configDir(t, true, true)
		os.WriteFile(filepath.Join(dir, prefsFile), []byte(content), 0o600)
		var stderr testkit.Buffer
		opts, sink := centralOptions(dir, &stderr)
		s := Start(opts, sessionInfo(canaries))
		agentLoop(s, canaries)
		s.Close(context.Background())
		if r := s.Route(); r.Kind != Off || r.Rule != RuleBadPrefs {
			t.Errorf("%q: route %v/%q, want off", content, r.Kind, r.Rule)
		}
		if lines := strings.Count(stderr.String(), "\n"); lines != 1 || !strings.Contains(stderr.String(), "telemetry is off") {
			t.Errorf("%q: want one warning line, got %q", content, stderr.String())
		}
		if _, n := sink.all(); n != 0 {
			t.Errorf("%q: sent %d records", content, n)
		}
	}
	// An unreadable file (a directory in its place) is the same.
	dir := configDir(t, true, false)
	os.MkdirAll(filepath.Join(dir, prefsFile), 0o700)
	s := Start(testOptions(dir, nil, &testkit.Buffer{}), SessionInfo{})
	if s.Route().Rule != RuleBadPrefs {
		t.Errorf("unreadable prefs: %q", s.Route().Rule)
	}
	s.Close(context.Background())
}

// TestTurnOffDropsQueuedRecords: /telemetry off persists, drops what is
// queued without sending it, and ignores what follows.
func TestTurnOffDropsQueuedRecords(t *testing.T) {
	dir := configDir(t, true, true)
	opts, sink := centralOptions(dir, &testkit.Buffer{})
	opts.FlushInterval = time.Hour
	opts.MaxBatch = 1 << 20
	s := Start(opts, sessionInfo(canaries))
	agentLoop(s, canaries)
	queued := s.Stats().Recorded
	out := s.HandleSlash("off")
	if !strings.Contains(out, "off (saved)") {
		t.Errorf("/telemetry off said %q", out)
	}
	agentLoop(s, canaries)
	s.Close(context.Background())
	if _, n := sink.all(); n != 0 {
		t.Errorf("%d records sent after /telemetry off", n)
	}
	if st := s.Stats(); st.Dropped != queued || st.Recorded != queued {
		t.Errorf("stats %+v, want %d recorded and all of them dropped", st, queued)
	}
	if !sink.purged {
		t.Error("the spool was not purged")
	}
	if p, _ := LoadPrefs(dir); !p.Off() {
		t.Error("off was not persisted")
	}
	if st := s.HandleSlash(""); !strings.Contains(st, "off (turned off during this session") {
		t.Errorf("/telemetry = %q", st)
	}
	if on := s.HandleSlash("on"); !strings.Contains(on, "on (saved)") {
		t.Errorf("/telemetry on = %q", on)
	}
	if p, _ := LoadPrefs(dir); p.Off() {
		t.Error("on was not persisted")
	}
}

func TestFailingSinkIsBoundedAndVisible(t *testing.T) {
	dir := configDir(t, true, true)
	var stderr testkit.Buffer
	opts := testOptions(dir, nil, &stderr)
	opts.QueueBytes = 64 << 10
	opts.CloseBudget = 50 * time.Millisecond
	opts.Central = &recSink{fail: fmt.Errorf("connection refused")}
	s := Start(opts, sessionInfo(canaries))
	for i := 0; i < 50; i++ {
		agentLoop(s, canaries)
	}
	testkit.WaitFor(t, 5*time.Second, "a failed send", func() bool { return s.Stats().Failures > 0 })
	s.Close(context.Background())
	st := s.Stats()
	if st.Failures == 0 || st.Dropped == 0 || st.Written != 0 {
		t.Errorf("stats %+v: want failures, drops and nothing written", st)
	}
	if n := strings.Count(stderr.String(), "\n"); n != 1 {
		t.Errorf("want exactly one warning line, got %q", stderr.String())
	}
	if !strings.Contains(s.Status(), "records dropped") {
		t.Errorf("status does not show the drops: %q", s.Status())
	}
}
