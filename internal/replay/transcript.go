// Package replay feeds a recorded session transcript (JSON Lines, see
// docs/transcript.md) through the real client library, package telemetry,
// under the routing of the machine it runs on: `fred telemetry replay`.
//
// [Parse] reads and checks the whole transcript first; [Run] starts the
// sessions only when every line is valid, so a bad transcript records
// nothing at all.
package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/telemetry"
)

// LineError is one problem of a transcript: FILE:LINE: field: problem.
type LineError struct {
	File    string
	Line    int
	Field   string
	Problem string
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Problem)
}

// Errors are the problems found in a transcript, in line order. Nothing of
// a transcript with errors is replayed.
type Errors []*LineError

// maxErrors bounds the problems reported: a file that is not a transcript
// at all would otherwise print one per line.
const maxErrors = 20

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Transcript is a parsed, valid transcript: one or more sessions.
type Transcript struct {
	Name     string
	Sessions []*Session
}

// Session is one session_start … session_end.
type Session struct {
	Line int       // line of session_start
	TS   time.Time // its ts, zero when absent
	// FredVersion is the fred_version of session_start ("" when absent).
	FredVersion string
	// Info is what the library receives: cwd, hostname, git_sha, env and
	// runtime_version are not in it (accepted and dropped).
	Info    telemetry.SessionInfo
	Steps   []Step
	EndLine int
	EndTS   time.Time
}

// Step is one turn, tool_call or event line of a session, in file order.
// Exactly one of Turn, Call and Event is set. A tool call belongs to the
// last turn before it; a slash command ends that turn (the user typed it,
// so the agent was idle), other events happen within it.
type Step struct {
	Line  int
	TS    time.Time
	Turn  *Turn
	Call  *telemetry.ToolCall // StartedAt is set by the replay clock
	Event *Event
}

// Turn is a turn line: BeginTurn(Mode, Model), then End(Result) after
// Duration.
type Turn struct {
	Mode, Model string
	Duration    time.Duration
	Result      telemetry.TurnResult
}

// Event is an event line. Kind is slash_command (Line), api_retry
// (Retry), mode_change or model_swap (From, To).
type Event struct {
	Kind     string
	Line     string
	Retry    telemetry.Retry
	From, To string
}

// Counts are the lines a transcript holds, by type.
type Counts struct{ Sessions, Turns, ToolCalls, Events int }

// Counts counts t's sessions, turns, tool calls and events.
func (t *Transcript) Counts() Counts {
	var c Counts
	c.Sessions = len(t.Sessions)
	for _, s := range t.Sessions {
		for _, st := range s.Steps {
			switch {
			case st.Turn != nil:
				c.Turns++
			case st.Call != nil:
				c.ToolCalls++
			default:
				c.Events++
			}
		}
	}
	return c
}

// The line types, decoded strictly: a field not listed here is an error.

type sessionStartLine struct {
	Type           string            `json:"type"`
	TS             *string           `json:"ts"`
	Model          string            `json:"model"`
	FredVersion    string            `json:"fred_version"`
	RuntimeVersion string            `json:"runtime_version"`
	OS             string            `json:"os"`
	Shell          string            `json:"shell"`
	SystemPrompt   string            `json:"system_prompt"`
	AgentsMD       string            `json:"agents_md"`
	Cwd            string            `json:"cwd"`
	Hostname       string            `json:"hostname"`
	GitSHA         string            `json:"git_sha"`
	GitDirty       *bool             `json:"git_dirty"`
	Env            map[string]string `json:"env"`
	Tools          []string          `json:"tools"`
	Commands       []string          `json:"commands"`
	Models         []string          `json:"models"`
}

