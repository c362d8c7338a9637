package telemetry

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/fredcode/fredtel/rules"
	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
)

// The handles of the fields a call and a turn clean, taken once (schema's
// functions return copies).
var callFields, turnFields = schema.ToolCallFields(), schema.TurnFields()

// Turn is one iteration of the agent loop, from BeginTurn to End. Its
// methods are safe for concurrent use (tool calls may run in parallel).
type Turn struct {
	s     *Session
	id    uuid.UUID
	seq   int64
	start time.Time
	mode  string
	model string
	calls atomic.Int64
	ended atomic.Bool
}

// ToolCall is one tool invocation as the agent saw it. Args and Result are
// raw: the library keeps only keyed fingerprints of both (under the
// session's key), the size of Result and whether it starts with "Error:".
type ToolCall struct {
	Name string
	// Args is the raw JSON of the arguments the model asked for.
	Args []byte
	// Result is the raw text the tool returned.
	Result string
	// ResultBytes is the size of a result known only by its size (a
	// relayed CLI's): used when Result is empty, and then no result
	// fingerprint is recorded.
	ResultBytes int64
	// Permission is auto_allowed, user_allowed or denied.
	Permission string
	// Failed: the tool could not run or reported a failure.
	Failed bool
	// StartedAt defaults to now minus Duration.
	StartedAt time.Time
	Duration  time.Duration
}

// TurnResult is what the agent knows when a turn ends. UserInput and
// AssistantText are raw text: only their lengths are recorded, except on the
// self-hosted route without DSC_TELEMETRY_NO_TEXT, which keeps the text in
// the user's own database.
type TurnResult struct {
	PromptTokens, CompletionTokens, CachedTokens int
	// FinishReason is stop, tool_calls, length, content_filter, error,
	// cancelled or other.
	FinishReason string
	// APIErrorType is "" or the class of API error that ended the turn.
	APIErrorType string
	// NumToolCalls defaults to the tool calls recorded on the turn.
	NumToolCalls int
	// Model, when set, is the model that answered (default: BeginTurn's).
	Model         string
	UserInput     string
	AssistantText string
	// PromptChars and ResponseChars are the lengths of a text known only
	// by its length (a relayed CLI that does not send it): used when
	// UserInput or AssistantText is empty.
	PromptChars, ResponseChars int
}

// BeginTurn starts a turn in mode (act or plan) with model.
func (s *Session) BeginTurn(mode, model string) *Turn {
	t := &Turn{s: s, mode: mode, model: model}
	if !s.recording() {
		return t
	}
	defer s.recoverPanic()
	t.start = s.opts.Now()
	t.id = s.ids.next(t.start)
	t.seq = s.turnSeq.Add(1) - 1
	return t
}

// ToolCall records a tool call of the turn. This is the agent's hot path: it
// costs a fingerprint and a queue append, and allocates nothing on the
// central route.
func (t *Turn) ToolCall(c ToolCall) {
	s := t.s
	if s == nil {
		return
	}
	if s.hints != nil {
		s.hints.toolCall(c.Name, c.Args, c.Result)
	}
	if !s.recording() {
		if s.hints != nil {
			t.calls.Add(1) // for the stuck rule's tool-heavy turns
		}
		return
	}
	defer s.recoverPanic()
	now := s.opts.Now()
	start := c.StartedAt
	if start.IsZero() {
		start = now.Add(-c.Duration)
	}
	outcome := "ok"
	if c.Failed {
		outcome = "error"
	}
	argsFP, resultFP := s.fp.call(c.Args, c.Result)
	resultBytes := int64(len(c.Result))
	if c.Result == "" && c.ResultBytes > 0 {
		resultBytes, resultFP = c.ResultBytes, schema.Hash{}
	}
	name, id := s.toolName(c.Name), s.ids.next(now)
	seq, runStart, runLen := s.runs.next(t, name, argsFP, id)
	rec := schema.ToolCall{
		CallID:          id,
		SessionID:       s.id,
		TurnID:          t.id,
		Seq:             callFields.Seq.Clamp(seq),
		StartedAt:       schema.TimeOf(start),
		ToolName:        name,
		ArgsFingerprint: argsFP,
		Permission:      s.clean(callFields.Permission, c.Permission),
		DurationMs:      callFields.DurationMs.Clamp(c.Duration.Milliseconds()),
		Outcome:         outcome,
		ResultBytes:     callFields.ResultBytes.Clamp(resultBytes),
		ResultIsError:   strings.HasPrefix(c.Result, "Error:"),
		// Same arguments and same result again: the agent is stuck; same
		// arguments and a changing result: it is polling.
		ResultFingerprint: resultFP,
		RunStart:          runStart,
		RunLen:            runLen,
	}
	push(s, rec, sizeToolCall)
}

