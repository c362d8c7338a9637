package insights

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
)

// ErrNoSession: the session asked for is not in the tables.
var ErrNoSession = errors.New("no such session")

// Bounds of one timeline: a session is read whole up to these, so a
// session of a runaway client cannot make one page load unbounded.
const (
	MaxTimelineTurns  = 2000
	MaxTimelineCalls  = 20000
	MaxTimelineEvents = 10000
	// MaxTimelineText is the characters of user_input or assistant_text
	// shown per turn; the rest is cut (TextCut says so).
	MaxTimelineText = 20000
)

// TimelineOptions choose the session and the definitions the timeline marks
// problems with.
type TimelineOptions struct {
	// Tables: "central" or "self-hosted", as Options.Tables.
	Tables string
	// SessionID is the session's UUID.
	SessionID string
	// MinRepeats is the shortest run of identical calls that is a loop
	// (default 3), as Options.MinRepeats.
	MinRepeats int
}

// SessionTimeline is one session's turns, tool calls and events in order,
// with the loops of the session marked on their calls. encoding/json of it
// is what the dashboard's timeline endpoint serves.
type SessionTimeline struct {
	Tables  string          `json:"tables"`
	Session TimelineSession `json:"session"`
	// MinRepeats is the loop definition the calls were marked with.
	MinRepeats int `json:"min_repeats"`
	// Lead are the events before the first turn started.
	Lead  []TimelineEvent `json:"lead"`
	Turns []TimelineTurn  `json:"turns"`
	Loops []TimelineLoop  `json:"loops"`
	// Truncated: the session has more records than the Max* bounds; what
	// is shown is its beginning.
	Truncated bool `json:"truncated"`
	// HasText: some turn kept user_input or assistant_text (self-hosted
	// tables only: the central ones have no text columns).
	HasText bool `json:"has_text"`
}

// TimelineSession describes the session and sums its records.
type TimelineSession struct {
	SessionID   string      `json:"session_id"`
	StartedAt   schema.Time `json:"started_at"`
	EndedAt     schema.Time `json:"ended_at"`
	Model       string      `json:"model"`
	Agent       string      `json:"agent"`
	FredVersion string      `json:"fred_version"`
	OS          string      `json:"os"`
	// UserID is the key's owner on the central tables, "" on self-hosted.
	UserID       string `json:"user_id,omitempty"`
	Turns        int64  `json:"turns"`
	ToolCalls    int64  `json:"tool_calls"`
	Events       int64  `json:"events"`
	Retries      int64  `json:"retries"`
	Denied       int64  `json:"denied"`
	ToolErrors   int64  `json:"tool_errors"`
	Tokens       int64  `json:"tokens"`
	TurnMs       int64  `json:"turn_ms"`
	ModelChanges int64  `json:"model_changes"`
	ModeChanges  int64  `json:"mode_changes"`
}

