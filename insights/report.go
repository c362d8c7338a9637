package insights

import (
	"time"

	"github.com/fredcode/fredtel/schema"
)

// Report is the answer to the six questions for one window. encoding/json of
// a *Report is the documented JSON form (docs/insights.md); WriteText is the
// terminal form. Lists are never null in JSON: an empty list is [].
type Report struct {
	Window Window `json:"window"`
	// Tables is "central" (telemetry_*) or "self-hosted" (dsc_*).
	Tables string `json:"tables"`
	// Filters echoes --model and --agent ("" when not given).
	Filters Filters `json:"filters"`
	// Counted says what the "users" columns count: "users" on the central
	// tables, "sessions" on the self-hosted ones (they carry no user_id).
	Counted string `json:"counted"`
	Totals  Totals `json:"totals"`
	// Prices is present only with a prices file.
	Prices *PriceInfo `json:"prices,omitempty"`

	// Problems opens the report: the detected problems, ranked by impact
	// (cost when every model involved is priced, else wall time, then tokens).
	Problems     []Problem    `json:"problems"`
	Stuck        Stuck        `json:"stuck"`
	DeadCommands DeadCommands `json:"dead_commands"`
	RetryStorms  RetryStorms  `json:"retry_storms"`
	ToolLoops    ToolLoops    `json:"tool_loops"`
	PlanMode     PlanMode     `json:"plan_mode"`
	Permissions  Permissions  `json:"permissions"`

	// Timings is how long each analysis took inside the database, in the
	// order they ran (not part of the JSON: it changes every run).
	Timings []Timing `json:"-"`
}

// Timing is the wall time of one analysis.
type Timing struct {
	Name     string
	Duration time.Duration
}

// Window is the half-open interval [From, To) of session start times the
// report covers.
type Window struct {
	From schema.Time `json:"from"`
	To   schema.Time `json:"to"`
}

// Filters are the session filters the report was computed with.
type Filters struct {
	Model string `json:"model"`
	Agent string `json:"agent"`
}

// Totals counts what the window holds.
type Totals struct {
	Sessions  int64 `json:"sessions"`
	Users     int64 `json:"users"`
	Turns     int64 `json:"turns"`
	ToolCalls int64 `json:"tool_calls"`
}

// PriceInfo says which models a prices file priced.
type PriceInfo struct {
	Currency string `json:"currency"`
	// Unpriced lists the models of the problems that the file has no price
	// for: their tokens are left out of every cost, never counted as 0.
	Unpriced []string `json:"unpriced_models"`
}

// Impact is what a problem spent. Cost is present only with a prices file;
// it covers the priced models, and UnpricedTokens says how many tokens it
// leaves out.
type Impact struct {
	Tokens         int64    `json:"tokens"`
	InputTokens    int64    `json:"input_tokens"`
	OutputTokens   int64    `json:"output_tokens"`
	Ms             int64    `json:"ms"`
	Cost           *float64 `json:"cost,omitempty"`
	UnpricedTokens int64    `json:"unpriced_tokens,omitempty"`
}

func (a *Impact) add(b Impact) {
	a.Tokens += b.Tokens
	a.InputTokens += b.InputTokens
	a.OutputTokens += b.OutputTokens
	a.Ms += b.Ms
	a.UnpricedTokens += b.UnpricedTokens
	if b.Cost != nil {
		c := b.Cost
		if a.Cost != nil {
			v := *a.Cost + *c
			c = &v
		} else {
			v := *c
			c = &v
		}
		a.Cost = c
	}
}

// Problem is one entry of the detected-problems list.
type Problem struct {
	// Kind: stuck_sessions, tool_loops, tool_loops_unverified,
	// retry_storms, denial_heavy_tools, dead_commands.
	Kind string `json:"kind"`
	// Count is how many (sessions, loops, tools or commands: see Kind).
	Count    int64  `json:"count"`
	Sessions int64  `json:"sessions"`
	Impact   Impact `json:"impact"`
	Fix      string `json:"fix"`
}

// Percentiles are percentile_cont values (linear interpolation between
// the two nearest ranks).
type Percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