// runMarks marks each call with its place in its run of identical calls
// (rules.Run), so the insights find loops without sorting a fleet's calls.
// The call's seq is taken under the same lock, so marks follow the order
// the insights read (turns by seq, calls by seq). A call of an earlier
// turn recorded after a later turn's call breaks that order: from then on
// the session's calls go unmarked, and the insights sort them instead.
type runMarks struct {
	mu       sync.Mutex
	run      rules.Run[runKey, uuid.UUID]
	turn     int64 // seq of the turn of the last marked call
	any, off bool
}

type runKey struct {
	tool string
	args schema.Hash
}

func (m *runMarks) next(t *Turn, tool string, args schema.Hash, id uuid.UUID) (seq int64, start schema.OptUUID, n schema.OptInt) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seq = t.calls.Add(1) - 1
	if m.off || m.any && t.seq < m.turn {
		m.off = true
		return seq, start, n
	}
	m.any, m.turn = true, t.seq
	s, k := m.run.Next(runKey{tool, args}, id)
	return seq, schema.OptUUID{UUID: s}, schema.IntOf(k)
}

// toolName is a tool's name as recorded, worked out once per name and
// session (the hot path only looks it up).
func (s *Session) toolName(name string) string {
	if v, ok := s.names.Load(name); ok {
		return v.(string)
	}
	c := s.cleanToolName(name)
	s.names.Store(name, c)
	return c
}

// Names on the central route come from closed vocabularies (SPEC §4): a
// name is one of the build's own (the catalogs of SessionInfo, sent in the
// session record) or a fixed word of schema.FixedModelNames(),
// FixedToolNames or FixedCommandNames. A pattern alone would let an e-mail
// address, a URL with credentials, a path or a hyphenated sentence
// through. The self-hosted route keeps the real model and tool names (the
// user's own database), checked against the patterns only; a slash command
// outside the catalog is a typed word, not a name, on every route. A name
// replaced by a fixed word counts in Stats.Replaced.

// cleanToolName: on the central route a tool of the build's catalog, else
// "mcp" for a tool of an MCP server the user configured, else "other".
func (s *Session) cleanToolName(name string) string {
	if s.kind != Central {
		return s.clean(callFields.ToolName, name)
	}
	if s.tools[name] {
		return name
	}
	s.stats.replaced.Add(1) // once per name: the result is cached
	if isMCPName(name) {
		return "mcp"
	}
	return "other"
}

// isMCPName reports whether a tool name is one an agent gives a tool of an
// MCP server: mcp__server__tool (Claude Code, Fred), server__tool (Codex,
// Gemini CLI), or an mcp prefix with another separator. The server and tool
// parts are the user's own words, so such a name is never kept centrally.
func isMCPName(name string) bool {
	if strings.Contains(name, "__") {
		return true
	}
	if len(name) > 4 && strings.EqualFold(name[:3], "mcp") {
		switch name[3] {
		case '_', '-', '.', ':', '/':
			return true
		}
	}
	return false
}

// modelName: on the central route a model of the build's catalog, else
// "custom" (a model the user typed: /model, FRED_MODEL), or "other" when
// there is none.
func (s *Session) modelName(m string) string {
	if s.kind != Central {
		return s.clean(schema.SessionFields().Model, m)
	}
	if s.models[m] {
		return m
	}
	s.stats.replaced.Add(1)
	if strings.TrimSpace(m) == "" {
		return "other"
	}
	return "custom"
}

// commandName: a command of the build's catalog, else "other", on every
// route: a command the build does not offer is a word the user typed, not
// a name (an empty catalog makes every command other).
func (s *Session) commandName(c string) string {
	if !s.cmds[c] {
		s.stats.replaced.Add(1)
		return "other"
	}
	return c
}

