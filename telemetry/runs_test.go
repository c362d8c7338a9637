package telemetry

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
)

// TestRunMarks: each call carries its run (the id of the run's first call)
// and its place in it, in the order the insights read (turns by seq, calls
// by seq), across turns; a call of an earlier turn recorded after a later
// turn's call leaves the session's calls unmarked from then on.
func TestRunMarks(t *testing.T) {
	opts, sink := centralOptions(configDir(t, true, true), nil)
	s := Start(opts, SessionInfo{Model: "fred-flash-2", Tools: []string{"bash", "read"}, Models: []string{"fred-flash-2"}})
	call := func(tr *Turn, tool, args string) {
		tr.ToolCall(ToolCall{Name: tool, Args: []byte(args), Result: "r", Permission: "auto_allowed"})
	}
	t1 := s.BeginTurn("act", "fred-flash-2")
	call(t1, "bash", `{"a":1}`) // run 0, place 1
	call(t1, "bash", `{"a":1}`) // 2
	t1.End(TurnResult{FinishReason: "tool_calls"})
	t2 := s.BeginTurn("act", "fred-flash-2")
	call(t2, "bash", `{"a":1}`) // 3: a run across turns
	call(t2, "read", `{"a":1}`) // new run
	call(t2, "bash", `{"a":2}`) // new run: other args
	call(t2, "bash", `{"a":2}`) // 2
	call(t1, "bash", `{"a":2}`) // an earlier turn's call, late: unmarked from here
	call(t2, "bash", `{"a":2}`)
	t2.End(TurnResult{FinishReason: "stop"})
	s.Close(context.Background())
	b := sink.decoded(t)
	if len(b.ToolCalls) != 8 {
		t.Fatalf("%d calls recorded, want 8", len(b.ToolCalls))
	}
	wantStart := []int{0, 0, 0, 3, 4, 4, -1, -1}
	wantLen := []int64{1, 2, 3, 1, 1, 2, 0, 0}
	for i, c := range b.ToolCalls {
		got := fmt.Sprintf("start %v len %v", c.RunStart.UUID, c.RunLen)
		if wantStart[i] < 0 {
			if c.RunStart.UUID != uuid.Nil || c.RunLen.Known {
				t.Errorf("call %d: %s, want unmarked", i, got)
			}
			continue
		}
		if c.RunStart.UUID != b.ToolCalls[wantStart[i]].CallID || !c.RunLen.Known || c.RunLen.V != wantLen[i] {
			t.Errorf("call %d: %s; want start = call %d's id, len %d", i, got, wantStart[i], wantLen[i])
		}
	}
}
