package sim

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Truth is the ground truth of a simulated fleet: what the analyses of
// SPEC §7 must find in its records, computed from what the sessions recorded
// with the same definitions the insights use (a loop is MinRepeats or more
// consecutive calls of a session, turns by seq and calls by seq within the
// turn, with the same tool_name and args_fingerprint; stuck when the results
// repeat too, polling when they change; a command is unused when it is in
// the catalog and nobody ran it; retries count api_retry events; a plan
// session has a plan-mode turn or a mode_change to plan). It is what
// `fredtel simulate --truth FILE` writes.
type Truth struct {
	Seed   uint64 `json:"seed"`
	Route  string `json:"route"` // central or self-hosted
	Window Window `json:"window"`
	// Users are the user ids the sessions ran as (central: one per key).
	Users  []string     `json:"users"`
	Totals Totals       `json:"totals"`
	Models []ModelCount `json:"models"`

	Stuck        StuckTruth      `json:"stuck"`
	Commands     CommandTruth    `json:"dead_commands"`
	RetryStorms  StormTruth      `json:"retry_storms"`
	ToolLoops    LoopTruth       `json:"tool_loops"`
	PlanMode     PlanTruth       `json:"plan_mode"`
	Permissions  PermissionTruth `json:"permissions"`
	SessionsList []SessionTruth  `json:"sessions"`
}

// Window spans the fleet's records.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Totals count the records.
type Totals struct {
	Sessions  int `json:"sessions"`
	Turns     int `json:"turns"`
	ToolCalls int `json:"tool_calls"`
	Events    int `json:"events"`
	Retries   int `json:"retries"`
}

// ModelCount is the turns a model answered and the sessions it started.
type ModelCount struct {
	Model    string `json:"model"`
	Turns    int    `json:"turns"`
	Sessions int    `json:"sessions"`
}

// StuckTruth lists the flash sessions that got stuck: Rule says how they
// were made (and how to find them).
type StuckTruth struct {
	Rule     string         `json:"rule"`
	Sessions []StuckSession `json:"stuck_sessions"`
}

// StuckSession is one stuck session: its struggling flash turns, and
// whether the user then switched to pro (else gave up).
type StuckSession struct {
	SessionID     uuid.UUID `json:"session_id"`
	Model         string    `json:"model"`
	StruggleTurns int       `json:"struggle_turns"`
	SwitchedToPro bool      `json:"switched_to_pro"`
}

// CommandTruth is the slash commands' use, and the unused ones (sorted).
type CommandTruth struct {
	Commands []CommandUse `json:"commands"`
	Unused   []string     `json:"unused"`
}

// CommandUse counts one command's uses, distinct users and sessions.
type CommandUse struct {
	Command  string `json:"command"`
	Uses     int    `json:"uses"`
	Users    int    `json:"users"`
	Sessions int    `json:"sessions"`
}

// StormTruth is the retries by error type and the storm sessions.
type StormTruth struct {
	StormThreshold int              `json:"storm_threshold"`
	ErrorTypes     []ErrorTypeCount `json:"error_types"`
	StormSessions  []StormSession   `json:"storm_sessions"`
}

// ErrorTypeCount counts the retries of one error type and the sessions
// that had them.
type ErrorTypeCount struct {
	ErrorType string `json:"error_type"`
	Retries   int    `json:"retries"`
	Sessions  int    `json:"sessions"`
}

// StormSession is a session with at least StormThreshold retries.
type StormSession struct {
	SessionID uuid.UUID `json:"session_id"`
	Retries   int       `json:"retries"`
}

// LoopTruth lists every loop, and the near misses (runs of 2, alternating
// calls) that are not loops.
type LoopTruth struct {
	MinRepeats int        `json:"min_repeats"`
	Loops      []Loop     `json:"loops"`
	NearMisses []NearMiss `json:"near_misses"`
}