// Stuck answers "where does the fast model get stuck".
type Stuck struct {
	Models []ModelStats `json:"models"`
	// FastModels are the models of the window the report treats as fast.
	FastModels    []string       `json:"fast_models"`
	StuckSessions []StuckSession `json:"stuck_sessions"`
	// Rule is the rule that flags a session, in words.
	Rule           string `json:"rule"`
	Recommendation string `json:"recommendation"`
	// Swapped counts sessions whose user swapped from a fast to a stronger
	// model; Flagged those the rule flags before any swap; Caught those
	// both. Recall = Caught/Swapped, FalseAlarms = (Flagged-Caught)/Flagged.
	Swapped     int64   `json:"swapped"`
	Flagged     int64   `json:"flagged"`
	Caught      int64   `json:"caught"`
	Recall      float64 `json:"recall"`
	FalseAlarms float64 `json:"false_alarms"`
}

// ModelStats describes the turns of one model.
type ModelStats struct {
	Model            string           `json:"model"`
	Fast             bool             `json:"fast"`
	Turns            int64            `json:"turns"`
	Sessions         int64            `json:"sessions"`
	FinishReasons    map[string]int64 `json:"finish_reasons"`
	ToolCallsPerTurn Percentiles      `json:"tool_calls_per_turn"`
	DurationMs       Percentiles      `json:"duration_ms"`
}

// StuckSession is a session stuck on a fast model.
type StuckSession struct {
	SessionID string `json:"session_id"`
	Model     string `json:"model"`
	// Rule: "struggle_turns" (the rule flagged it), or
	// "swapped_to_stronger" (only the user's swap says so).
	Rule string `json:"rule"`
	// StruggleTurns counts its fast turns that ended in length or error or
	// made the threshold of tool calls.
	StruggleTurns int64 `json:"struggle_turns"`
	Swapped       bool  `json:"swapped"`
	// Impact: the fast-model turns before the swap (all of them without one).
	Impact Impact `json:"impact"`
}

// DeadCommands answers "which slash commands are dead".
type DeadCommands struct {
	Commands []CommandUse `json:"commands"`
	// Unused: in the command_catalog of a session of the window, used by
	// no session of the window. Sorted.
	Unused  []string `json:"unused"`
	Finding string   `json:"finding"`
}

// CommandUse is the use of one command.
type CommandUse struct {
	Command string `json:"command"`
	Uses    int64  `json:"uses"`
	Users   int64  `json:"users"`
}

// RetryStorms answers "where do API retries pile up".
type RetryStorms struct {
	// Retries counts api_retry events; Sessions the sessions with one.
	Retries           int64            `json:"retries"`
	Sessions          int64            `json:"sessions"`
	ErrorTypes        []ErrorTypeCount `json:"error_types"`
	TurnErrors        []TurnErrorCount `json:"turn_errors"`
	ByModel           []ModelRetries   `json:"by_model"`
	Attempts          []AttemptCount   `json:"attempts"`
	RetriesPerSession Percentiles      `json:"retries_per_session"`
	DelayMs           Percentiles      `json:"delay_ms"`
	// StormThreshold is the retries that make a session a storm.
	StormThreshold int            `json:"storm_threshold"`
	StormSessions  []StormSession `json:"storm_sessions"`
	// BeforeStormRetries: for each retry of a storm session, the tool of
	// the session's last call started at or before it.
	BeforeStormRetries []ToolRetries `json:"tools_before_storm_retries"`
	// SessionDurationMs compares the sessions that ended: all of them and
	// the storm sessions.
	SessionDurationMs SessionDurations `json:"session_duration_ms"`
	Recommendation    string           `json:"recommendation"`
}

// ErrorTypeCount counts the retries of one error type.
type ErrorTypeCount struct {
	ErrorType string `json:"error_type"`
	Retries   int64  `json:"retries"`
	Sessions  int64  `json:"sessions"`
	// DelayP80Ms is the delay that 80% of these retries waited at most.
	DelayP80Ms float64 `json:"delay_p80_ms"`
}

// TurnErrorCount counts the turns that ended in one API error type.
type TurnErrorCount struct {
	ErrorType string `json:"error_type"`
	Turns     int64  `json:"turns"`
	Sessions  int64  `json:"sessions"`
}

// ToolRetries counts retries by the tool called just before them.
type ToolRetries struct {
	ToolName string `json:"tool_name"`
	Retries  int64  `json:"retries"`
}

