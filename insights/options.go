package insights

import (
	"fmt"
	"strings"
	"time"

	"github.com/fredcode/fredtel/rules"
	"github.com/fredcode/fredtel/schema"
)

// Options choose what Compute looks at. The zero value of every field but
// Tables means "no limit" or the documented default.
type Options struct {
	// Tables is "central" (telemetry_*, users counted by user_id) or
	// "self-hosted" (dsc_*, no user_id: sessions are counted instead).
	Tables string
	// From and To bound the sessions by start time, [From, To). Zero From
	// is the beginning of time, zero To is the end of it.
	From, To time.Time
	// Model keeps the sessions that started on, or had a turn on, this model.
	Model string
	// Agent keeps the sessions of this agent (sessions.agent; null is fred).
	Agent string
	// MinRepeats is the shortest run of identical calls that is a loop
	// (default 3, at least 2).
	MinRepeats int
	// Prices turns tokens into money; nil shows no money at all.
	Prices *Prices

	// StormRetries is the api_retry events that make a session a retry
	// storm (default 5).
	StormRetries int
	// StruggleTurns is the struggling fast-model turns that flag a session
	// as stuck (default 3); StruggleToolCalls the tool calls that make a
	// turn a struggle even when it ended normally (default 8).
	StruggleTurns     int
	StruggleToolCalls int
	// FastModels names the fast models. Empty: a model is fast when its name
	// contains one of DefaultFastWords.
	FastModels []string

	// countTurns reads the model table's percentiles from the turns even
	// where turn_hours could answer (for the test that compares the two).
	countTurns bool
	// noFold skips the fold before the report (for the tests: the turns
	// not folded are counted by the report).
	noFold bool
}

// DefaultFastWords mark a model name as a fast (cheap, weaker) model when
// Options.FastModels is empty: the live hints' words (package rules).
var DefaultFastWords = rules.FastWords

// Table sets as Options.Tables spells them.
const (
	TablesCentral    = "central"
	TablesSelfHosted = "self-hosted"
)

// ErrBadOptions is wrapped by every error about Options.
var ErrBadOptions = fmt.Errorf("insights: bad options")

// set validates o and fills in the defaults.
func (o *Options) normalise() (schema.Set, error) {
	var set schema.Set
	switch o.Tables {
	case TablesCentral, "":
		set, o.Tables = schema.CentralSet, TablesCentral
	case TablesSelfHosted, "selfhosted":
		set, o.Tables = schema.SelfHostedSet, TablesSelfHosted
	default:
		return 0, fmt.Errorf("%w: tables %q: want central or self-hosted", ErrBadOptions, o.Tables)
	}
	if o.MinRepeats == 0 {
		o.MinRepeats = rules.MinRepeats
	}
	if o.MinRepeats < 2 || o.MinRepeats > 1000 {
		return 0, fmt.Errorf("%w: min-repeats %d: want 2 to 1000", ErrBadOptions, o.MinRepeats)
	}
	// The defaults are the live hints' (package rules): a loop or a stuck
	// session means the same in the report and in the agent.
	if o.StormRetries == 0 {
		o.StormRetries = rules.StormRetries
	}
	if o.StruggleTurns == 0 {
		o.StruggleTurns = rules.StruggleTurns
	}
	if o.StruggleToolCalls == 0 {
		o.StruggleToolCalls = rules.StruggleToolCalls
	}
	if o.StormRetries < 1 || o.StruggleTurns < 1 || o.StruggleToolCalls < 1 {
		return 0, fmt.Errorf("%w: thresholds must be positive", ErrBadOptions)
	}
	if o.From.IsZero() {
		o.From = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.To.IsZero() {
		o.To = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	o.From, o.To = o.From.UTC().Truncate(time.Millisecond), o.To.UTC().Truncate(time.Millisecond)
	if !o.From.Before(o.To) {
		return 0, fmt.Errorf("%w: window from %s to %s is empty: from must be before to", ErrBadOptions,
			o.From.Format(schema.TimeLayout), o.To.Format(schema.TimeLayout))
	}
	// Names are inlined into SQL only after this check: the model pattern
	// has no quote, space or semicolon.
	for _, m := range append([]string{o.Model}, o.FastModels...) {
		if m != "" && !schema.PatModel().Match(m) {
			return 0, fmt.Errorf("%w: model %q: want %s", ErrBadOptions, m, schema.PatModel().Doc())
		}
	}
	if o.Agent != "" && !contains(schema.SessionFields().Agent.Enum(), o.Agent) {
		return 0, fmt.Errorf("%w: agent %q: want one of %s", ErrBadOptions, o.Agent, strings.Join(schema.SessionFields().Agent.Enum(), ", "))
	}
	return set, nil
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