type turnLine struct {
	Type             string  `json:"type"`
	TS               *string `json:"ts"`
	Mode             string  `json:"mode"`
	Model            string  `json:"model"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CachedTokens     int64   `json:"cached_tokens"`
	FinishReason     string  `json:"finish_reason"`
	DurationMs       int64   `json:"duration_ms"`
	APIErrorType     string  `json:"api_error_type"`
	UserInput        string  `json:"user_input"`
	AssistantText    string  `json:"assistant_text"`
}

type toolCallLine struct {
	Type       string          `json:"type"`
	TS         *string         `json:"ts"`
	ToolName   string          `json:"tool_name"`
	Args       json.RawMessage `json:"args"`
	Result     string          `json:"result"`
	Permission string          `json:"permission"`
	DurationMs int64           `json:"duration_ms"`
	Failed     bool            `json:"failed"`
}

type slashCommandLine struct {
	Type string  `json:"type"`
	TS   *string `json:"ts"`
	Kind string  `json:"kind"`
	Line string  `json:"line"`
}

type apiRetryLine struct {
	Type      string  `json:"type"`
	TS        *string `json:"ts"`
	Kind      string  `json:"kind"`
	Attempt   int64   `json:"attempt"`
	DelayMs   int64   `json:"delay_ms"`
	LatencyMs int64   `json:"latency_ms"`
	ErrorType string  `json:"error_type"`
	Status    int64   `json:"status"`
}

type fromToLine struct {
	Type string  `json:"type"`
	TS   *string `json:"ts"`
	Kind string  `json:"kind"`
	From string  `json:"from"`
	To   string  `json:"to"`
}

type sessionEndLine struct {
	Type string  `json:"type"`
	TS   *string `json:"ts"`
}

// The types and event kinds, in the order the messages list them.
var (
	lineTypes  = []string{"session_start", "turn", "tool_call", "event", "session_end"}
	eventKinds = []string{"slash_command", "api_retry", "mode_change", "model_swap"}
)

// parser holds the state of one Parse.
type parser struct {
	name string
	line int
	errs Errors
	t    *Transcript
	cur  *Session // the open session, nil outside one
	// lastEnd is the line of the last session_end (for messages).
	lastEnd int
	// turnLine is the line of the open session's turn that tool calls
	// belong to, 0 when none; slashLine, when set, is the slash command
	// that ended it.
	turnLine, slashLine int
	outsideSaid         bool // a line outside a session was reported
}

func (p *parser) fail(field, format string, args ...any) {
	p.errs = append(p.errs, &LineError{File: p.name, Line: p.line, Field: field, Problem: fmt.Sprintf(format, args...)})
}

// Parse reads a whole transcript from r; name is the file name used in
// messages ("-" for standard input is shown as "stdin"). It returns Errors
// when any line is malformed (at most 20 are listed), or an I/O error.
func Parse(name string, r io.Reader) (*Transcript, error) {
	p := &parser{name: name, t: &Transcript{Name: name}}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		raw, err := br.ReadBytes('\n')
		if len(raw) > 0 {
			p.line++
			p.parseLine(bytes.TrimSpace(raw))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(p.errs) >= maxErrors {
			break
		}
	}
	// A session left open is reported only when nothing else is wrong: a
	// malformed session_end would otherwise be reported twice.
	if p.cur != nil && len(p.errs) == 0 {
		p.line = p.cur.Line
		p.fail("session_end", "missing: the session that starts on this line is never ended (add a session_end line)")
	}
	if len(p.t.Sessions) == 0 && len(p.errs) == 0 {
		p.line = max(p.line, 1)
		p.fail("session_start", "missing: the transcript holds no session (it starts with a session_start line)")
	}
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
		if len(p.errs) > maxErrors {
			p.errs = p.errs[:maxErrors]
		}
		return nil, p.errs
	}
	return p.t, nil
}

func (p *parser) parseLine(line []byte) {
	if len(line) == 0 {
		return // blank lines are allowed
	}
	var obj map[string]json.RawMessage
	if line[0] != '{' {
		p.fail("line", "not a JSON object (a transcript has one JSON object per line)")
		return
	}
	if err := json.Unmarshal(line, &obj); err != nil {
		p.fail("line", "not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
		return
	}
	rawType, ok := obj["type"]
	if !ok {
		p.fail("type", "missing (one of %s)", strings.Join(lineTypes, ", "))
		return
	}
	var typ string
	if err := json.Unmarshal(rawType, &typ); err != nil {
		p.fail("type", "want a string, one of %s", strings.Join(lineTypes, ", "))
		return
	}
	switch typ {
	case "session_start":
		p.sessionStart(line)
	case "turn", "tool_call", "event":
		p.step(typ, line, obj)
	case "session_end":
		p.sessionEnd(line)
	default:
		p.fail("type", "unknown type %q (want one of %s)", typ, strings.Join(lineTypes, ", "))
	}
}

// decode decodes line strictly into v; false (with the problem reported)
// when a field is unknown or of the wrong JSON type.
func (p *parser) decode(line []byte, v any, what string) bool {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return true
	}
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		p.fail(te.Field, "want %s, got %s", describe(v, te), te.Value)
	case strings.HasPrefix(err.Error(), `json: unknown field "`):
		f := strings.TrimSuffix(strings.TrimPrefix(err.Error(), `json: unknown field "`), `"`)
		p.fail(f, "unknown field of a %s line (allowed: %s)", what, strings.Join(fieldsOf(v), ", "))
	default:
		p.fail("line", "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return false
}

// describe names the JSON type a field of v wants.
func describe(v any, te *json.UnmarshalTypeError) string {
	top, _, _ := strings.Cut(te.Field, ".")
	t := te.Type
	if f, ok := fieldType(v, top); ok {
		t = f
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true, false or null"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Map:
		return "an object of strings"
	case reflect.Slice:
		if t == reflect.TypeOf(json.RawMessage(nil)) {
			return "a JSON object"
		}
		return "a list of strings"
	}
	return t.String()
}

func fieldType(v any, name string) (reflect.Type, bool) {
	if i := slices.Index(fieldsOf(v), name); i >= 0 {
		return reflect.TypeOf(v).Elem().Field(i).Type, true
	}
	return nil, false
}

func fieldsOf(v any) []string {
	t := reflect.TypeOf(v).Elem()
	out := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out = append(out, tag)
	}
	return out
}

