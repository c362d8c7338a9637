package insights

import (
	"context"
	"database/sql"
	"math"
	"testing"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
)

// forEach runs fn on each backend and table set, each on a fresh database
// filled by build.
func forEach[C any](t *testing.T, build func(f *fx) C, fn func(t *testing.T, url string, set schema.Set, f *fx, c C)) {
	for _, be := range testdb.Backends {
		for _, set := range schema.Sets() {
			t.Run(be.Name+"/"+set.String(), func(t *testing.T) {
				t.Parallel()
				f := newFx(t)
				if set == schema.SelfHostedSet {
					// The run marks of schema v3 clients on one set, the
					// calls of older clients on the other: both ways of
					// finding loops meet every definition.
					f.marked = func(int) bool { return true }
				}
				c := build(f)
				url := be.URL(t)
				f.write(url, set)
				fn(t, url, set, f, c)
			})
		}
	}
}

func compute(t *testing.T, url string, o Options) *Report {
	t.Helper()
	r, err := Compute(context.Background(), url, o)
	if err != nil {
		t.Fatalf("Compute: %v", err)
	}
	return r
}

// loopCases are the edge cases of the loop definition, one session each.
type loopCases struct {
	runOf2, alternating, spansTurns, stuck, polling, unknown, otherArgs *sess
}

func buildLoops(f *fx) *loopCases {
	c := &loopCases{}
	// A A: a run of 2, a loop only with min-repeats 2.
	c.runOf2 = f.session("u1", 0, "fred-pro")
	t := c.runOf2.turn(turnSpec{})
	c.runOf2.call(t, 0, "bash", 1, 1, "", 5)
	c.runOf2.call(t, 1, "bash", 1, 1, "", 5)
	c.runOf2.call(t, 2, "grep", 2, 2, "", 5)
	// A B A B A B: never twice in a row.
	c.alternating = f.session("u1", 1, "fred-pro")
	t = c.alternating.turn(turnSpec{})
	for i := 0; i < 6; i++ {
		if i%2 == 0 {
			c.alternating.call(t, i, "bash", 1, 1, "", 5)
		} else {
			c.alternating.call(t, i, "read_file", 2, 2, "", 5)
		}
	}
	// turn 0: X A A; turn 1: A Y: a run of 3 across two turns, whose tokens
	// are both turns' once each. The calls are stored out of order.
	c.spansTurns = f.session("u2", 2, "fred-pro")
	t0 := c.spansTurns.turn(turnSpec{in: 1000, out: 100})
	t1 := c.spansTurns.turn(turnSpec{in: 2000, out: 200})
	c.spansTurns.call(t1, 1, "grep", 3, 3, "", 7)
	c.spansTurns.call(t1, 0, "bash", 1, 1, "", 7)
	c.spansTurns.call(t0, 2, "bash", 1, 1, "", 7)
	c.spansTurns.call(t0, 1, "bash", 1, 1, "", 7)
	c.spansTurns.call(t0, 0, "read_file", 2, 2, "", 7)
	// Same call, same result, 4 times: stuck.
	c.stuck = f.session("u2", 3, "fred-pro")
	t = c.stuck.turn(turnSpec{in: 10, out: 1})
	for i := 0; i < 4; i++ {
		c.stuck.call(t, i, "read_file", 4, 9, "", 100)
	}
	// Same call, changing result: polling.
	c.polling = f.session("u3", 4, "fred-pro")
	t = c.polling.turn(turnSpec{})
	for i := 0; i < 3; i++ {
		c.polling.call(t, i, "bash", 5, 10+i, "", 1)
	}
	// No result fingerprint (a v1 client): unknown.
	c.unknown = f.session("u3", 5, "fred-pro")
	t = c.unknown.turn(turnSpec{})
	for i := 0; i < 3; i++ {
		c.unknown.call(t, i, "bash", 6, 0, "", 1)
	}
	// Same tool, other args each time: no loop.
	c.otherArgs = f.session("u3", 6, "fred-pro")
	t = c.otherArgs.turn(turnSpec{})
	for i := 0; i < 4; i++ {
		c.otherArgs.call(t, i, "bash", 20+i, 1, "", 1)
	}
	return c
}