// Loop is a run of identical calls.
type Loop struct {
	SessionID uuid.UUID `json:"session_id"`
	ToolName  string    `json:"tool_name"`
	Repeats   int       `json:"repeats"`
	Kind      string    `json:"kind"` // stuck or polling
	Span      string    `json:"span"` // one_turn, per_turn (one call a turn) or two_turns
}

// NearMiss is a pattern that looks like a loop and is not one.
type NearMiss struct {
	SessionID uuid.UUID `json:"session_id"`
	Pattern   string    `json:"pattern"` // run_of_2 or alternating
	Calls     int       `json:"calls"`
}

// PlanTruth is plan-mode adoption.
type PlanTruth struct {
	Sessions     int `json:"sessions"`
	PlanSessions int `json:"plan_sessions"`
	// PlanToAct counts plan sessions with an act turn after their first
	// plan turn or mode_change to plan; LeftPlanWithoutActing the others.
	PlanToAct             int `json:"plan_to_act"`
	LeftPlanWithoutActing int `json:"left_plan_without_acting"`
	// PlanModeChanges counts mode_change events from plan to act.
	PlanModeChanges int `json:"plan_to_act_mode_changes"`
	// BackToPlanWithin2Turns counts sessions with a stretch of 1 or 2 act
	// turns between plan turns (by turn seq).
	BackToPlanWithin2Turns int `json:"back_to_plan_within_2_turns"`
}

// PermissionTruth is the permission outcomes per tool, and the tools made
// denial-heavy.
type PermissionTruth struct {
	Tools       []ToolPermissions `json:"tools"`
	DenialHeavy []string          `json:"denial_heavy"`
}

// ToolPermissions counts one tool's calls by permission.
type ToolPermissions struct {
	ToolName    string `json:"tool_name"`
	AutoAllowed int    `json:"auto_allowed"`
	UserAllowed int    `json:"user_allowed"`
	Denied      int    `json:"denied"`
}

// SessionTruth is one session and what was put into it.
type SessionTruth struct {
	SessionID uuid.UUID `json:"session_id"`
	User      string    `json:"user"`
	Model     string    `json:"model"`
	StartedAt time.Time `json:"started_at"`
	Turns     int       `json:"turns"`
	ToolCalls int       `json:"tool_calls"`
	Events    int       `json:"events"`
	Retries   int       `json:"retries"`
	Stuck     bool      `json:"stuck,omitempty"`
	Storm     bool      `json:"storm,omitempty"`
	Plan      string    `json:"plan,omitempty"`
	Injected  []string  `json:"injected,omitempty"`
}

var planNames = map[planKind]string{planNormal: "plan_then_act", planDropOff: "drop_off", planBackEarly: "back_to_plan_early", planStart: "starts_in_plan"}

// StuckRule describes the stuck sessions.
var StuckRule = fmt.Sprintf("%d or more %s turns, before any switch to %s, that end in length or error or ask for %d or more tool calls",
	StuckRun, Flash, Pro, StuckCalls)