// ts parses an optional ts field.
func (p *parser) ts(v *string) (time.Time, bool) {
	if v == nil {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		p.fail("ts", "want an RFC 3339 time such as 2026-03-02T09:14:05.250Z, got %q", *v)
		return time.Time{}, false
	}
	return t.UTC(), true
}

func (p *parser) required(field, v string) bool {
	if strings.TrimSpace(v) == "" {
		p.fail(field, "missing")
		return false
	}
	return true
}

// enum checks v against an enum field of the schema declaration.
func (p *parser) enum(field string, f *schema.Field, v string) bool {
	if !p.required(field, v) {
		return false
	}
	if !f.Allows(v) {
		p.fail(field, "%q is not one of %s", v, strings.Join(f.Enum(), ", "))
		return false
	}
	return true
}

// bounded checks v against the bounds of an int field of the declaration.
func (p *parser) bounded(field string, f *schema.Field, v int64) bool {
	if v < f.Min() || v > f.Max() {
		p.fail(field, "%d is outside %d … %d", v, f.Min(), f.Max())
		return false
	}
	return true
}

func (p *parser) sessionStart(line []byte) {
	if p.cur != nil {
		p.fail("type", "a second session_start: the session started on line %d has no session_end yet", p.cur.Line)
		return // the open session goes on: its lines are checked against it
	}
	s := &Session{Line: p.line}
	p.cur, p.turnLine, p.slashLine, p.outsideSaid = s, 0, 0, false
	var l sessionStartLine
	if !p.decode(line, &l, "session_start") {
		return
	}
	ok := true
	var tsOK bool
	s.TS, tsOK = p.ts(l.TS)
	ok = tsOK && ok
	ok = p.required("model", l.Model) && ok
	if l.FredVersion != "" && !schema.SessionFields().FredVersion.Allows(l.FredVersion) {
		p.fail("fred_version", "%q is not a version such as 1.4.2", l.FredVersion)
		ok = false
	}
	if !ok {
		return
	}
	s.FredVersion = l.FredVersion
	// cwd, hostname, git_sha, env and runtime_version stop here: the
	// library never receives them.
	s.Info = telemetry.SessionInfo{
		Model: l.Model, OS: l.OS, Shell: l.Shell, GitDirty: l.GitDirty,
		AgentsMD: l.AgentsMD, SystemPrompt: l.SystemPrompt, Tools: l.Tools, Commands: l.Commands, Models: l.Models,
	}
	// The library fills an empty OS and shell from the machine it runs on
	// (runtime.GOOS, $SHELL): a replay must not record those of the
	// machine that replays.
	if s.Info.OS == "" {
		s.Info.OS = "other"
	}
	if s.Info.Shell == "" {
		s.Info.Shell = "other"
	}
}

