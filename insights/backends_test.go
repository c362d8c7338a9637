package insights

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/rules"
	"github.com/fredcode/fredtel/schema"
)

// TestBackendsAgree: the same records give the same report, to the byte, on
// PostgreSQL and SQLite, for both table sets.
func TestBackendsAgree(t *testing.T) {
	for _, set := range schema.Sets() {
		t.Run(set.String(), func(t *testing.T) {
			t.Parallel()
			var got [2][]byte
			for i, be := range testdb.Backends {
				f := newFx(t)
				f.marked = func(i int) bool { return i%2 == 1 } // half the sessions from v3 clients
				mixedFleet(f, 40)
				url := be.URL(t)
				f.write(url, set)
				r, err := Compute(context.Background(), url, Options{Tables: set.String()})
				if err != nil {
					t.Fatalf("%s: %v", be.Name, err)
				}
				if got[i], err = json.Marshal(r); err != nil {
					t.Fatal(err)
				}
			}
			if string(got[0]) != string(got[1]) {
				t.Errorf("postgres and sqlite differ:\npostgres %s\nsqlite   %s", got[0], got[1])
			}
		})
	}
}

// TestRunMarksChangeNothing: a fleet whose clients marked their calls' runs
// gives the report of the same fleet unmarked (found by sorting), to the
// byte, loops included: the index of the repeats is an optimisation, not a
// second definition.
func TestRunMarksChangeNothing(t *testing.T) {
	for _, be := range testdb.Backends {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			var got [2][]byte
			for i, marked := range []func(int) bool{nil, func(int) bool { return true }} {
				f := newFx(t)
				f.marked = marked
				mixedFleet(f, 60)
				url := be.URL(t)
				f.write(url, schema.CentralSet)
				for _, mr := range []int{2, 3} {
					r, err := Compute(context.Background(), url, Options{MinRepeats: mr})
					if err != nil {
						t.Fatal(err)
					}
					if len(r.ToolLoops.Loops) == 0 {
						t.Fatalf("min-repeats %d: the fleet has no loop to compare", mr)
					}
					b, _ := json.Marshal(r)
					got[i] = append(got[i], b...)
				}
			}
			if string(got[0]) != string(got[1]) {
				t.Errorf("marked and unmarked fleets differ:\nunmarked %s\nmarked   %s", got[0], got[1])
			}
		})
	}
}

// TestStuckFromRollupOrTurns: the stuck sessions read from turn_counts are
// the ones read from the turns; and the rollup's rule is the rule's default.
func TestStuckFromRollupOrTurns(t *testing.T) {
	if schema.StruggleToolCalls != rules.StruggleToolCalls {
		t.Fatalf("turn_counts.struggles counts turns of %d tool calls, the rule says %d", schema.StruggleToolCalls, rules.StruggleToolCalls)
	}
	for _, be := range testdb.Backends {
		t.Run(be.Name, func(t *testing.T) {
			f := newFx(t)
			mixedFleet(f, 80)
			url := be.URL(t)
			f.write(url, schema.CentralSet)
			var got [2]string
			for i, rollup := range []bool{true, false} {
				stuckFromRollup = rollup
				r, err := Compute(context.Background(), url, Options{StruggleTurns: 2})
				stuckFromRollup = true
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Stuck.StuckSessions) == 0 || r.Stuck.Swapped == 0 {
					t.Fatalf("the fleet has %d stuck sessions and %d swaps: nothing to compare", len(r.Stuck.StuckSessions), r.Stuck.Swapped)
				}
				b, _ := json.Marshal(r.Stuck)
				got[i] = string(b)
			}
			if got[0] != got[1] {
				t.Errorf("stuck from turn_counts and from the turns differ:\nrollup %s\nturns  %s", got[0], got[1])
			}
		})
	}
}