// truth computes the ground truth of sessions whose ids are ids (same
// order), run as users, from when they start at base.
func truth(seed uint64, route string, plans []*session, ids []uuid.UUID, users []string, base time.Time) *Truth {
	t := &Truth{Seed: seed, Route: route, Users: users}
	t.Stuck.Rule = StuckRule
	t.RetryStorms.StormThreshold = StormRetries
	t.ToolLoops.MinRepeats = 3
	t.Permissions.DenialHeavy = denialHeavy
	cmdUses := map[string]int{}
	cmdUsers := map[string]map[string]bool{}
	cmdSessions := map[string]map[uuid.UUID]bool{}
	errRetries := map[string]int{}
	errSessions := map[string]map[uuid.UUID]bool{}
	perms := map[string]*ToolPermissions{}
	models := map[string]*ModelCount{}
	model := func(m string) *ModelCount {
		if models[m] == nil {
			models[m] = &ModelCount{Model: m}
		}
		return models[m]
	}
	catalog := map[string]bool{}
	for _, c := range catalogCommands {
		catalog[c] = true
	}
	for i, p := range plans {
		id := ids[i]
		start := base.Add(p.start)
		end := start.Add(p.length)
		if t.Window.From.IsZero() || start.Before(t.Window.From) {
			t.Window.From = start
		}
		if end.After(t.Window.To) {
			t.Window.To = end
		}
		user := users[p.user]
		st := SessionTruth{SessionID: id, User: user, Model: p.info.Model, StartedAt: start, Stuck: p.stuck, Storm: p.storm, Plan: planNames[p.plan]}
		for _, in := range p.injected {
			st.Injected = append(st.Injected, in.kind+":"+in.tool)
		}
		model(p.info.Model).Sessions++

		// One pass over the steps, in recording order (turns by seq, calls
		// by seq within the turn, events in time).
		var run []step
		flushRun := func() {
			if len(run) >= t.ToolLoops.MinRepeats {
				kind := "stuck"
				for _, c := range run[1:] {
					if c.call.Result != run[0].call.Result {
						kind = "polling"
					}
				}
				l := Loop{SessionID: id, ToolName: run[0].call.Name, Repeats: len(run), Kind: kind}
				for _, in := range p.injected {
					if (in.kind == "stuck" || in.kind == "polling") && in.tool == l.ToolName && in.repeats == l.Repeats {
						l.Span = in.span
					}
				}
				t.ToolLoops.Loops = append(t.ToolLoops.Loops, l)
			}
			run = run[:0]
		}
		struggles := 0
		swapped := false // to pro, from flash
		turnCalls := -1
		var turnModel, turnFinish string
		endTurn := func() {
			if turnCalls < 0 {
				return
			}
			if !swapped && turnModel == Flash && (turnFinish == "length" || turnFinish == "error" || turnCalls >= StuckCalls) {
				struggles++
			}
			turnCalls = -1
		}
		inPlan := false
		actAfterPlan := false
		// Runs of turns by mode, for "back to plan within 2 act turns".
		var modeRuns []string
		var runLen []int
		for _, s := range p.steps {
			switch s.kind {
			case stepTurn:
				endTurn()
				st.Turns++
				turnCalls, turnModel, turnFinish = 0, s.model, s.res.FinishReason
				model(s.model).Turns++
				if s.mode == "plan" {
					inPlan = true
				} else if inPlan {
					actAfterPlan = true
				}
				if n := len(modeRuns); n > 0 && modeRuns[n-1] == s.mode {
					runLen[n-1]++
				} else {
					modeRuns, runLen = append(modeRuns, s.mode), append(runLen, 1)
				}
			case stepCall:
				turnCalls++
				st.ToolCalls++
				c := s.call
				if len(run) > 0 && (run[0].call.Name != c.Name || string(run[0].call.Args) != string(c.Args)) {
					flushRun()
				}
				run = append(run, s)
				tp := perms[c.Name]
				if tp == nil {
					tp = &ToolPermissions{ToolName: c.Name}
					perms[c.Name] = tp
				}
				switch c.Permission {
				case "auto_allowed":
					tp.AutoAllowed++
				case "user_allowed":
					tp.UserAllowed++
				case "denied":
					tp.Denied++
				}
			default:
				st.Events++
				switch s.kind {
				case stepCommand:
					name := strings.ToLower(strings.Fields(strings.TrimPrefix(s.line, "/"))[0])
					if !catalog[name] {
						name = "other" // a word the user typed, not a name: on every route
					}
					cmdUses[name]++
					if cmdUsers[name] == nil {
						cmdUsers[name], cmdSessions[name] = map[string]bool{}, map[uuid.UUID]bool{}
					}
					cmdUsers[name][user] = true
					cmdSessions[name][id] = true
				case stepRetry:
					st.Retries++
					errRetries[s.errType]++
					if errSessions[s.errType] == nil {
						errSessions[s.errType] = map[uuid.UUID]bool{}
					}
					errSessions[s.errType][id] = true
				case stepMode:
					if s.to == "plan" {
						inPlan = true
					}
					if s.from == "plan" && s.to == "act" {
						t.PlanMode.PlanModeChanges++
					}
				case stepSwap:
					if s.from == Flash && s.to == Pro {
						endTurn()
						swapped = true
					}
				}
			}
		}
		endTurn()
		flushRun()
		for _, in := range p.injected {
			if in.kind == "run_of_2" || in.kind == "alternating" {
				t.ToolLoops.NearMisses = append(t.ToolLoops.NearMisses, NearMiss{SessionID: id, Pattern: in.kind, Calls: in.repeats})
			}
		}
		if struggles >= StuckRun {
			t.Stuck.Sessions = append(t.Stuck.Sessions, StuckSession{SessionID: id, Model: Flash, StruggleTurns: struggles, SwitchedToPro: p.swapped})
		}
		backEarly := false
		for k := 1; k+1 < len(modeRuns); k++ {
			if modeRuns[k] == "act" && runLen[k] <= 2 && modeRuns[k-1] == "plan" && modeRuns[k+1] == "plan" {
				backEarly = true
			}
		}
		if st.Retries >= StormRetries {
			t.RetryStorms.StormSessions = append(t.RetryStorms.StormSessions, StormSession{SessionID: id, Retries: st.Retries})
		}
		t.PlanMode.Sessions++
		if inPlan {
			t.PlanMode.PlanSessions++
			if actAfterPlan {
				t.PlanMode.PlanToAct++
			} else {
				t.PlanMode.LeftPlanWithoutActing++
			}
		}
		if backEarly {
			t.PlanMode.BackToPlanWithin2Turns++
		}
		t.Totals.Sessions++
		t.Totals.Turns += st.Turns
		t.Totals.ToolCalls += st.ToolCalls
		t.Totals.Events += st.Events
		t.Totals.Retries += st.Retries
		t.SessionsList = append(t.SessionsList, st)
	}
	for name, n := range cmdUses {
		t.Commands.Commands = append(t.Commands.Commands, CommandUse{Command: name, Uses: n, Users: len(cmdUsers[name]), Sessions: len(cmdSessions[name])})
	}
	sort.Slice(t.Commands.Commands, func(i, j int) bool {
		a, b := t.Commands.Commands[i], t.Commands.Commands[j]
		if a.Uses != b.Uses {
			return a.Uses > b.Uses
		}
		return a.Command < b.Command
	})
	t.Commands.Unused = []string{}
	for _, c := range catalogCommands {
		if cmdUses[c] == 0 {
			t.Commands.Unused = append(t.Commands.Unused, c)
		}
	}
	sort.Strings(t.Commands.Unused)
	for et, n := range errRetries {
		t.RetryStorms.ErrorTypes = append(t.RetryStorms.ErrorTypes, ErrorTypeCount{ErrorType: et, Retries: n, Sessions: len(errSessions[et])})
	}
	sort.Slice(t.RetryStorms.ErrorTypes, func(i, j int) bool {
		return t.RetryStorms.ErrorTypes[i].ErrorType < t.RetryStorms.ErrorTypes[j].ErrorType
	})
	for _, tp := range perms {
		t.Permissions.Tools = append(t.Permissions.Tools, *tp)
	}
	sort.Slice(t.Permissions.Tools, func(i, j int) bool { return t.Permissions.Tools[i].ToolName < t.Permissions.Tools[j].ToolName })
	for _, m := range models {
		t.Models = append(t.Models, *m)
	}
	sort.Slice(t.Models, func(i, j int) bool { return t.Models[i].Model < t.Models[j].Model })
	return t
}
