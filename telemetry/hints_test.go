package telemetry

import (
	"fmt"
	"testing"
)

func collect() (*[]Hint, func(Hint)) {
	var got []Hint
	return &got, func(h Hint) { got = append(got, h) }
}

// TestLoopHints: the definitions of the insights, live: a run of
// MinRepeats identical calls with identical results is told once; runs of
// two, alternating calls and polling (same call, changing result) are not.
func TestLoopHints(t *testing.T) {
	type call struct{ tool, args, result string }
	for _, c := range []struct {
		name  string
		calls []call
		want  []int // Repeats of each hint told
	}{
		{"three identical", []call{{"bash", "ls", "a"}, {"bash", "ls", "a"}, {"bash", "ls", "a"}}, []int{3}},
		{"told once per run", []call{{"bash", "ls", "a"}, {"bash", "ls", "a"}, {"bash", "ls", "a"}, {"bash", "ls", "a"}, {"bash", "ls", "a"}}, []int{3}},
		{"a run of two", []call{{"bash", "ls", "a"}, {"bash", "ls", "a"}, {"read", "x", "a"}}, nil},
		{"alternating", []call{{"bash", "ls", "a"}, {"read", "x", "b"}, {"bash", "ls", "a"}, {"read", "x", "b"}, {"bash", "ls", "a"}}, nil},
		{"polling", []call{{"bash", "make", "1"}, {"bash", "make", "2"}, {"bash", "make", "3"}, {"bash", "make", "4"}}, nil},
		{"other arguments", []call{{"bash", "ls", "a"}, {"bash", "ls -l", "a"}, {"bash", "ls", "a"}}, nil},
		{"two loops", []call{{"bash", "ls", "a"}, {"bash", "ls", "a"}, {"bash", "ls", "a"}, {"read", "x", "b"}, {"read", "x", "b"}, {"read", "x", "b"}}, []int{3, 3}},
		{"the same loop after a break", []call{{"bash", "ls", "a"}, {"bash", "ls", "a"}, {"bash", "ls", "a"}, {"read", "x", "b"}, {"bash", "ls", "a"}, {"bash", "ls", "a"}, {"bash", "ls", "a"}}, []int{3, 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, on := collect()
			h := newHints(on, nil, nil)
			for _, k := range c.calls {
				h.toolCall(k.tool, []byte(k.args), k.result)
			}
			var reps []int
			for _, x := range *got {
				if x.Kind != HintLoop {
					t.Fatalf("hint of kind %d", x.Kind)
				}
				reps = append(reps, x.Repeats)
			}
			if fmt.Sprint(reps) != fmt.Sprint(c.want) {
				t.Fatalf("hints at repeats %v, want %v", reps, c.want)
			}
		})
	}
}

// TestStuckHints: three struggling fast-model turns before any swap to a
// stronger model: told once, naming the stronger model the build offers.
func TestStuckHints(t *testing.T) {
	models := []string{"fred-flash-2", "fred-pro-2"}
	got, on := collect()
	h := newHints(on, nil, models)
	h.turn("fred-flash-2", "length", 0)
	h.turn("fred-flash-2", "stop", 2) // not a struggle
	h.turn("fred-pro-2", "length", 0) // not fast
	h.turn("fred-flash-2", "stop", 9)
	if len(*got) != 0 {
		t.Fatalf("told after two struggles: %v", *got)
	}
	h.turn("fred-flash-2", "error", 0)
	h.turn("fred-flash-2", "length", 0)
	if len(*got) != 1 || (*got)[0].Kind != HintStuck || (*got)[0].Suggest != "fred-pro-2" || (*got)[0].Turns != 3 {
		t.Fatalf("hints %+v; want one stuck hint suggesting fred-pro-2 after 3 turns", *got)
	}
	if s := (*got)[0].String(); s != "fred-flash-2 struggled 3 turns (cut short, failing or tool-heavy): try /model fred-pro-2" {
		t.Errorf("hint text %q", s)
	}

	got, on = collect()
	h = newHints(on, nil, models)
	h.turn("fred-flash-2", "length", 0)
	h.swap("fred-pro-2")
	h.turn("fred-flash-2", "length", 0)
	h.turn("fred-flash-2", "length", 0)
	if len(*got) != 0 {
		t.Fatalf("told after the user swapped to the stronger model: %v", *got)
	}
}

// TestHintsOnEveryRoute: the agent is told on the off route (here
// --no-telemetry) as on the others, and nothing is recorded for it.
func TestHintsOnEveryRoute(t *testing.T) {
	got, on := collect()
	env := map[string]string{"FRED_CONFIG_DIR": t.TempDir()}
	s := Start(Options{NoTelemetry: true, OnHint: on, Getenv: func(k string) string { return env[k] }},
		SessionInfo{Model: "fred-flash-2", Models: []string{"fred-flash-2", "fred-pro-2"}, Tools: []string{"bash"}})
	defer s.Close(t.Context())
	for i := 0; i < 3; i++ {
		tr := s.BeginTurn("act", "fred-flash-2")
		for j := 0; j < 3; j++ {
			tr.ToolCall(ToolCall{Name: "bash", Args: []byte(`{"cmd":"go test ./..."}`), Result: "FAIL"})
		}
		tr.End(TurnResult{FinishReason: "length"})
	}
	if len(*got) != 2 || (*got)[0].Kind != HintLoop || (*got)[1].Kind != HintStuck || (*got)[1].Suggest != "fred-pro-2" {
		t.Fatalf("hints %+v; want a loop, then stuck suggesting fred-pro-2", *got)
	}
	if st := s.Stats(); st.Recorded != 0 {
		t.Fatalf("the off route recorded %d records", st.Recorded)
	}
}