// SessionDurations are percentiles of session durations (ended_at −
// started_at), of the sessions that ended.
type SessionDurations struct {
	All   Percentiles `json:"all"`
	Storm Percentiles `json:"storm"`
}

// ModelRetries counts retries by the session's model.
type ModelRetries struct {
	Model    string `json:"model"`
	Retries  int64  `json:"retries"`
	Sessions int64  `json:"sessions"`
}

// AttemptCount counts retries by attempt number.
type AttemptCount struct {
	Attempt int64 `json:"attempt"`
	Retries int64 `json:"retries"`
}

// StormSession is a session with at least StormThreshold retries.
type StormSession struct {
	SessionID string `json:"session_id"`
	Model     string `json:"model"`
	Retries   int64  `json:"retries"`
	// Impact.Ms is the time waited on its retries (delays plus the failed
	// attempts' latency where recorded).
	Impact Impact `json:"impact"`
}

// ToolLoops answers "where does tool dispatch loop".
type ToolLoops struct {
	MinRepeats int    `json:"min_repeats"`
	Loops      []Loop `json:"loops"`
	// Stuck, Polling and Unknown count the loops of each kind.
	Stuck   int64         `json:"stuck"`
	Polling int64         `json:"polling"`
	Unknown int64         `json:"unknown"`
	ByTool  []ToolLoopAgg `json:"by_tool"`
	ByModel []ModelLoops  `json:"by_model"`
	Finding string        `json:"finding"`
}

// Loop is one run of MinRepeats or more consecutive identical calls.
type Loop struct {
	SessionID string `json:"session_id"`
	ToolName  string `json:"tool_name"`
	Repeats   int64  `json:"repeats"`
	// Kind: "stuck" (every result the same), "polling" (results changed),
	// "unknown" (some call without result_fingerprint: schema v1).
	Kind  string `json:"kind"`
	Model string `json:"model"`
	// StartTurnSeq and StartCallSeq place the run's first call.
	StartTurnSeq int64 `json:"start_turn_seq"`
	StartCallSeq int64 `json:"start_call_seq"`
	// Turns is how many turns the run spans.
	Turns  int64  `json:"turns"`
	Impact Impact `json:"impact"`
}

// ToolLoopAgg sums the loops of one tool.
type ToolLoopAgg struct {
	ToolName string `json:"tool_name"`
	Loops    int64  `json:"loops"`
	Stuck    int64  `json:"stuck"`
	Sessions int64  `json:"sessions"`
	Calls    int64  `json:"calls"`
	// Per1000Calls is loops per 1,000 calls of the tool.
	Per1000Calls float64 `json:"loops_per_1000_calls"`
}

// ModelLoops sums the loops of one model.
type ModelLoops struct {
	Model    string `json:"model"`
	Loops    int64  `json:"loops"`
	Stuck    int64  `json:"stuck"`
	Sessions int64  `json:"sessions"`
}

// PlanMode answers "who plans, and does planning lead to acting".
type PlanMode struct {
	Sessions     int64   `json:"sessions"`
	PlanSessions int64   `json:"plan_sessions"`
	PlanShare    float64 `json:"plan_share"`
	// PlanToAct: plan sessions with an act-mode turn after they entered plan.
	PlanToAct int64 `json:"plan_to_act"`
	// LeftPlanWithoutActing: plan sessions with none.
	LeftPlanWithoutActing int64 `json:"left_plan_without_acting"`
	// BackToPlanWithin2Turns: sessions with a stretch of 1 or 2 act turns
	// between plan turns (by turn seq): switched back too early.
	BackToPlanWithin2Turns int64  `json:"back_to_plan_within_2_turns"`
	Finding                string `json:"finding"`
}

// Permissions answers "which tools get denied".
type Permissions struct {
	Tools   []ToolPermissions `json:"tools"`
	Finding string            `json:"finding"`
}

// ToolPermissions counts one tool's calls by permission.
type ToolPermissions struct {
	ToolName    string  `json:"tool_name"`
	Calls       int64   `json:"calls"`
	AutoAllowed int64   `json:"auto_allowed"`
	UserAllowed int64   `json:"user_allowed"`
	Denied      int64   `json:"denied"`
	DeniedShare float64 `json:"denied_share"`
}
