package telemetry

import (
	"context"
	"testing"

	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/schema"
)

// A session of another agent (the OTLP relay's) says which agent and, when
// it is a semantic version, its version; lengths and sizes known without
// their text are recorded as such, and a result known only by its size has
// no result fingerprint.
func TestAgentAndLengthsWithoutText(t *testing.T) {
	for _, tc := range []struct {
		name, agent, version string
		wantAgent, wantVer   schema.OptString
	}{
		{name: "fred by default", wantAgent: "fred"},
		{name: "claude code", agent: "claude-code", version: "2.1.197", wantAgent: "claude-code", wantVer: "2.1.197"},
		{name: "a version that is not semver is left out", agent: "gemini-cli", version: "v20.20.2", wantAgent: "gemini-cli"},
		{name: "an unknown agent is other", agent: "me@example.com", version: "1.0.0", wantAgent: "other", wantVer: "1.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, sink := centralOptions(configDir(t, true, true), &testkit.Buffer{})
			s := Start(opts, SessionInfo{Model: "m", Models: []string{"m"}, Agent: tc.agent, AgentVersion: tc.version})
			turn := s.BeginTurn("act", "m")
			turn.ToolCall(ToolCall{Name: "t", Args: []byte(`{}`), ResultBytes: 1234, Permission: "auto_allowed"})
			turn.ToolCall(ToolCall{Name: "t", Args: []byte(`{}`), Result: "ok", Permission: "auto_allowed"})
			turn.End(TurnResult{FinishReason: "stop", PromptChars: 83, ResponseChars: 46})
			s.Close(context.Background())
			b := sink.decoded(t)
			if len(b.Sessions) == 0 || b.Sessions[0].Agent != tc.wantAgent || b.Sessions[0].AgentVersion != tc.wantVer {
				t.Fatalf("sessions %+v, want agent %q version %q", b.Sessions, tc.wantAgent, tc.wantVer)
			}
			if len(b.Turns) != 1 || b.Turns[0].PromptChars != 83 || b.Turns[0].ResponseChars != 46 {
				t.Fatalf("turns %+v", b.Turns)
			}
			if len(b.ToolCalls) != 2 || b.ToolCalls[0].ResultBytes != 1234 || !b.ToolCalls[0].ResultFingerprint.IsZero() ||
				b.ToolCalls[1].ResultBytes != 2 || b.ToolCalls[1].ResultFingerprint.IsZero() {
				t.Fatalf("tool calls %+v", b.ToolCalls)
			}
		})
	}
}