func (p *parser) sessionEnd(line []byte) {
	s := p.cur
	if s == nil {
		p.outside("session_end")
		return
	}
	p.cur, p.lastEnd = nil, p.line
	var l sessionEndLine
	if !p.decode(line, &l, "session_end") {
		return
	}
	if t, ok := p.ts(l.TS); ok {
		s.EndLine, s.EndTS = p.line, t
		p.t.Sessions = append(p.t.Sessions, s)
	}
}

func (p *parser) outside(typ string) {
	if p.outsideSaid {
		return // once until the next session_start: the rest would say the same
	}
	p.outsideSaid = true
	if p.lastEnd > 0 {
		p.fail("type", "%s after the session_end on line %d: a new session needs its session_start first", typ, p.lastEnd)
	} else {
		p.fail("type", "%s before any session_start (a transcript starts with a session_start line)", typ)
	}
}

func (p *parser) step(typ string, line []byte, obj map[string]json.RawMessage) {
	s := p.cur
	if s == nil {
		p.outside(typ)
		return
	}
	st := Step{Line: p.line}
	var tsRaw *string
	ok := true
	switch typ {
	case "turn":
		p.turnLine, p.slashLine = p.line, 0
		var l turnLine
		if !p.decode(line, &l, "turn") {
			return
		}
		tsRaw = l.TS
		ok = p.enum("mode", schema.TurnFields().Mode, l.Mode) && ok
		ok = p.required("model", l.Model) && ok
		ok = p.bounded("prompt_tokens", schema.TurnFields().PromptTokens, l.PromptTokens) && ok
		ok = p.bounded("completion_tokens", schema.TurnFields().CompletionTokens, l.CompletionTokens) && ok
		ok = p.bounded("cached_tokens", schema.TurnFields().CachedTokens, l.CachedTokens) && ok
		ok = p.enum("finish_reason", schema.TurnFields().FinishReason, l.FinishReason) && ok
		ok = p.bounded("duration_ms", schema.TurnFields().DurationMs, l.DurationMs) && ok
		if l.APIErrorType != "" {
			ok = p.enum("api_error_type", schema.TurnFields().APIErrorType, l.APIErrorType) && ok
		}
		st.Turn = &Turn{Mode: l.Mode, Model: l.Model, Duration: time.Duration(l.DurationMs) * time.Millisecond,
			Result: telemetry.TurnResult{
				PromptTokens: int(l.PromptTokens), CompletionTokens: int(l.CompletionTokens), CachedTokens: int(l.CachedTokens),
				FinishReason: l.FinishReason, APIErrorType: l.APIErrorType, Model: l.Model,
				UserInput: l.UserInput, AssistantText: l.AssistantText,
			}}
	case "tool_call":
		switch {
		case p.slashLine > 0:
			p.fail("type", "tool_call after the slash command on line %d, which ends the turn of line %d (a tool call belongs to the turn above it)", p.slashLine, p.turnLine)
			return
		case p.turnLine == 0:
			p.fail("type", "tool_call before any turn of its session (a tool call belongs to the turn above it)")
			return
		}
		var l toolCallLine
		if !p.decode(line, &l, "tool_call") {
			return
		}
		tsRaw = l.TS
		ok = p.required("tool_name", l.ToolName) && ok
		switch a := bytes.TrimSpace(l.Args); {
		case len(a) == 0:
			p.fail("args", "missing (the raw JSON arguments; {} when there are none)")
			ok = false
		case a[0] != '{':
			p.fail("args", "want a JSON object, got %s", jsonKind(a))
			ok = false
		}
		ok = p.enum("permission", schema.ToolCallFields().Permission, l.Permission) && ok
		ok = p.bounded("duration_ms", schema.ToolCallFields().DurationMs, l.DurationMs) && ok
		st.Call = &telemetry.ToolCall{Name: l.ToolName, Args: []byte(l.Args), Result: l.Result, Permission: l.Permission,
			Failed: l.Failed, Duration: time.Duration(l.DurationMs) * time.Millisecond}
	case "event":
		var kind string
		if raw, has := obj["kind"]; !has {
			p.fail("kind", "missing (one of %s)", strings.Join(eventKinds, ", "))
			return
		} else if err := json.Unmarshal(raw, &kind); err != nil {
			p.fail("kind", "want a string, one of %s", strings.Join(eventKinds, ", "))
			return
		}
		ev := &Event{Kind: kind}
		switch kind {
		case "slash_command":
			if p.turnLine > 0 && p.slashLine == 0 {
				p.slashLine = p.line // the user typed it: the turn is over
			}
			var l slashCommandLine
			if !p.decode(line, &l, "slash_command event") {
				return
			}
			tsRaw = l.TS
			if ok = p.required("line", l.Line); ok && !strings.HasPrefix(strings.TrimSpace(l.Line), "/") {
				p.fail("line", "want the line as typed, starting with /")
				ok = false
			}
			ev.Line = l.Line
		case "api_retry":
			var l apiRetryLine
			if !p.decode(line, &l, "api_retry event") {
				return
			}
			tsRaw = l.TS
			if l.Attempt == 0 {
				p.fail("attempt", "missing (the retry number, from 1)")
				ok = false
			} else {
				ok = p.bounded("attempt", schema.APIRetryFields().Attempt, l.Attempt) && ok
			}
			ok = p.bounded("delay_ms", schema.APIRetryFields().DelayMs, l.DelayMs) && ok
			ok = p.enum("error_type", schema.APIRetryFields().ErrorType, l.ErrorType) && ok
			ok = p.bounded("status", schema.APIRetryFields().Status, l.Status) && ok
			ok = p.bounded("latency_ms", schema.APIRetryFields().LatencyMs, l.LatencyMs) && ok
			ev.Retry = telemetry.Retry{Attempt: int(l.Attempt), Delay: time.Duration(l.DelayMs) * time.Millisecond,
				Latency: time.Duration(l.LatencyMs) * time.Millisecond, ErrorType: l.ErrorType, Status: int(l.Status)}
		case "mode_change", "model_swap":
			var l fromToLine
			if !p.decode(line, &l, kind+" event") {
				return
			}
			tsRaw = l.TS
			if kind == "mode_change" {
				ok = p.enum("from", schema.ModeChangeFields().From, l.From) && ok
				ok = p.enum("to", schema.ModeChangeFields().To, l.To) && ok
			} else {
				ok = p.required("from", l.From) && ok
				ok = p.required("to", l.To) && ok
			}
			ev.From, ev.To = l.From, l.To
		default:
			p.fail("kind", "unknown event kind %q (want one of %s)", kind, strings.Join(eventKinds, ", "))
			return
		}
		st.Event = ev
	}
	t, tsOK := p.ts(tsRaw)
	if !ok || !tsOK {
		return
	}
	st.TS = t
	s.Steps = append(s.Steps, st)
}

func jsonKind(raw []byte) string {
	switch raw[0] {
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}