func TestLoopDefinition(t *testing.T) {
	forEach(t, buildLoops, func(t *testing.T, url string, set schema.Set, f *fx, c *loopCases) {
		r := compute(t, url, Options{Tables: set.String()})
		got := map[string]Loop{}
		for _, l := range r.ToolLoops.Loops {
			if _, dup := got[l.SessionID]; dup {
				t.Errorf("two loops in session %s", l.SessionID)
			}
			got[l.SessionID] = l
		}
		for _, s := range []*sess{c.runOf2, c.alternating, c.otherArgs} {
			if l, ok := got[s.id.String()]; ok {
				t.Errorf("session %s: loop %+v, want none", s.id, l)
			}
		}
		want := map[*sess]Loop{
			c.spansTurns: {ToolName: "bash", Repeats: 3, Kind: "stuck", Turns: 2, StartTurnSeq: 0, StartCallSeq: 1, Impact: Impact{Tokens: 3300, InputTokens: 3000, OutputTokens: 300, Ms: 21}},
			c.stuck:      {ToolName: "read_file", Repeats: 4, Kind: "stuck", Turns: 1, Impact: Impact{Tokens: 11, InputTokens: 10, OutputTokens: 1, Ms: 400}},
			c.polling:    {ToolName: "bash", Repeats: 3, Kind: "polling", Turns: 1, Impact: Impact{Ms: 3}},
			c.unknown:    {ToolName: "bash", Repeats: 3, Kind: "unknown", Turns: 1, Impact: Impact{Ms: 3}},
		}
		for s, w := range want {
			w.SessionID, w.Model = s.id.String(), "fred-pro"
			g := got[s.id.String()]
			if g != w {
				t.Errorf("loop of session %s:\n got %+v\nwant %+v", s.id, g, w)
			}
		}
		if len(r.ToolLoops.Loops) != len(want) || r.ToolLoops.Stuck != 2 || r.ToolLoops.Polling != 1 || r.ToolLoops.Unknown != 1 {
			t.Errorf("%d loops, %d stuck, %d polling, %d unknown; want 4, 2, 1, 1", len(r.ToolLoops.Loops), r.ToolLoops.Stuck, r.ToolLoops.Polling, r.ToolLoops.Unknown)
		}
		// The headline counts stuck loops only; v1 loops are a problem of their own.
		kinds := map[string]int64{}
		for _, p := range r.Problems {
			kinds[p.Kind] = p.Count
		}
		if kinds["tool_loops"] != 2 || kinds["tool_loops_unverified"] != 1 {
			t.Errorf("problems %+v: want tool_loops 2, tool_loops_unverified 1", r.Problems)
		}
		// bash: 3 (spansTurns) + 3 + 3 + 4 (otherArgs) + 2 (runOf2) + 3 (alternating) = 18 calls, 3 loops.
		for _, bt := range r.ToolLoops.ByTool {
			if bt.ToolName == "bash" && (bt.Loops != 3 || bt.Stuck != 1 || bt.Sessions != 3 || bt.Calls != 18) {
				t.Errorf("by_tool bash %+v: want 3 loops, 1 stuck, 3 sessions, 18 calls", bt)
			}
		}

		// With min-repeats 2 the run of 2 is a loop, the alternation still not.
		r = compute(t, url, Options{Tables: set.String(), MinRepeats: 2})
		found := false
		for _, l := range r.ToolLoops.Loops {
			switch l.SessionID {
			case c.runOf2.id.String():
				found = l.Repeats == 2 && l.ToolName == "bash"
			case c.alternating.id.String(), c.otherArgs.id.String():
				t.Errorf("min-repeats 2: loop %+v", l)
			}
		}
		if !found || r.ToolLoops.MinRepeats != 2 {
			t.Errorf("min-repeats 2: the run of 2 is not reported: %+v", r.ToolLoops.Loops)
		}
	})
}

