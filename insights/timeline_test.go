package insights

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
)

// timelineFleet is one session with every kind of thing a timeline shows,
// beside a second session that must not leak into it.
func timelineFleet(f *fx) *sess {
	s := f.session("alice", 0, "fred-flash", "help", "plan")
	s.event(-0.5, schema.SlashCommandProps{Command: "plan"}) // before the first turn
	t0 := s.turn(turnSpec{model: "fred-flash", mode: "plan", finish: "tool_calls", calls: 3, in: 100, out: 10, ms: 900})
	s.call(t0, 0, "grep", 1, 11, "auto_allowed", 20)
	s.call(t0, 1, "read_file", 2, 12, "auto_allowed", 30) // a stuck loop starts: read_file args 2, result 12 ×4
	s.call(t0, 2, "read_file", 2, 12, "auto_allowed", 31)
	s.event(0.5, schema.ModeChangeProps{From: "plan", To: "act"})
	t1 := s.turn(turnSpec{model: "fred-flash", mode: "act", finish: "length", calls: 5, in: 200, out: 20, ms: 1200, apiErr: "rate_limit"})
	s.event(1.2, schema.APIRetryProps{Attempt: 1, DelayMs: 500, ErrorType: "rate_limit", Status: 429})
	s.call(t1, 0, "read_file", 2, 12, "auto_allowed", 32)
	s.call(t1, 1, "read_file", 2, 12, "auto_allowed", 33) // ... ends here, spanning two turns
	s.call(t1, 2, "bash", 3, 13, "denied", 1)
	s.call(t1, 3, "bash", 3, 13, "user_allowed", 2) // a run of 2: no loop
	s.call(t1, 4, "grep", 4, 14, "auto_allowed", 3)
	s.event(1.5, schema.ModelSwapProps{From: "fred-flash", To: "fred-pro"})
	t2 := s.turn(turnSpec{model: "fred-pro", mode: "act", finish: "tool_calls", calls: 6, in: 300, out: 30, ms: 700})
	for i, a := range []int{5, 6, 5, 6} { // A B A B: no loop
		s.call(t2, i, "grep", a, 15, "auto_allowed", 4)
	}
	s.call(t2, 4, "bash", 7, 16, "auto_allowed", 100) // polling: same call, changing results ×3
	s.call(t2, 5, "bash", 7, 17, "auto_allowed", 100)
	t3 := s.turn(turnSpec{model: "fred-pro", calls: 1, in: 10, out: 1, ms: 50})
	s.call(t3, 0, "bash", 7, 18, "auto_allowed", 100)

	other := f.session("bob", 5, "fred-pro")
	ot := other.turn(turnSpec{calls: 3})
	for i := 0; i < 3; i++ {
		other.call(ot, i, "read_file", 2, 12, "auto_allowed", 1)
	}
	other.event(0.1, schema.APIRetryProps{Attempt: 1, DelayMs: 1, ErrorType: "timeout"})
	return s
}

