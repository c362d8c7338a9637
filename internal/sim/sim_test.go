package sim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fredcode/fredtel/insights"
	"github.com/fredcode/fredtel/internal/sim"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// TestFleetThroughTheRealServer: a fleet recorded through the client
// library and the real fredtel serve (at its default rate limit) lands whole,
// per user, on both backends, and the insights recover its ground truth.
func TestFleetThroughTheRealServer(t *testing.T) {
	for _, b := range testdb.Backends {
		t.Run(b.Name, func(t *testing.T) {
			db := b.URL(t)
			proc := testkit.StartServer(t, db, "")
			ctx := context.Background()
			keys, err := sim.CreateKeys(ctx, db, 8)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			tr, err := sim.Run(ctx, sim.Config{Sessions: 300, Seed: 42, TempDir: t.TempDir()}, sim.Target{APIURL: "http://" + proc.URL, Keys: keys})
			if err != nil {
				t.Fatalf("%v\nserver: %s", err, proc.Stderr())
			}
			t.Logf("300 sessions in %v: %+v", time.Since(start), tr.Totals)
			for table, want := range map[string]int{"telemetry_sessions": tr.Totals.Sessions, "telemetry_turns": tr.Totals.Turns,
				"telemetry_tool_calls": tr.Totals.ToolCalls, "telemetry_events": tr.Totals.Events} {
				if got := testdb.QueryInt(t, db, "SELECT count(*) FROM "+table); got != want {
					t.Errorf("%s: %d rows, truth says %d", table, got, want)
				}
			}
			perUser := map[string]int{}
			for _, s := range tr.SessionsList {
				perUser[s.User]++
			}
			for u, n := range perUser {
				if got := testdb.QueryInt(t, db, fmt.Sprintf("SELECT count(*) FROM telemetry_sessions WHERE user_id = '%s'", u)); got != n {
					t.Errorf("%s: %d sessions stored, truth says %d", u, got, n)
				}
			}
			if len(perUser) < 4 {
				t.Errorf("sessions of %d users, want several", len(perUser))
			}
			if got := testdb.QueryInt(t, db, "SELECT count(*) FROM telemetry_sessions WHERE ended_at IS NULL"); got != 0 {
				t.Errorf("%d sessions without ended_at", got)
			}
			checkRecovered(t, db, insights.TablesCentral, tr)
		})
	}
}

// TestSelfHostedFleet: the same through the self-hosted writer, into the
// dsc_* tables, text included; the insights over them recover the truth.
func TestSelfHostedFleet(t *testing.T) {
	for _, b := range testdb.Backends {
		t.Run(b.Name, func(t *testing.T) {
			db := b.URL(t)
			tr, err := sim.Run(context.Background(), sim.Config{Sessions: 200, Seed: 7, TempDir: t.TempDir()}, sim.Target{DBURL: db})
			if err != nil {
				t.Fatal(err)
			}
			if tr.Route != "self-hosted" {
				t.Errorf("route %q", tr.Route)
			}
			if got := testdb.QueryInt(t, db, "SELECT count(*) FROM dsc_turns"); got != tr.Totals.Turns {
				t.Errorf("dsc_turns: %d rows, truth says %d", got, tr.Totals.Turns)
			}
			if got := testdb.QueryInt(t, db, "SELECT count(*) FROM dsc_turns WHERE user_input IS NOT NULL AND user_input <> ''"); got == 0 {
				t.Error("self-hosted turns carry no text")
			}
			checkRecovered(t, db, insights.TablesSelfHosted, tr)
		})
	}
}