func TestDeadCommandsWindow(t *testing.T) {
	forEach(t, func(f *fx) any {
		// Before the window: uses compact and undo; its catalog has "ancient".
		old := f.session("u1", -60*24, "fred-pro", "help", "compact", "undo", "ancient")
		old.event(1, schema.SlashCommandProps{Command: "compact"})
		old.event(1, schema.SlashCommandProps{Command: "undo"})
		// In the window: u1 twice in two sessions, u2 once.
		a := f.session("u1", 0, "fred-pro", "help", "compact", "undo", "plan")
		a.event(1, schema.SlashCommandProps{Command: "help"})
		a.event(2, schema.SlashCommandProps{Command: "help"})
		b := f.session("u1", 10, "fred-pro", "help", "compact", "plan")
		b.event(1, schema.SlashCommandProps{Command: "help"})
		b.event(1, schema.SlashCommandProps{Command: "plan"})
		c := f.session("u2", 20, "fred-pro", "help", "compact", "undo", "plan")
		c.event(1, schema.SlashCommandProps{Command: "help"})
		return nil
	}, func(t *testing.T, url string, set schema.Set, f *fx, _ any) {
		r := compute(t, url, Options{Tables: set.String(), From: f.base.Add(-1), To: f.base.Add(24 * 3600e9)})
		helpUsers := int64(2) // u1, u2
		if set == schema.SelfHostedSet {
			helpUsers = 3 // sessions
		}
		want := []CommandUse{{"help", 4, helpUsers}, {"plan", 1, 1}}
		if !equalSlices(r.DeadCommands.Commands, want) {
			t.Errorf("commands %+v, want %+v", r.DeadCommands.Commands, want)
		}
		// compact and undo were used only before the window; "ancient" is in
		// no catalog of the window.
		if w := []string{"compact", "undo"}; !equalSlices(r.DeadCommands.Unused, w) {
			t.Errorf("unused %v, want %v", r.DeadCommands.Unused, w)
		}
		if r.Totals.Sessions != 3 {
			t.Errorf("%d sessions in the window, want 3", r.Totals.Sessions)
		}
	})
}

func TestRetryStorms(t *testing.T) {
	type cases struct{ storm, four *sess }
	forEach(t, func(f *fx) cases {
		storm := f.session("u1", 0, "fred-flash")
		storm.end(10)
		st := storm.turn(turnSpec{model: "fred-flash"})
		storm.call(st, 0, "web_fetch", 1, 1, "", 5)
		for a := 1; a <= 5; a++ {
			storm.event(0.1, schema.APIRetryProps{Attempt: int64(a), DelayMs: int64(100 * a), ErrorType: "rate_limit", Status: 429, LatencyMs: 10})
		}
		four := f.session("u2", 1, "fred-pro")
		four.end(2.5)
		for a := 1; a <= 4; a++ {
			four.event(0.1, schema.APIRetryProps{Attempt: int64(a), DelayMs: 1000, ErrorType: "overloaded", Status: 529})
		}
		four.turn(turnSpec{apiErr: "overloaded", finish: "error"})
		quiet := f.session("u2", 2, "fred-pro")
		quiet.turn(turnSpec{})
		return cases{storm, four}
	}, func(t *testing.T, url string, set schema.Set, f *fx, c cases) {
		storm := c.storm
		r := compute(t, url, Options{Tables: set.String()})
		rs := r.RetryStorms
		if rs.Retries != 9 || rs.Sessions != 2 {
			t.Errorf("%d retries in %d sessions, want 9 in 2", rs.Retries, rs.Sessions)
		}
		wantTypes := []ErrorTypeCount{{"rate_limit", 5, 1, 420}, {"overloaded", 4, 1, 1000}}
		if !equalSlices(rs.ErrorTypes, wantTypes) {
			t.Errorf("error types %+v, want %+v", rs.ErrorTypes, wantTypes)
		}
		if w := []TurnErrorCount{{"overloaded", 1, 1}}; !equalSlices(rs.TurnErrors, w) {
			t.Errorf("turn errors %+v, want %+v", rs.TurnErrors, w)
		}
		// Delays 100 200 300 400 500 1000 1000 1000 1000: p50 = 500,
		// p95 = 1000; per session 4 and 5: p50 4.5.
		if rs.DelayMs.P50 != 500 || rs.DelayMs.P95 != 1000 || rs.RetriesPerSession.P50 != 4.5 || !near(rs.RetriesPerSession.P95, 4.95) {
			t.Errorf("delay %+v, per session %+v", rs.DelayMs, rs.RetriesPerSession)
		}
		want := []StormSession{{SessionID: storm.id.String(), Model: "fred-flash", Retries: 5, Impact: Impact{Ms: 1500 + 50}}}
		if !equalSlices(rs.StormSessions, want) {
			t.Errorf("storms %+v, want %+v", rs.StormSessions, want)
		}
		if w := []ToolRetries{{"web_fetch", 5}}; !equalSlices(rs.BeforeStormRetries, w) {
			t.Errorf("tools before storm retries %+v, want %+v", rs.BeforeStormRetries, w)
		}
		// Ended sessions last 10 and 2.5 minutes; the storm one 10.
		if d := rs.SessionDurationMs; d.All.P50 != 375000 || d.Storm != (Percentiles{600000, 600000, 600000}) {
			t.Errorf("session durations %+v", d)
		}
		if len(rs.Attempts) != 5 || rs.Attempts[3] != (AttemptCount{4, 2}) {
			t.Errorf("attempts %+v", rs.Attempts)
		}
	})
}

