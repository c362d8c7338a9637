package telemetry

import (
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
)

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
// raw: the library keeps only a keyed fingerprint of Args and the size and
// "Error:" prefix of Result.
type ToolCall struct {
	Name string
	// Args is the raw JSON of the arguments the model asked for.
	Args []byte
	// Result is the raw text the tool returned.
	Result string
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
}

// BeginTurn starts a turn in mode (act or plan) with model.
func (s *Session) BeginTurn(mode, model string) *Turn {
	t := &Turn{s: s, mode: mode, model: model}
	if !s.active.Load() {
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
	if s == nil || !s.active.Load() {
		return
	}
	defer s.recoverPanic()
	seq := t.calls.Add(1) - 1
	now := s.opts.Now()
	start := c.StartedAt
	if start.IsZero() {
		start = now.Add(-c.Duration)
	}
	outcome := "ok"
	if c.Failed {
		outcome = "error"
	}
	rec := schema.ToolCall{
		CallID:          s.ids.next(now),
		SessionID:       s.id,
		TurnID:          t.id,
		Seq:             fCallSeq.Clamp(seq),
		StartedAt:       schema.TimeOf(start),
		ToolName:        s.toolName(c.Name),
		ArgsFingerprint: s.fp.args(c.Args),
		Permission:      s.clean(fPermission, c.Permission),
		DurationMs:      fCallDur.Clamp(c.Duration.Milliseconds()),
		Outcome:         outcome,
		ResultBytes:     fResult.Clamp(int64(len(c.Result))),
		ResultIsError:   strings.HasPrefix(c.Result, "Error:"),
	}
	s.pushToolCall(&rec)
}

// toolName cleans a tool name once per name and session.
func (s *Session) toolName(name string) string {
	if v, ok := s.names.Load(name); ok {
		return v.(string)
	}
	c := s.clean(fToolName, name)
	s.names.Store(name, c)
	return c
}

// End records the turn. Calling it again does nothing.
func (t *Turn) End(r TurnResult) {
	s := t.s
	if s == nil || !s.active.Load() || t.ended.Swap(true) {
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
		Seq:              fTurnSeq.Clamp(t.seq),
		StartedAt:        schema.TimeOf(t.start),
		Model:            s.clean(fModel, model),
		Mode:             s.clean(fMode, t.mode),
		PromptTokens:     fTokens.Clamp(int64(r.PromptTokens)),
		CompletionTokens: fTokens.Clamp(int64(r.CompletionTokens)),
		CachedTokens:     fTokens.Clamp(int64(r.CachedTokens)),
		FinishReason:     s.clean(fFinish, r.FinishReason),
		DurationMs:       fTurnDuration.Clamp(now.Sub(t.start).Milliseconds()),
		NumToolCalls:     fNumCalls.Clamp(n),
		PromptChars:      fChars.Clamp(int64(utf8.RuneCountInString(r.UserInput))),
		ResponseChars:    fChars.Clamp(int64(utf8.RuneCountInString(r.AssistantText))),
		UserInput:        r.UserInput,
		AssistantText:    r.AssistantText,
	}
	if r.APIErrorType != "" {
		rec.APIErrorType = schema.OptString(s.clean(fAPIError, r.APIErrorType))
	}
	s.pushTurn(&rec)
}

// SlashCommand records a slash command the user ran, given as typed
// ("/model fast"): only the command's name is kept, and only when this build
// offers it (else "other"), so nothing the user typed after it, nor a
// mistyped word, is recorded.
func (s *Session) SlashCommand(line string) {
	if !s.active.Load() {
		return
	}
	defer s.recoverPanic()
	name := strings.TrimPrefix(strings.TrimSpace(line), "/")
	if i := strings.IndexAny(name, " \t\n"); i >= 0 {
		name = name[:i]
	}
	name = strings.ToLower(name)
	if len(s.cmds) > 0 && !s.cmds[name] {
		name = "other"
	}
	s.event(schema.SlashCommandProps{Command: s.clean(fCommand, name)})
}

// APIRetry records that a model API call is retried: attempt from 1, the
// delay before it, the error class and the HTTP status (0 when none).
func (s *Session) APIRetry(attempt int, delay time.Duration, errorType string, status int) {
	if !s.active.Load() {
		return
	}
	defer s.recoverPanic()
	s.event(schema.APIRetryProps{
		Attempt:   fAttempt.Clamp(int64(attempt)),
		DelayMs:   fDelay.Clamp(delay.Milliseconds()),
		ErrorType: s.clean(fRetryError, errorType),
		Status:    fStatus.Clamp(int64(status)),
	})
}

// ModeChange records a switch between act and plan.
func (s *Session) ModeChange(from, to string) {
	if !s.active.Load() {
		return
	}
	defer s.recoverPanic()
	s.event(schema.ModeChangeProps{From: s.clean(fMode, from), To: s.clean(fMode, to)})
}

// ModelSwap records a change of model.
func (s *Session) ModelSwap(from, to string) {
	if !s.active.Load() {
		return
	}
	defer s.recoverPanic()
	s.event(schema.ModelSwapProps{From: s.clean(fModel, from), To: s.clean(fModel, to)})
}

func (s *Session) event(p interface {
	EventName() string
	Props() schema.Props
}) {
	now := s.opts.Now()
	rec := schema.Event{EventID: s.ids.next(now), SessionID: s.id, TS: schema.TimeOf(now), Name: p.EventName(), Props: p.Props()}
	s.pushEvent(&rec)
}

// End records the end of the session (sent again with ended_at; the store
// updates the one row). Close calls it; calling it again does nothing.
func (s *Session) End() {
	if !s.active.Load() || s.ended.Swap(true) {
		return
	}
	defer s.recoverPanic()
	rec := s.session
	rec.EndedAt = schema.TimeOf(s.opts.Now())
	s.pushSession(rec)
}