// End records the turn. Calling it again does nothing.
func (t *Turn) End(r TurnResult) {
	s := t.s
	if s == nil || t.ended.Swap(true) {
		return
	}
	if s.hints != nil {
		model, n := r.Model, int64(r.NumToolCalls)
		if model == "" {
			model = t.model
		}
		if n == 0 {
			n = t.calls.Load()
		}
		s.hints.turn(model, r.FinishReason, n)
	}
	if !s.recording() {
		return
	}
	defer s.recoverPanic()
	now := s.opts.Now()
	model := r.Model
	if model == "" {
		model = t.model
	}
	n := int64(r.NumToolCalls)
	if n == 0 {
		n = t.calls.Load()
	}
	rec := schema.Turn{
		TurnID:           t.id,
		SessionID:        s.id,
		Seq:              turnFields.Seq.Clamp(t.seq),
		StartedAt:        schema.TimeOf(t.start),
		Model:            s.modelName(model),
		Mode:             s.clean(turnFields.Mode, t.mode),
		PromptTokens:     turnFields.PromptTokens.Clamp(int64(r.PromptTokens)),
		CompletionTokens: turnFields.CompletionTokens.Clamp(int64(r.CompletionTokens)),
		CachedTokens:     turnFields.CachedTokens.Clamp(int64(r.CachedTokens)),
		FinishReason:     s.clean(turnFields.FinishReason, r.FinishReason),
		DurationMs:       turnFields.DurationMs.Clamp(now.Sub(t.start).Milliseconds()),
		NumToolCalls:     turnFields.NumToolCalls.Clamp(n),
		PromptChars:      turnFields.PromptChars.Clamp(textChars(r.UserInput, r.PromptChars)),
		ResponseChars:    turnFields.ResponseChars.Clamp(textChars(r.AssistantText, r.ResponseChars)),
		UserInput:        s.storedText(r.UserInput),
		AssistantText:    s.storedText(r.AssistantText),
	}
	if r.APIErrorType != "" {
		rec.APIErrorType = schema.OptString(s.clean(turnFields.APIErrorType, r.APIErrorType))
	}
	s.pushTurn(&rec)
}

// textChars is the length of text, or n when the text is not known.
func textChars(text string, n int) int64 {
	if text == "" {
		return int64(n)
	}
	return int64(utf8.RuneCountInString(text))
}

// SlashCommand records a slash command the user ran, given as typed
// ("/model fast"): only the command's name is kept, never what follows it,
// and only when this build offers it (SessionInfo.Commands; else "other"),
// so a mistyped or made-up word is not recorded either, on any route.
// Every command is recorded this way, /telemetry included.
func (s *Session) SlashCommand(line string) {
	if !s.recording() {
		return
	}
	defer s.recoverPanic()
	name := strings.TrimPrefix(strings.TrimSpace(line), "/")
	if i := strings.IndexAny(name, " \t\n"); i >= 0 {
		name = name[:i]
	}
	s.event(schema.SlashCommandProps{Command: s.commandName(strings.ToLower(name))})
}

// Retry describes a model API call that failed and is tried again.
type Retry struct {
	// Attempt is the retry's number, from 1.
	Attempt int
	// Delay is the wait before the retry.
	Delay time.Duration
	// Latency is how long the failed attempt took (a timeout after 60 s
	// and a 429 after 80 ms are different storms).
	Latency time.Duration
	// ErrorType is the class of the error: rate_limit, overloaded,
	// timeout, connection, server_error, auth, bad_request,
	// context_length, content_filter or other.
	ErrorType string
	// Status is the HTTP status, 0 when there was none.
	Status int
}

// APIRetry records that a model API call is retried.
func (s *Session) APIRetry(r Retry) {
	if !s.recording() {
		return
	}
	defer s.recoverPanic()
	s.event(schema.APIRetryProps{
		Attempt:   schema.APIRetryFields().Attempt.Clamp(int64(r.Attempt)),
		DelayMs:   schema.APIRetryFields().DelayMs.Clamp(r.Delay.Milliseconds()),
		ErrorType: s.clean(schema.APIRetryFields().ErrorType, r.ErrorType),
		Status:    schema.APIRetryFields().Status.Clamp(int64(r.Status)),
		LatencyMs: schema.APIRetryFields().LatencyMs.Clamp(r.Latency.Milliseconds()),
	})
}

// ModeChange records a switch between act and plan.
func (s *Session) ModeChange(from, to string) {
	if !s.recording() {
		return
	}
	defer s.recoverPanic()
	s.event(schema.ModeChangeProps{From: s.clean(schema.ModeChangeFields().From, from), To: s.clean(schema.ModeChangeFields().To, to)})
}

// ModelSwap records a change of model.
func (s *Session) ModelSwap(from, to string) {
	if s.hints != nil {
		s.hints.swap(to)
	}
	if !s.recording() {
		return
	}
	defer s.recoverPanic()
	s.event(schema.ModelSwapProps{From: s.modelName(from), To: s.modelName(to)})
}

func (s *Session) event(p interface {
	EventName() string
	Props() schema.Props
}) {
	now := s.opts.Now()
	seq := s.eventSeq.Add(1) - 1
	rec := schema.Event{EventID: s.ids.next(now), SessionID: s.id, TS: schema.TimeOf(now), Name: p.EventName(), Props: p.Props(),
		Seq: schema.IntOf(schema.EventFields().Seq.Clamp(seq))}
	push(s, rec, sizeEvent)
}

// End records the end of the session (sent again with ended_at; the store
// updates the one row). Close calls it; calling it again does nothing.
func (s *Session) End() {
	if !s.state.move(stateRecording, stateEnded) {
		return
	}
	defer s.recoverPanic()
	rec := s.session
	rec.EndedAt = schema.TimeOf(s.opts.Now())
	push(s, rec, sizeSession)
}
