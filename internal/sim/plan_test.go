package sim

import (
	"cmp"
	"encoding/binary"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func fakeIDs(n int) []uuid.UUID {
	ids := make([]uuid.UUID, n)
	for i := range ids {
		binary.BigEndian.PutUint64(ids[i][8:], uint64(i+1))
	}
	return ids
}

func fakeUsers(n int) []string {
	u := make([]string, n)
	for i := range u {
		u[i] = UserID(i + 1)
	}
	return u
}

// TestPlanIsDeterministic: the same seed plans the same fleet; another seed
// another one.
func TestPlanIsDeterministic(t *testing.T) {
	a, b := planFleet(7, 50, 4, DefaultSpan), planFleet(7, 50, 4, DefaultSpan)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two plans from seed 7 differ")
	}
	c := planFleet(8, 50, 4, DefaultSpan)
	if reflect.DeepEqual(a[0].steps, c[0].steps) {
		t.Fatal("seeds 7 and 8 planned the same first session")
	}
}

// TestPlanPathologies: what was injected is exactly what the definitions
// find in the records, and normal traffic never looks like a pathology.
func TestPlanPathologies(t *testing.T) {
	const n = 3000
	plans := planFleet(1, n, 30, DefaultSpan)
	ids := fakeIDs(n)
	tr := truth(1, "central", plans, ids, fakeUsers(30), time.Unix(0, 0))
	index := map[uuid.UUID]int{}
	for i, id := range ids {
		index[id] = i
	}

	// Loops: one per injected stuck or polling run, of its length and kind.
	type lk struct {
		i       int
		kind    string
		repeats int
	}
	var want, got []lk
	for i, p := range plans {
		for _, in := range p.injected {
			if in.kind == "stuck" || in.kind == "polling" {
				want = append(want, lk{i, in.kind, in.repeats})
			}
		}
	}
	for _, l := range tr.ToolLoops.Loops {
		got = append(got, lk{index[l.SessionID], l.Kind, l.Repeats})
	}
	order := func(a, b lk) int {
		return cmp.Or(cmp.Compare(a.i, b.i), strings.Compare(a.kind, b.kind), cmp.Compare(a.repeats, b.repeats))
	}
	slices.SortFunc(want, order)
	slices.SortFunc(got, order)
	if len(want) < 200 || !reflect.DeepEqual(want, got) {
		t.Errorf("%d loops injected, %d found by the definition", len(want), len(got))
	}
	spans := map[string]int{}
	for _, l := range tr.ToolLoops.Loops {
		spans[l.Span]++
	}
	if spans["one_turn"] == 0 || spans["per_turn"] == 0 || spans["two_turns"] == 0 {
		t.Errorf("loops by span: %v, want each kind", spans)
	}
	near := map[string]int{}
	for _, m := range tr.ToolLoops.NearMisses {
		near[m.Pattern]++
	}
	if near["run_of_2"] < 50 || near["alternating"] < 50 {
		t.Errorf("near misses: %v", near)
	}

	// Stuck sessions: exactly the injected ones.
	stuck := map[int]bool{}
	for _, s := range tr.Stuck.Sessions {
		stuck[index[s.SessionID]] = true
	}
	nStuck := 0
	for i, p := range plans {
		if p.stuck != stuck[i] {
			t.Errorf("session %d: stuck planned %v, found %v", i, p.stuck, stuck[i])
		}
		if p.stuck {
			nStuck++
		}
	}
	if nStuck < 100 {
		t.Errorf("only %d stuck sessions in %d", nStuck, n)
	}

	// Storms: the injected ones have at least StormRetries, the others at
	// most maxNormalRetries.
	storm := map[int]int{}
	for _, s := range tr.RetryStorms.StormSessions {
		storm[index[s.SessionID]] = s.Retries
	}
	for i, p := range plans {
		if p.storm != (storm[i] > 0) {
			t.Errorf("session %d: storm planned %v, found %d retries", i, p.storm, storm[i])
		}
		if !p.storm && tr.SessionsList[i].Retries > maxNormalRetries {
			t.Errorf("session %d: %d retries without a storm", i, tr.SessionsList[i].Retries)
		}
	}
	if len(storm) < 100 {
		t.Errorf("only %d storm sessions", len(storm))
	}

	// Dead commands.
	if want := []string{"bug", "doctor", "export", "share", "vim"}; !reflect.DeepEqual(tr.Commands.Unused, want) {
		t.Errorf("unused %v, want %v", tr.Commands.Unused, want)
	}
	// Denials.
	for _, tp := range tr.Permissions.Tools {
		share := float64(tp.Denied) / float64(tp.AutoAllowed+tp.UserAllowed+tp.Denied)
		heavy := tp.ToolName == "bash" || tp.ToolName == "web_fetch"
		if heavy && share < 0.15 || !heavy && share > 0.1 {
			t.Errorf("%s: denied share %.2f", tp.ToolName, share)
		}
	}
	// Plan mode.
	var drop, back, planned int
	for _, p := range plans {
		switch p.plan {
		case planDropOff:
			drop++
		case planBackEarly:
			back++
		}
		if p.plan != planNone {
			planned++
		}
	}
	pm := tr.PlanMode
	if pm.PlanSessions != planned || pm.LeftPlanWithoutActing != drop || pm.BackToPlanWithin2Turns != back || drop == 0 || back == 0 {
		t.Errorf("plan truth %+v; planned %d, drop-off %d, back early %d", pm, planned, drop, back)
	}

	// Times: in order, inside the session, whole milliseconds.
	for i, p := range plans {
		var last time.Duration
		for j, s := range p.steps {
			if s.at < last || s.at%time.Millisecond != 0 || s.end%time.Millisecond != 0 || s.at > p.length || s.end > p.length {
				t.Fatalf("session %d step %d at %v (end %v) after %v, length %v", i, j, s.at, s.end, last, p.length)
			}
			last = s.at
		}
		if p.start < 0 || p.start+p.length > DefaultSpan {
			t.Fatalf("session %d outside the window: %v + %v", i, p.start, p.length)
		}
	}
	t.Logf("%+v", tr.Totals)
}