func TestTimeline(t *testing.T) {
	for _, be := range testdb.Backends {
		for _, set := range schema.Sets() {
			t.Run(be.Name+"/"+set.String(), func(t *testing.T) {
				t.Parallel()
				f := newFx(t)
				s := timelineFleet(f)
				if set == schema.SelfHostedSet {
					// Text is a self-hosted column: one turn keeps it.
					b := f.batch("alice")
					b.Turns[0].UserInput = "find the <script>bug</script>"
					b.Turns[0].AssistantText = strings.Repeat("é", MaxTimelineText+5)
				}
				url := be.URL(t)
				f.write(url, set)
				ctx := context.Background()
				tl, err := Timeline(ctx, url, TimelineOptions{Tables: set.String(), SessionID: s.id.String()})
				if err != nil {
					t.Fatal(err)
				}
				ss := tl.Session
				if ss.SessionID != s.id.String() || ss.Model != "fred-flash" || ss.Agent != "fred" {
					t.Errorf("session = %+v", ss)
				}
				if want := map[schema.Set]string{schema.CentralSet: "alice", schema.SelfHostedSet: ""}[set]; ss.UserID != want {
					t.Errorf("user_id = %q, want %q", ss.UserID, want)
				}
				if ss.Turns != 4 || ss.ToolCalls != 15 || ss.Events != 4 || ss.Retries != 1 || ss.Denied != 1 ||
					ss.ModelChanges != 1 || ss.ModeChanges != 1 || ss.Tokens != 671 || ss.TurnMs != 2850 {
					t.Errorf("session sums = %+v", ss)
				}
				var seqs []int64
				for _, tu := range tl.Turns {
					seqs = append(seqs, tu.Seq)
				}
				if len(seqs) != 4 || seqs[0] != 0 || seqs[3] != 3 {
					t.Fatalf("turn seqs = %v", seqs)
				}
				if !tl.Turns[1].ModeChanged || tl.Turns[1].ModelChanged || !tl.Turns[2].ModelChanged || tl.Turns[3].ModeChanged {
					t.Errorf("changes marked wrong: %+v", tl.Turns)
				}
				if e := tl.Turns[1].APIErrorType; e == nil || *e != "rate_limit" {
					t.Errorf("turn 1 api_error_type = %v", e)
				}
				if tl.Turns[1].OffsetMs != 60_000 {
					t.Errorf("turn 1 offset = %d ms, want 60000", tl.Turns[1].OffsetMs)
				}
				// Events in the turn that had started last.
				names := func(es []TimelineEvent) string {
					var n []string
					for _, e := range es {
						n = append(n, e.Name)
					}
					return strings.Join(n, ",")
				}
				if got := names(tl.Lead); got != "slash_command" {
					t.Errorf("lead events = %q", got)
				}
				if got := names(tl.Turns[0].Events) + "|" + names(tl.Turns[1].Events); got != "mode_change|api_retry,model_swap" {
					t.Errorf("turn events = %q", got)
				}
				if p := tl.Turns[1].Events[0].Props; p["error_type"] != "rate_limit" || p["delay_ms"].(interface{ String() string }).String() != "500" {
					t.Errorf("retry props = %v", p)
				}
				// Loops: the stuck read_file run across turns 0 and 1, the
				// polling bash run across turns 2 and 3; not the pair, not A B A B.
				if len(tl.Loops) != 2 {
					t.Fatalf("loops = %+v", tl.Loops)
				}
				l0, l1 := tl.Loops[0], tl.Loops[1]
				if l0.ToolName != "read_file" || l0.Repeats != 4 || l0.Kind != "stuck" || l0.Turns != 2 || l0.DurationMs != 126 {
					t.Errorf("loop 0 = %+v", l0)
				}
				if l0.StartTurnSeq != 0 || l0.StartCallSeq != 1 || l1.StartTurnSeq != 2 || l1.StartCallSeq != 4 {
					t.Errorf("loop starts: %+v %+v", l0, l1)
				}
				if l1.ToolName != "bash" || l1.Repeats != 3 || l1.Kind != "polling" || l1.Turns != 2 {
					t.Errorf("loop 1 = %+v", l1)
				}
				var marks []string
				for _, tu := range tl.Turns {
					for _, c := range tu.Calls {
						m := "-"
						if c.Loop != nil {
							m = string(rune('a'+*c.Loop)) + string(rune('0'+c.LoopPos))
						}
						marks = append(marks, m)
					}
				}
				if got, want := strings.Join(marks, " "), "- a1 a2 a3 a4 - - - - - - - b1 b2 b3"; got != want {
					t.Errorf("loop marks = %q, want %q", got, want)
				}
				if c := tl.Turns[0].Calls[1]; c.Args != hash(2).String()[:8] || c.Result != hash(12).String()[:8] {
					t.Errorf("fingerprints = %q %q", c.Args, c.Result)
				}
				// The same loops as the report's for this session.
				r, err := Compute(ctx, url, Options{Tables: set.String()})
				if err != nil {
					t.Fatal(err)
				}
				var fromReport []string
				for _, l := range r.ToolLoops.Loops {
					if l.SessionID == s.id.String() {
						fromReport = append(fromReport, l.ToolName+"/"+l.Kind+"/"+string(rune('0'+l.Repeats))+"/"+string(rune('0'+l.Turns)))
					}
				}
				var fromTimeline []string
				for _, l := range tl.Loops {
					fromTimeline = append(fromTimeline, l.ToolName+"/"+l.Kind+"/"+string(rune('0'+l.Repeats))+"/"+string(rune('0'+l.Turns)))
				}
				if strings.Join(tlSorted(fromReport), " ") != strings.Join(tlSorted(fromTimeline), " ") {
					t.Errorf("report loops %v, timeline loops %v", fromReport, fromTimeline)
				}
				// Text: only on the self-hosted tables, cut at the bound.
				t0 := tl.Turns[0]
				if set == schema.SelfHostedSet {
					if !tl.HasText || t0.UserInput == nil || *t0.UserInput != "find the <script>bug</script>" || !t0.TextCut ||
						t0.AssistantText == nil || len([]rune(*t0.AssistantText)) != MaxTimelineText {
						t.Errorf("self-hosted text: has %v, input %v, cut %v", tl.HasText, t0.UserInput, t0.TextCut)
					}
				} else if tl.HasText || t0.UserInput != nil || t0.AssistantText != nil {
					t.Errorf("central timeline has text")
				}

				_, err = Timeline(ctx, url, TimelineOptions{Tables: set.String(), SessionID: "0190a000-0000-7000-8000-999999999999"})
				if !errors.Is(err, ErrNoSession) {
					t.Errorf("unknown session: %v", err)
				}
				_, err = Timeline(ctx, url, TimelineOptions{Tables: set.String(), SessionID: "x' OR 1=1 --"})
				if !errors.Is(err, ErrBadOptions) {
					t.Errorf("bad id: %v", err)
				}
			})
		}
	}
}

func tlSorted(xs []string) []string {
	out := append([]string(nil), xs...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