// report is the part of the insights' JSON the truth is checked against
// (the documented JSON shape, not the Go types).
type report struct {
	Totals struct {
		Sessions  int `json:"sessions"`
		Turns     int `json:"turns"`
		ToolCalls int `json:"tool_calls"`
	} `json:"totals"`
	Stuck struct {
		StuckSessions []struct {
			SessionID string `json:"session_id"`
		} `json:"stuck_sessions"`
	} `json:"stuck"`
	DeadCommands struct {
		Commands []struct {
			Command string `json:"command"`
			Uses    int    `json:"uses"`
			Users   int    `json:"users"`
		} `json:"commands"`
		Unused []string `json:"unused"`
	} `json:"dead_commands"`
	RetryStorms struct {
		Retries    int `json:"retries"`
		ErrorTypes []struct {
			ErrorType string `json:"error_type"`
			Retries   int    `json:"retries"`
			Sessions  int    `json:"sessions"`
		} `json:"error_types"`
		StormSessions []struct {
			SessionID string `json:"session_id"`
			Retries   int    `json:"retries"`
		} `json:"storm_sessions"`
	} `json:"retry_storms"`
	ToolLoops struct {
		Loops []struct {
			SessionID string `json:"session_id"`
			ToolName  string `json:"tool_name"`
			Repeats   int    `json:"repeats"`
			Kind      string `json:"kind"`
		} `json:"loops"`
	} `json:"tool_loops"`
	PlanMode    sim.PlanTruth `json:"plan_mode"`
	Permissions struct {
		Tools []sim.ToolPermissions `json:"tools"`
	} `json:"permissions"`
}