func TestStuckRule(t *testing.T) {
	type cases struct{ three, manyCalls, swapped, two, onPro *sess }
	forEach(t, func(f *fx) cases {
		three := f.session("u1", 0, "fred-flash")
		for _, fin := range []string{"length", "stop", "error", "length"} {
			three.turn(turnSpec{model: "fred-flash", finish: fin, in: 100, out: 10, ms: 1000})
		}
		manyCalls := f.session("u1", 1, "fred-flash")
		for i := 0; i < 3; i++ {
			manyCalls.turn(turnSpec{model: "fred-flash", calls: 8, in: 1, ms: 1})
		}
		// Two struggles, then the user swaps to pro, where more struggles
		// do not count: not stuck by the rule, but swapped.
		swapped := f.session("u2", 2, "fred-flash")
		swapped.turn(turnSpec{model: "fred-flash", finish: "length"})
		swapped.turn(turnSpec{model: "fred-flash", finish: "length"})
		swapped.event(2.5, schema.ModelSwapProps{From: "fred-flash", To: "fred-pro"})
		swapped.turn(turnSpec{model: "fred-pro", finish: "length"})
		swapped.turn(turnSpec{model: "fred-flash", finish: "length"}) // after the swap
		two := f.session("u2", 3, "fred-flash")
		two.turn(turnSpec{model: "fred-flash", finish: "length"})
		two.turn(turnSpec{model: "fred-flash", calls: 7})
		two.turn(turnSpec{model: "fred-flash", finish: "error"})
		onPro := f.session("u3", 4, "fred-pro")
		for i := 0; i < 4; i++ {
			onPro.turn(turnSpec{model: "fred-pro", finish: "length"})
		}
		return cases{three, manyCalls, swapped, two, onPro}
	}, func(t *testing.T, url string, set schema.Set, f *fx, c cases) {
		three, manyCalls, swapped, two, onPro := c.three, c.manyCalls, c.swapped, c.two, c.onPro
		r := compute(t, url, Options{Tables: set.String()})
		st := r.Stuck
		got := map[string]StuckSession{}
		for _, s := range st.StuckSessions {
			got[s.SessionID] = s
		}
		if len(got) != 2 {
			t.Errorf("stuck sessions %+v, want %s and %s", st.StuckSessions, three.id, manyCalls.id)
		}
		if s := got[three.id.String()]; s.StruggleTurns != 3 || s.Impact != (Impact{Tokens: 440, InputTokens: 400, OutputTokens: 40, Ms: 4000}) || s.Rule != "struggle_turns" {
			t.Errorf("three struggles: %+v", s)
		}
		if s := got[manyCalls.id.String()]; s.StruggleTurns != 3 {
			t.Errorf("≥ 8 calls: %+v", s)
		}
		for _, s := range []*sess{two, swapped, onPro} {
			if g, ok := got[s.id.String()]; ok {
				t.Errorf("not stuck by the rule: %+v", g)
			}
		}
		if st.Swapped != 1 || st.Flagged != 2 || st.Caught != 0 {
			t.Errorf("swapped %d flagged %d caught %d, want 1 2 0", st.Swapped, st.Flagged, st.Caught)
		}
		if w := []string{"fred-flash"}; !equalSlices(st.FastModels, w) {
			t.Errorf("fast models %v", st.FastModels)
		}
		var flash ModelStats
		for _, m := range st.Models {
			if m.Model == "fred-flash" {
				flash = m
			}
		}
		if flash.Turns != 13 || flash.Sessions != 4 || flash.FinishReasons["length"] != 6 || flash.FinishReasons["stop"] != 5 || flash.FinishReasons["error"] != 2 {
			t.Errorf("fred-flash stats %+v", flash)
		}
	})
}