// TimelineTurn is one turn with its tool calls (by seq) and the events
// that happened from its start until the next turn's.
type TimelineTurn struct {
	TurnID    string      `json:"turn_id"`
	Seq       int64       `json:"seq"`
	StartedAt schema.Time `json:"started_at"`
	// OffsetMs is the time since the session started.
	OffsetMs         int64   `json:"offset_ms"`
	Model            string  `json:"model"`
	Mode             string  `json:"mode"`
	FinishReason     string  `json:"finish_reason"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CachedTokens     int64   `json:"cached_tokens"`
	DurationMs       int64   `json:"duration_ms"`
	NumToolCalls     int64   `json:"num_tool_calls"`
	APIErrorType     *string `json:"api_error_type"`
	// ModelChanged and ModeChanged: this turn's model or mode differs
	// from the turn before it.
	ModelChanged bool `json:"model_changed"`
	ModeChanged  bool `json:"mode_changed"`
	// UserInput and AssistantText: self-hosted tables only, where kept.
	UserInput     *string         `json:"user_input,omitempty"`
	AssistantText *string         `json:"assistant_text,omitempty"`
	TextCut       bool            `json:"text_cut,omitempty"`
	Calls         []TimelineCall  `json:"calls"`
	Events        []TimelineEvent `json:"events"`
}

// TimelineCall is one tool call. Loop is the index in Loops of the loop
// the call belongs to (nil: none) and LoopPos its place in that run, from 1.
type TimelineCall struct {
	CallID    string      `json:"call_id"`
	Seq       int64       `json:"seq"`
	StartedAt schema.Time `json:"started_at"`
	ToolName  string      `json:"tool_name"`
	// Args and Result are the first 8 hex digits of the fingerprints:
	// enough to see a repeat, nothing of the arguments (they are keyed
	// HMACs).
	Args          string `json:"args"`
	Result        string `json:"result"`
	Permission    string `json:"permission"`
	DurationMs    int64  `json:"duration_ms"`
	Outcome       string `json:"outcome"`
	ResultBytes   int64  `json:"result_bytes"`
	ResultIsError bool   `json:"result_is_error"`
	Loop          *int   `json:"loop,omitempty"`
	LoopPos       int    `json:"loop_pos,omitempty"`
}

// TimelineEvent is one named event with its props.
type TimelineEvent struct {
	EventID  string         `json:"event_id"`
	TS       schema.Time    `json:"ts"`
	OffsetMs int64          `json:"offset_ms"`
	Name     string         `json:"name"`
	Props    map[string]any `json:"props"`
}

// TimelineLoop is one loop of the session, by the definition of
// [ToolLoops]: MinRepeats or more consecutive calls (turns by seq, calls by
// seq in the turn) with the same tool and args fingerprint.
type TimelineLoop struct {
	ToolName string `json:"tool_name"`
	Repeats  int64  `json:"repeats"`
	// Kind: "stuck", "polling" or "unknown", as Loop.Kind.
	Kind  string `json:"kind"`
	Turns int64  `json:"turns"`
	// FirstCall is the call_id of the run's first call; StartTurnSeq and
	// StartCallSeq place it (as Loop's of the report).
	FirstCall    string `json:"first_call"`
	StartTurnSeq int64  `json:"start_turn_seq"`
	StartCallSeq int64  `json:"start_call_seq"`
	DurationMs   int64  `json:"duration_ms"`
}

// Timeline reads one session of the database at dbURL: its turns, tool
// calls and events in order, the loops marked. The errors are Compute's,
// plus ErrNoSession; ErrBadOptions when the id is not a UUID.
func Timeline(ctx context.Context, dbURL string, o TimelineOptions) (*SessionTimeline, error) {
	opts := Options{Tables: o.Tables, MinRepeats: o.MinRepeats}
	set, err := opts.normalise()
	if err != nil {
		return nil, err
	}
	id, err := uuid.Parse(o.SessionID)
	if err != nil || len(o.SessionID) != 36 {
		return nil, fmt.Errorf("%w: session %q: want a UUID such as 0190a000-0000-7000-8000-000000000001", ErrBadOptions, cut(o.SessionID, 40))
	}
	return within(ctx, dbURL, set, "timeline", nil, func(d *db, tx *sql.Tx) (*SessionTimeline, error) {
		tl := &SessionTimeline{Tables: opts.Tables, MinRepeats: opts.MinRepeats,
			Lead: []TimelineEvent{}, Turns: []TimelineTurn{}, Loops: []TimelineLoop{}}
		return tl, d.timeline(ctx, tx, id.String(), tl)
	})
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// tsText is SQL for the timestamp column col as schema.TimeLayout text.
func (d *db) tsText(col string) string {
	if d.dialect == schema.Postgres {
		return `to_char(` + col + ` AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
	}
	return col
}

// idArg is the placeholder of a UUID parameter.
func (d *db) idArg(n int) string {
	if d.dialect == schema.Postgres {
		return fmt.Sprintf("CAST($%d AS uuid)", n)
	}
	return fmt.Sprintf("$%d", n)
}

func parseTS(s sql.NullString) schema.Time {
	if !s.Valid {
		return schema.Time{}
	}
	t, err := time.Parse(schema.TimeLayout, s.String)
	if err != nil {
		return schema.Time{}
	}
	return schema.TimeOf(t)
}

func short(h sql.NullString) string {
	if len(h.String) > 8 {
		return h.String[:8]
	}
	return h.String
}