// checkRecovered computes the insights over the fleet's window and checks
// them against the truth: loops, storm and stuck sessions with precision and
// recall of at least 0.95; unused commands, command uses, retry and
// permission counts and plan-mode figures exactly.
func checkRecovered(t *testing.T, db, tables string, tr *sim.Truth) {
	t.Helper()
	rep, err := insights.Compute(context.Background(), db, insights.Options{Tables: tables, From: tr.Window.From, To: tr.Window.To.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(js, &r); err != nil {
		t.Fatal(err)
	}

	// Multisets (a session may loop twice on one tool), with precision and
	// recall.
	score := func(what string, want, got []string) {
		t.Helper()
		left := map[string]int{}
		for _, x := range want {
			left[x]++
		}
		hit := 0
		for _, x := range got {
			if left[x] > 0 {
				left[x]--
				hit++
			} else {
				t.Logf("%s: found, not in the truth: %s", what, x)
			}
		}
		for x, n := range left {
			if n > 0 {
				t.Logf("%s: in the truth, not found: %s", what, x)
			}
		}
		precision, recall := 1.0, 1.0
		if len(got) > 0 {
			precision = float64(hit) / float64(len(got))
		}
		if len(want) > 0 {
			recall = float64(hit) / float64(len(want))
		}
		t.Logf("%s: %d in the truth, %d found, precision %.3f, recall %.3f", what, len(want), len(got), precision, recall)
		if precision < 0.95 || recall < 0.95 || len(want) == 0 {
			t.Errorf("%s: precision %.3f, recall %.3f (truth %d, found %d)", what, precision, recall, len(want), len(got))
		}
	}
	var want, got, wantKind, gotKind []string
	for _, l := range tr.ToolLoops.Loops {
		k := fmt.Sprintf("%s %s ×%d", l.SessionID, l.ToolName, l.Repeats)
		want, wantKind = append(want, k), append(wantKind, k+" "+l.Kind)
	}
	unknown := 0
	for _, l := range r.ToolLoops.Loops {
		k := fmt.Sprintf("%s %s ×%d", l.SessionID, l.ToolName, l.Repeats)
		got, gotKind = append(got, k), append(gotKind, k+" "+l.Kind)
		if l.Kind == "unknown" {
			unknown++
		}
	}
	score("loops", want, got)
	if unknown == 0 {
		score("loops and their kind (stuck or polling)", wantKind, gotKind)
	} else {
		// Records without result_fingerprint (a client before schema v2).
		t.Logf("%d loops of unknown kind: the client records no result_fingerprint", unknown)
	}
	want, got = nil, nil
	for _, s := range tr.RetryStorms.StormSessions {
		want = append(want, s.SessionID.String())
	}
	for _, s := range r.RetryStorms.StormSessions {
		got = append(got, s.SessionID)
	}
	score("storm sessions", want, got)
	want, got = nil, nil
	for _, s := range tr.Stuck.Sessions {
		want = append(want, s.SessionID.String())
	}
	for _, s := range r.Stuck.StuckSessions {
		got = append(got, s.SessionID)
	}
	score("stuck sessions", want, got)

	// Exact figures.
	if r.Totals.Sessions != tr.Totals.Sessions || r.Totals.Turns != tr.Totals.Turns || r.Totals.ToolCalls != tr.Totals.ToolCalls {
		t.Errorf("totals %+v, truth says %+v", r.Totals, tr.Totals)
	}
	if fmt.Sprint(r.DeadCommands.Unused) != fmt.Sprint(tr.Commands.Unused) {
		t.Errorf("unused commands %v, truth says %v", r.DeadCommands.Unused, tr.Commands.Unused)
	}
	uses := map[string]string{}
	for _, c := range tr.Commands.Commands {
		n := c.Users
		if tables == insights.TablesSelfHosted {
			n = c.Sessions // no user_id there: sessions are counted
		}
		uses[c.Command] = fmt.Sprintf("%d uses, %d users", c.Uses, n)
	}
	gotUses := map[string]string{}
	for _, c := range r.DeadCommands.Commands {
		if c.Uses > 0 {
			gotUses[c.Command] = fmt.Sprintf("%d uses, %d users", c.Uses, c.Users)
		}
	}
	if fmt.Sprint(gotUses) != fmt.Sprint(uses) {
		t.Errorf("command uses\n got %v\nwant %v", gotUses, uses)
	}
	if r.RetryStorms.Retries != tr.Totals.Retries {
		t.Errorf("%d retries, truth says %d", r.RetryStorms.Retries, tr.Totals.Retries)
	}
	et := func(xs []string) string { sort.Strings(xs); return fmt.Sprint(xs) }
	var wantET, gotET []string
	for _, e := range tr.RetryStorms.ErrorTypes {
		wantET = append(wantET, fmt.Sprintf("%s:%d/%d", e.ErrorType, e.Retries, e.Sessions))
	}
	for _, e := range r.RetryStorms.ErrorTypes {
		gotET = append(gotET, fmt.Sprintf("%s:%d/%d", e.ErrorType, e.Retries, e.Sessions))
	}
	if et(wantET) != et(gotET) {
		t.Errorf("retries by error type %v, truth says %v", gotET, wantET)
	}
	storms := map[string]int{}
	for _, s := range tr.RetryStorms.StormSessions {
		storms[s.SessionID.String()] = s.Retries
	}
	for _, s := range r.RetryStorms.StormSessions {
		if n, ok := storms[s.SessionID]; ok && n != s.Retries {
			t.Errorf("storm session %s: %d retries, truth says %d", s.SessionID, s.Retries, n)
		}
	}
	perm := func(ts []sim.ToolPermissions) string {
		var out []string
		for _, p := range ts {
			out = append(out, fmt.Sprintf("%s:%d/%d/%d", p.ToolName, p.AutoAllowed, p.UserAllowed, p.Denied))
		}
		return et(out)
	}
	if perm(r.Permissions.Tools) != perm(tr.Permissions.Tools) {
		t.Errorf("permissions\n got %s\nwant %s", perm(r.Permissions.Tools), perm(tr.Permissions.Tools))
	}
	wp := tr.PlanMode
	wp.PlanModeChanges = 0
	if r.PlanMode != wp {
		t.Errorf("plan mode %+v, truth says %+v", r.PlanMode, wp)
	}
}

// TestRunInterrupted: a stop (Ctrl-C) ends the run promptly, with how far
// it got.
func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	var stopped atomic.Int64 // when the stop came, in Unix nanoseconds
	_, err := sim.Run(ctx, sim.Config{Sessions: 5000, Seed: 1, TempDir: t.TempDir(), Progress: func() {
		if n.Add(1) == 5 {
			stopped.Store(time.Now().UnixNano())
			cancel()
		}
	}}, sim.Target{DBURL: testdb.SQLite(t)})
	if err == nil || !strings.Contains(err.Error(), "interrupted after") {
		t.Fatalf("err %v, want interrupted", err)
	}
	// From the stop, not from the start: under load the five sessions
	// before it take most of the time.
	if d := time.Since(time.Unix(0, stopped.Load())); d > 20*time.Second {
		t.Errorf("took %v to stop", d)
	}
}