func TestPlanMode(t *testing.T) {
	forEach(t, func(f *fx) any {
		// plan → act: acted.
		a := f.session("u1", 0, "fred-pro")
		a.turn(turnSpec{mode: "plan"})
		a.turn(turnSpec{mode: "act"})
		a.turn(turnSpec{mode: "act"})
		a.turn(turnSpec{mode: "act"})
		// act, mode_change to plan, nothing after: left without acting.
		b := f.session("u1", 10, "fred-pro")
		b.turn(turnSpec{mode: "act"})
		b.event(2, schema.ModeChangeProps{From: "act", To: "plan"})
		// plan, act, act, plan: back too early (and acted).
		c := f.session("u2", 20, "fred-pro")
		for _, m := range []string{"plan", "act", "act", "plan"} {
			c.turn(turnSpec{mode: m})
		}
		// plan, act ×3, plan: acted, not too early.
		d := f.session("u2", 30, "fred-pro")
		for _, m := range []string{"plan", "act", "act", "act", "plan"} {
			d.turn(turnSpec{mode: m})
		}
		// only plan turns.
		e := f.session("u3", 40, "fred-pro")
		e.turn(turnSpec{mode: "plan"})
		e.turn(turnSpec{mode: "plan"})
		// act only: no plan session.
		g := f.session("u3", 50, "fred-pro")
		g.turn(turnSpec{mode: "act"})
		return nil
	}, func(t *testing.T, url string, set schema.Set, f *fx, _ any) {
		pm := compute(t, url, Options{Tables: set.String()}).PlanMode
		want := PlanMode{Sessions: 6, PlanSessions: 5, PlanShare: 5.0 / 6, PlanToAct: 3, LeftPlanWithoutActing: 2, BackToPlanWithin2Turns: 1}
		pm.Finding = ""
		if pm != want {
			t.Errorf("plan mode %+v\nwant       %+v", pm, want)
		}
	})
}