func (d *db) timeline(ctx context.Context, tx *sql.Tx, id string, tl *SessionTimeline) error {
	s := &tl.Session
	user := "''"
	if d.set == schema.CentralSet {
		user = "user_id"
	}
	var started, ended sql.NullString
	var agent sql.NullString
	err := tx.QueryRowContext(ctx, d.q(fmt.Sprintf(`SELECT CAST(session_id AS text), %s, %s, model, agent, fred_version, os, %s FROM %s WHERE session_id = %s`,
		d.tsText("started_at"), d.tsText("ended_at"), user, d.table("sessions"), d.idArg(1))), id).
		Scan(&s.SessionID, &started, &ended, &s.Model, &agent, &s.FredVersion, &s.OS, &s.UserID)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w: %s is not in the %s tables", d.loc.Masked, ErrNoSession, id, d.set)
	}
	if err != nil {
		return err
	}
	s.StartedAt, s.EndedAt, s.Agent = parseTS(started), parseTS(ended), agent.String
	if s.Agent == "" {
		s.Agent = "fred"
	}
	offset := func(t schema.Time) int64 {
		if t.IsZero() || s.StartedAt.IsZero() {
			return 0
		}
		return t.Sub(s.StartedAt.Time).Milliseconds()
	}

	// Turns, by seq.
	text := "NULL, NULL, 0"
	if d.set == schema.SelfHostedSet {
		text = fmt.Sprintf("substr(user_input, 1, %[1]d), substr(assistant_text, 1, %[1]d), CASE WHEN length(user_input) > %[1]d OR length(assistant_text) > %[1]d THEN 1 ELSE 0 END", MaxTimelineText)
	}
	rows, err := tx.QueryContext(ctx, d.q(fmt.Sprintf(`SELECT CAST(turn_id AS text), seq, %s, model, mode, finish_reason, prompt_tokens, completion_tokens,
		cached_tokens, duration_ms, num_tool_calls, api_error_type, %s
		FROM %s WHERE session_id = %s ORDER BY seq, turn_id LIMIT %d`,
		d.tsText("started_at"), text, d.table("turns"), d.idArg(1), MaxTimelineTurns+1)), id)
	if err != nil {
		return err
	}
	byID := map[string]int{}
	for rows.Next() {
		var t TimelineTurn
		var ts, apiErr, in, out sql.NullString
		var textCut int
		if err := rows.Scan(&t.TurnID, &t.Seq, &ts, &t.Model, &t.Mode, &t.FinishReason, &t.PromptTokens, &t.CompletionTokens,
			&t.CachedTokens, &t.DurationMs, &t.NumToolCalls, &apiErr, &in, &out, &textCut); err != nil {
			rows.Close()
			return err
		}
		if len(tl.Turns) == MaxTimelineTurns {
			tl.Truncated = true
			break
		}
		t.StartedAt = parseTS(ts)
		t.OffsetMs = offset(t.StartedAt)
		if apiErr.Valid {
			t.APIErrorType = &apiErr.String
		}
		if in.Valid {
			t.UserInput = &in.String
			tl.HasText = true
		}
		if out.Valid {
			t.AssistantText = &out.String
			tl.HasText = true
		}
		t.TextCut = textCut == 1
		t.Calls, t.Events = []TimelineCall{}, []TimelineEvent{}
		if n := len(tl.Turns); n > 0 {
			prev := tl.Turns[n-1]
			t.ModelChanged, t.ModeChanged = prev.Model != t.Model, prev.Mode != t.Mode
		}
		if t.ModelChanged {
			s.ModelChanges++
		}
		if t.ModeChanged {
			s.ModeChanges++
		}
		s.Tokens += t.PromptTokens + t.CompletionTokens
		s.TurnMs += t.DurationMs
		byID[t.TurnID] = len(tl.Turns)
		tl.Turns = append(tl.Turns, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	s.Turns = int64(len(tl.Turns))

	// Tool calls, in the order the loop analysis reads them: turns by seq,
	// calls by seq within the turn, call_id last. A call whose turn is not
	// stored is not shown (the loop analysis does not see it either).
	rows, err = tx.QueryContext(ctx, d.q(fmt.Sprintf(`SELECT CAST(tc.turn_id AS text), CAST(tc.call_id AS text), tc.seq, %s, tc.tool_name, tc.args_fingerprint,
		tc.result_fingerprint, tc.permission, tc.duration_ms, tc.outcome, tc.result_bytes, tc.result_is_error
		FROM %s tc JOIN %s t ON t.turn_id = tc.turn_id WHERE tc.session_id = %s
		ORDER BY t.seq, tc.seq, tc.call_id LIMIT %d`,
		d.tsText("tc.started_at"), d.table("tool_calls"), d.table("turns"), d.idArg(1), MaxTimelineCalls+1)), id)
	if err != nil {
		return err
	}
	type ref struct{ turn, call int }
	var order []ref
	var args, results []string
	for rows.Next() {
		var c TimelineCall
		var turn string
		var ts, af, rf sql.NullString
		if err := rows.Scan(&turn, &c.CallID, &c.Seq, &ts, &c.ToolName, &af, &rf, &c.Permission, &c.DurationMs, &c.Outcome,
			&c.ResultBytes, &c.ResultIsError); err != nil {
			rows.Close()
			return err
		}
		if len(order) == MaxTimelineCalls {
			tl.Truncated = true
			break
		}
		ti, ok := byID[turn]
		if !ok { // beyond MaxTimelineTurns
			tl.Truncated = true
			continue
		}
		c.StartedAt = parseTS(ts)
		c.Args, c.Result = short(af), short(rf)
		switch {
		case c.Permission == "denied":
			s.Denied++
		}
		if c.Outcome == "error" {
			s.ToolErrors++
		}
		order = append(order, ref{ti, len(tl.Turns[ti].Calls)})
		args = append(args, af.String)
		if rf.Valid {
			results = append(results, rf.String)
		} else {
			results = append(results, "")
		}
		tl.Turns[ti].Calls = append(tl.Turns[ti].Calls, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	s.ToolCalls = int64(len(order))

	// Loops: runs of identical (tool, args) in that order.
	for i := 0; i < len(order); {
		first := tl.Turns[order[i].turn].Calls[order[i].call]
		j := i + 1
		for j < len(order) {
			c := tl.Turns[order[j].turn].Calls[order[j].call]
			if c.ToolName != first.ToolName || args[j] != args[i] {
				break
			}
			j++
		}
		if n := j - i; n >= tl.MinRepeats {
			l := TimelineLoop{ToolName: first.ToolName, Repeats: int64(n), FirstCall: first.CallID,
				StartTurnSeq: tl.Turns[order[i].turn].Seq, StartCallSeq: first.Seq}
			idx := len(tl.Loops)
			distinct, missing := map[string]bool{}, false
			lastTurn := -1
			for k := i; k < j; k++ {
				c := &tl.Turns[order[k].turn].Calls[order[k].call]
				c.Loop, c.LoopPos = &idx, k-i+1
				l.DurationMs += c.DurationMs
				if order[k].turn != lastTurn {
					l.Turns++
					lastTurn = order[k].turn
				}
				if results[k] == "" {
					missing = true
				}
				distinct[results[k]] = true
			}
			switch {
			case missing:
				l.Kind = "unknown"
			case len(distinct) == 1:
				l.Kind = "stuck"
			default:
				l.Kind = "polling"
			}
			tl.Loops = append(tl.Loops, l)
		}
		i = j
	}

	// Events, by time (seq orders the events of one millisecond), each put
	// in the turn that had started last when it happened.
	rows, err = tx.QueryContext(ctx, d.q(fmt.Sprintf(`SELECT CAST(event_id AS text), %s, name, CAST(props AS text)
		FROM %s WHERE session_id = %s ORDER BY ts, seq, event_id LIMIT %d`,
		d.tsText("ts"), d.table("events"), d.idArg(1), MaxTimelineEvents+1)), id)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var e TimelineEvent
		var ts, props sql.NullString
		if err := rows.Scan(&e.EventID, &ts, &e.Name, &props); err != nil {
			return err
		}
		if s.Events == MaxTimelineEvents {
			tl.Truncated = true
			break
		}
		s.Events++
		e.TS = parseTS(ts)
		e.OffsetMs = offset(e.TS)
		if props.Valid {
			dec := json.NewDecoder(strings.NewReader(props.String))
			dec.UseNumber()
			if err := dec.Decode(&e.Props); err != nil {
				return fmt.Errorf("event %s: props: %w", e.EventID, err)
			}
		}
		if e.Props == nil {
			e.Props = map[string]any{}
		}
		if e.Name == "api_retry" {
			s.Retries++
		}
		// The last turn that started at or before the event.
		i := sort.Search(len(tl.Turns), func(i int) bool { return tl.Turns[i].StartedAt.After(e.TS.Time) })
		if i == 0 {
			tl.Lead = append(tl.Lead, e)
		} else {
			tl.Turns[i-1].Events = append(tl.Turns[i-1].Events, e)
		}
	}
	return rows.Err()
}
