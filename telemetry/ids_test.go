package telemetry

import (
	"context"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testkit"
)

// TestIDSeedRepeatsIDs: with Options.IDSeed and the same clock, a session
// recorded twice has the same record ids (fredtel simulate relies on it);
// without it, never; and the fingerprint key stays random either way.
func TestIDSeedRepeatsIDs(t *testing.T) {
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	record := func(seed *[32]byte) RemoteBatch {
		opts, sink := centralOptions(configDir(t, true, true), &testkit.Buffer{})
		opts.IDSeed = seed
		opts.Now = func() time.Time { return at }
		s := Start(opts, SessionInfo{Model: "fred-flash", Tools: []string{"bash"}})
		tr := s.BeginTurn("act", "fred-flash")
		tr.ToolCall(ToolCall{Name: "bash", Args: []byte(`{"cmd":"ls"}`), Permission: "auto_allowed"})
		tr.End(TurnResult{FinishReason: "stop"})
		s.APIRetry(Retry{Attempt: 1, Delay: time.Second, ErrorType: "rate_limit", Status: 429})
		s.Close(context.Background())
		return sink.decoded(t)
	}
	ids := func(b RemoteBatch) []string {
		return []string{b.Sessions[0].SessionID.String(), b.Turns[0].TurnID.String(), b.ToolCalls[0].CallID.String(), b.Events[0].EventID.String()}
	}
	seed := &[32]byte{1, 2, 3}
	a, b := record(seed), record(seed)
	if ga, gb := ids(a), ids(b); ga[0] != gb[0] || ga[1] != gb[1] || ga[2] != gb[2] || ga[3] != gb[3] {
		t.Errorf("same seed and clock, different ids:\n%v\n%v", ga, gb)
	}
	if a.ToolCalls[0].ArgsFingerprint == b.ToolCalls[0].ArgsFingerprint {
		t.Error("the fingerprint key must stay random with an IDSeed")
	}
	other := record(&[32]byte{9})
	if ids(other)[0] == ids(a)[0] {
		t.Error("another seed made the same session id")
	}
	r1, r2 := record(nil), record(nil)
	if ids(r1)[0] == ids(r2)[0] {
		t.Error("without a seed, two sessions at one instant made the same id")
	}
}

// TestSessionID: ID is the session_id of every record; zero when off.
func TestSessionID(t *testing.T) {
	opts, sink := centralOptions(configDir(t, true, true), &testkit.Buffer{})
	s := Start(opts, SessionInfo{Model: "fred-flash"})
	s.BeginTurn("act", "fred-flash").End(TurnResult{FinishReason: "stop"})
	s.Close(context.Background())
	b := sink.decoded(t)
	if s.ID() != b.Sessions[0].SessionID || s.ID() != b.Turns[0].SessionID {
		t.Errorf("ID %v, records carry %v", s.ID(), b.Sessions[0].SessionID)
	}
	off := Start(Options{NoTelemetry: true}, SessionInfo{})
	defer off.Close(context.Background())
	if off.ID() != [16]byte{} {
		t.Errorf("a session that records nothing has id %v", off.ID())
	}
}