func TestPermissionsAndFilters(t *testing.T) {
	forEach(t, func(f *fx) any {
		a := f.session("u1", 0, "fred-pro")
		ta := a.turn(turnSpec{model: "fred-pro"})
		for i, p := range []string{"auto_allowed", "user_allowed", "denied", "denied"} {
			a.call(ta, i, "bash", i+1, 1, p, 1)
		}
		a.call(ta, 4, "grep", 9, 1, "auto_allowed", 1)
		b := f.session("u2", 1, "fred-flash")
		tb := b.turn(turnSpec{model: "fred-flash"})
		b.call(tb, 0, "bash", 1, 1, "denied", 1)
		return nil
	}, func(t *testing.T, url string, set schema.Set, f *fx, _ any) {
		r := compute(t, url, Options{Tables: set.String()})
		want := []ToolPermissions{{"bash", 5, 1, 1, 3, 0.6}, {"grep", 1, 1, 0, 0, 0}}
		if !equalSlices(r.Permissions.Tools, want) {
			t.Errorf("permissions %+v, want %+v", r.Permissions.Tools, want)
		}
		r = compute(t, url, Options{Tables: set.String(), Model: "fred-flash"})
		if w := []ToolPermissions{{"bash", 1, 0, 0, 1, 1}}; r.Totals.Sessions != 1 || !equalSlices(r.Permissions.Tools, w) {
			t.Errorf("--model fred-flash: %d sessions, %+v", r.Totals.Sessions, r.Permissions.Tools)
		}
		// Records without an agent are fred's.
		if r := compute(t, url, Options{Tables: set.String(), Agent: "fred"}); r.Totals.Sessions != 2 {
			t.Errorf("--agent fred: %d sessions, want 2", r.Totals.Sessions)
		}
		_, err := Compute(context.Background(), url, Options{Tables: set.String(), Agent: "codex"})
		if err == nil || !isNoData(err) {
			t.Errorf("--agent codex: %v, want no data", err)
		}
	})
}

func TestPercentilesMatchPostgres(t *testing.T) {
	// Durations 1..n for n = 1, 2, 7, 20, 101: every interpolation case.
	build := func(f *fx) {
		for _, n := range []int{1, 2, 7, 20, 101} {
			s := f.session("u1", float64(n), "fred-pro")
			for i := 1; i <= n; i++ {
				s.turn(turnSpec{model: "m" + itoa(n), ms: int64(i * i), calls: int64(i % 5)})
			}
		}
	}
	var got [2]map[string]ModelStats
	var urls [2]string
	for i, be := range testdb.Backends {
		f := newFx(t)
		build(f)
		url := be.URL(t)
		urls[i] = url
		f.write(url, schema.CentralSet)
		got[i] = map[string]ModelStats{}
		for _, m := range compute(t, url, Options{}).Stuck.Models {
			got[i][m.Model] = m
		}
	}
	for m, pg := range got[0] {
		lite := got[1][m]
		if pg.DurationMs != lite.DurationMs || pg.ToolCallsPerTurn != lite.ToolCallsPerTurn {
			t.Errorf("%s: postgres %+v %+v, sqlite %+v %+v", m, pg.DurationMs, pg.ToolCallsPerTurn, lite.DurationMs, lite.ToolCallsPerTurn)
		}
	}
	// The same numbers, to the bit, as PostgreSQL's own percentile_cont over
	// the turns (the report counts values instead of sorting them).
	db, err := sql.Open("pgx", urls[0])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT model, percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms),
		percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms), percentile_cont(0.5) WITHIN GROUP (ORDER BY num_tool_calls),
		percentile_cont(0.95) WITHIN GROUP (ORDER BY num_tool_calls), percentile_cont(0.99) WITHIN GROUP (ORDER BY num_tool_calls)
		FROM telemetry_turns GROUP BY model`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var m string
		var d, c Percentiles
		if err := rows.Scan(&m, &d.P50, &d.P95, &d.P99, &c.P50, &c.P95, &c.P99); err != nil {
			t.Fatal(err)
		}
		n++
		for i := range got {
			if got[i][m].DurationMs != d || got[i][m].ToolCallsPerTurn != c {
				t.Errorf("%s on backend %d: %+v %+v; percentile_cont gives %+v %+v", m, i, got[i][m].DurationMs, got[i][m].ToolCallsPerTurn, d, c)
			}
		}
	}
	if n != 5 {
		t.Errorf("percentile_cont over %d models, want 5", n)
	}
	// And the number itself: 1, 4, 9, …, 49 (n = 7): p95 at rank 5.7 → 36 + 0.7·13.
	if p := got[1]["m7"].DurationMs.P95; !near(p, 45.1) {
		t.Errorf("sqlite p95 of the squares 1..49: %v, want 45.1", p)
	}
	if len(got[0]) != 5 || len(got[1]) != 5 {
		t.Errorf("models: %d and %d, want 5", len(got[0]), len(got[1]))
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func itoa(n int) string {
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

func equalSlices[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
