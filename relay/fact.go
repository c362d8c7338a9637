package relay

import (
	"strings"
	"time"

	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/slim/otlp/logs/v1"
)

// kind of a fact: what one CLI event says, in the relay's own terms.
type kind uint8

const (
	kPrompt    kind = iota + 1 // the user's prompt: text (when sent) and length
	kSlash                     // a slash command: command
	kMode                      // an approval-mode switch: from, to (already act/plan)
	kCall                      // a model call, complete: model, tokens, finish, at..end
	kCallStart                 // a model call begins (Codex: its tokens come later)
	kCallEnd                   // a model call's usage (Codex): tokens
	kText                      // the assistant's answer: text (when sent) and length
	kDecision                  // a tool call's permission, before it runs
	kTool                      // a tool call, complete
	kRetry                     // a model API call failed and is tried again
	kFail                      // a model API call failed: a retry if another attempt follows, else the turn's error
	kFinish                    // a finish reason for the call ending at "at" (Claude's traces)
	kEnd                       // the CLI ended the session (/quit)
)

// source of a fact: a log record or a span (Claude Code reports some
// things in both; logs win).
type source uint8

const (
	srcLog source = iota
	srcSpan
)

// fact is one CLI event reduced to what the records need. Text fields
// (text, args, result) are the CLI's raw text: they reach the telemetry
// library, which keeps them only self-hosted (text) or as keyed
// fingerprints (args, result), and never in the relay's logs.
type fact struct {
	kind kind
	src  source
	aux  bool // a call outside the agent loop (session titles, routing)

	at, end time.Time

	text  string
	chars int

	model              string
	in, out, cached    int64
	finish             string
	status, attempt    int64
	errType            string
	delay, latency     time.Duration
	tool, callID, perm string
	args, result       string
	resultBytes        int64
	failed             bool
	waits              bool // a failure whose retry the CLI reports by an event of its own (Gemini)
	command, from, to  string
}

// size estimates a fact's memory, for the per-session bound.
func (f *fact) size() int {
	return 256 + len(f.text) + len(f.args) + len(f.result) + len(f.model) + len(f.tool) + len(f.callID)
}

// recordTime is when a log record happened: its time, else its observed
// time (Codex leaves the time at 0), else its event.timestamp attribute,
// else zero (the relay then uses the time it received it).
func recordTime(r *logspb.LogRecord) time.Time {
	if t := r.GetTimeUnixNano(); t > 0 {
		return unixNano(t)
	}
	if t := r.GetObservedTimeUnixNano(); t > 0 {
		return unixNano(t)
	}
	if ts := str(r.GetAttributes(), "event.timestamp"); ts != "" {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			return t
		}
	}
	return time.Time{}
}

func unixNano(ns uint64) time.Time {
	if ns > 1<<62 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns)).UTC()
}

// ms is a millisecond count as a duration.
func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

// visible is the text a CLI sent, or "" when it sent a placeholder
// instead (prompt logging off).
func visible(s string) string {
	switch strings.TrimSpace(s) {
	case "<REDACTED>", "[REDACTED]", "REDACTED", "":
		return ""
	}
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, " chars clipped>") {
		return ""
	}
	return s
}

// errorClass sorts an API failure into the schema's error types, from the
// CLI's own class when it gives one, else from the HTTP status.
func errorClass(status int64, class string) string {
	switch c := strings.ToUpper(class); {
	case strings.Contains(c, "RATE") || strings.Contains(c, "QUOTA"):
		return "rate_limit"
	case strings.Contains(c, "TIMEOUT"):
		return "timeout"
	case strings.Contains(c, "NETWORK") || strings.Contains(c, "CONNECT") || strings.Contains(c, "ECONN"):
		return "connection"
	case strings.Contains(c, "OVERLOAD"):
		return "overloaded"
	case strings.Contains(c, "SERVER"):
		return "server_error"
	}
	switch {
	case status == 429:
		return "rate_limit"
	case status == 529:
		return "overloaded"
	case status == 408 || status == 504:
		return "timeout"
	case status == 401 || status == 403:
		return "auth"
	case status == 413:
		return "context_length"
	case status >= 400 && status < 500:
		return "bad_request"
	case status >= 500:
		return "server_error"
	}
	return "other"
}

// mode maps an approval mode to the schema's act/plan: every mode but
// plan lets the agent act.
func mode(m string) string {
	if strings.EqualFold(strings.TrimSpace(m), "plan") {
		return "plan"
	}
	return "act"
}

// stopReason maps a vendor finish reason to the schema's.
func stopReason(r string) string {
	switch strings.ToLower(strings.TrimSpace(r)) {
	case "stop", "end_turn", "stop_sequence", "completed":
		return "stop"
	case "tool_use", "tool_calls", "function_call":
		return "tool_calls"
	case "max_tokens", "length", "max_output_tokens":
		return "length"
	case "safety", "content_filter", "refusal", "recitation", "blocklist", "prohibited_content", "spii":
		return "content_filter"
	case "":
		return ""
	}
	return "other"
}

// kvs is a shorthand.
type kvs = []*common.KeyValue
