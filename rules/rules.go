// Package rules holds the definitions that the insights (SQL over a whole
// fleet, package insights) and the live hints (inside the client library,
// over one session as it happens) share, so that a loop or a stuck session
// means one thing in both. It imports nothing of ours and nothing outside
// the standard library: the client links it.
package rules

import "strings"

// The defaults of the rules (SPEC §7).
const (
	// MinRepeats: this many consecutive tool calls of a session with the
	// same tool name and the same arguments are a loop.
	MinRepeats = 3
	// StruggleTurns: this many struggling turns on a fast model, before
	// any swap to a stronger one, make a session stuck.
	StruggleTurns = 3
	// StruggleToolCalls: a turn that asks for this many tool calls or more
	// struggles even when it ends normally.
	StruggleToolCalls = 8
	// StormRetries: this many api_retry events make a session a retry storm.
	StormRetries = 5
)

// FastWords mark a model name as a fast (cheap, weaker) model when no
// list of fast models is given: a name containing one, in any case.
var FastWords = []string{"flash", "mini", "haiku", "lite", "nano", "fast"}

// IsFast reports whether model is a fast model: in fastModels when that is
// not empty, else named with one of FastWords.
func IsFast(model string, fastModels []string) bool {
	if len(fastModels) > 0 {
		for _, m := range fastModels {
			if m == model {
				return true
			}
		}
		return false
	}
	m := strings.ToLower(model)
	for _, w := range FastWords {
		if strings.Contains(m, w) {
			return true
		}
	}
	return false
}

// Struggles reports whether a turn struggled: it ended in length or error,
// or asked for StruggleToolCalls tool calls or more.
func Struggles(finishReason string, toolCalls int64, struggleToolCalls int) bool {
	return finishReason == "length" || finishReason == "error" || toolCalls >= int64(struggleToolCalls)
}

// Run marks the calls of one session, in their order, with their place in
// a run of identical calls (same tool name, same arguments): the client
// records the mark with each call (tool_calls.run_start and run_len), so
// the insights find a fleet's loops in an index of the repeats instead of
// sorting every call. K is what makes two calls identical (the recorded
// name and argument fingerprint); ID is a call's id. The zero Run is ready.
type Run[K comparable, ID comparable] struct {
	key   K
	start ID
	n     int64
}

// Next follows the call id with key k, the next call of the session in
// order, and returns the id of its run's first call and its place in the
// run: 1 for a call unlike the one before it (start is then id itself), 2
// and more for a repeat.
func (r *Run[K, ID]) Next(k K, id ID) (start ID, n int64) {
	if r.n > 0 && k == r.key {
		r.n++
	} else {
		r.key, r.start, r.n = k, id, 1
	}
	return r.start, r.n
}