// mixedFleet is n varied sessions from a fixed recipe: every analysis has
// something to say and percentiles interpolate.
func mixedFleet(f *fx, n int) {
	users := []string{"alice", "bob", "carol", "dave"}
	tools := []string{"bash", "read_file", "grep"}
	finish := []string{"stop", "tool_calls", "length", "error", "stop"}
	for i := 0; i < n; i++ {
		model := "fred-flash"
		if i%3 == 0 {
			model = "fred-pro"
		}
		s := f.session(users[i%len(users)], float64(i*10), model, "help", "plan", "model", "compact")
		if i%3 != 2 {
			s.end(float64(i) * 1.3337)
		}
		for k := 0; k < 2+i%5; k++ {
			mode := "act"
			if (i+k)%4 == 0 {
				mode = "plan"
			}
			tm := model
			if k > 3 && i%2 == 0 {
				tm = "fred-pro"
			}
			calls := (i * (k + 1)) % 11
			tid := s.turn(turnSpec{model: tm, mode: mode, finish: finish[(i+k)%len(finish)], calls: int64(calls),
				in: int64(100 * (i + k + 1)), out: int64(7 * (i + 2*k + 1)), ms: int64(37 * (i*k + 1))})
			for c := 0; c < calls && c < 5; c++ {
				args := c % 2
				if i%4 == 1 {
					args = 9 // the same call again and again: a loop
				}
				res := 1 + (i+c)%3
				if i%8 == 1 {
					res = 4 // same result: stuck
				}
				s.call(tid, c, tools[(i+c)%3*args%3], args+1, res, []string{"auto_allowed", "user_allowed", "denied"}[(i+c)%3], int64(11*(c+1)))
			}
		}
		if i%5 == 0 {
			s.event(0.1, schema.SlashCommandProps{Command: []string{"help", "plan"}[i%2]})
		}
		for a := 0; a < i%7; a++ {
			s.event(0.2, schema.APIRetryProps{Attempt: int64(a + 1), DelayMs: int64(250 << (a % 4)), ErrorType: []string{"rate_limit", "overloaded"}[a%2], Status: 429})
		}
		if i%6 == 0 {
			s.event(0.3, schema.ModelSwapProps{From: "fred-flash", To: "fred-pro"})
		}
		if i%6 == 1 { // a flash session whose user swapped up after its third turn
			s.event(2.5, schema.ModelSwapProps{From: "fred-flash", To: "fred-pro"})
		}
		if i%9 == 0 {
			s.event(0.4, schema.ModeChangeProps{From: "act", To: "plan"})
		}
	}
}

// TestHourRollupChangesNothing: the model table read from turn_hours (the
// hours wholly inside the window, the turns of the sessions at its edges,
// exact durations from their buckets) is the one counted from the turns,
// to the byte, whatever the window's edges.
func TestHourRollupChangesNothing(t *testing.T) {
	for _, be := range testdb.Backends {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			f := newFx(t)
			mixedFleet(f, 90) // sessions every 10 minutes for 15 hours
			for i := 0; i < 40; i++ {
				s := f.session("erin", float64(i*23), "fred-flash")
				for k := 0; k < 5; k++ { // durations across many buckets
					s.turn(turnSpec{model: "fred-flash", calls: int64(k * i % 40), ms: int64(k*k*i*i*7 + i)})
				}
			}
			url := be.URL(t)
			// Erin's turns come before her sessions (a client's
			// spool can send them so): then the pair (turn, session) is
			// new to the fold by its session.
			f.writeOnly(url, schema.CentralSet, func(u string) bool { return u != "erin" })
			erin := f.batch("erin")
			sessions := erin.Sessions
			erin.Sessions = nil
			f.writeOnly(url, schema.CentralSet, func(u string) bool { return u == "erin" })
			erin.Sessions = sessions
			at := func(m int) time.Time { return f.base.Add(time.Duration(m) * time.Minute) }
			windows := []Options{
				{},
				{From: at(37), To: at(313)},     // partial hours at both edges
				{From: at(60), To: at(600)},     // whole hours only
				{From: at(61), To: at(119)},     // less than an hour: the turns
				{From: at(-1), To: at(24 * 60)}, // every session
				{From: at(180), Agent: "fred"},  // a filter: the turns
			}
			compare := func(state string, noFold bool) {
				t.Helper()
				for _, o := range windows {
					var got [2]string
					for i, count := range []bool{false, true} {
						o.countTurns, o.noFold = count, noFold || count
						r, err := Compute(context.Background(), url, o)
						if err != nil {
							t.Fatal(err)
						}
						if len(r.Stuck.Models) == 0 {
							t.Fatalf("%s, %v–%v: no model to compare", state, o.From, o.To)
						}
						b, _ := json.Marshal(r.Stuck.Models)
						got[i] = string(b)
					}
					if n := hoursDisagreed.Load(); n > 0 {
						t.Fatalf("%s: turn_hours disagreed with the turns %d times", state, n)
					}
					if got[0] != got[1] {
						t.Errorf("%s, %v–%v: turn_hours and the turns differ:\nhours %s\nturns %s", state, o.From, o.To, got[0], got[1])
					}
				}
			}
			compare("nothing folded", true)
			compare("folded", false)
			f.writeOnly(url, schema.CentralSet, func(u string) bool { return u == "erin" })
			compare("sessions written after their folded turns, not folded", true)
			compare("all folded", false)
		})
	}
}
