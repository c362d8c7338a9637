package telemetry

import (
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"

	"github.com/fredcode/fredtel/rules"
)

// HintKind says what a Hint is about.
type HintKind int

const (
	// HintLoop: the agent called one tool with the same arguments and got
	// the same result rules.MinRepeats times in a row. It is stuck, not
	// waiting: a call whose result changes each time (polling a build) is
	// not a loop here, as in the insights.
	HintLoop HintKind = iota + 1
	// HintStuck: a fast model struggled rules.StruggleTurns turns (ended in
	// length or error, or asked for rules.StruggleToolCalls tool calls or
	// more) before any swap to a stronger model: time to offer that one.
	HintStuck
)

// Hint is what the live rules found in the session as it happens: the same
// rules, with the same definitions, as `fredtel insights` runs over the
// fleet (package rules). Hints are computed inside the process on every
// route, off included, and never sent anywhere.
type Hint struct {
	Kind HintKind
	// Tool and Repeats (HintLoop): the tool as the agent named it, and
	// the calls in the run so far.
	Tool    string
	Repeats int
	// Model, Suggest and Turns (HintStuck): the fast model, the stronger
	// model the build offers ("" when SessionInfo.Models has none), and the
	// struggling turns.
	Model   string
	Suggest string
	Turns   int
}

// String is the hint as one line for a terminal.
func (h Hint) String() string {
	switch h.Kind {
	case HintLoop:
		return fmt.Sprintf("%s ran %d times in a row with the same arguments and the same result: the agent is looping; interrupt it or change the approach", h.Tool, h.Repeats)
	case HintStuck:
		if h.Suggest == "" {
			return fmt.Sprintf("%s struggled %d turns (cut short, failing or tool-heavy): a stronger model may do better", h.Model, h.Turns)
		}
		return fmt.Sprintf("%s struggled %d turns (cut short, failing or tool-heavy): try /model %s", h.Model, h.Turns, h.Suggest)
	}
	return "hint"
}

// hints runs the loop and stuck rules over one session. Each rule tells
// once per occurrence: a loop once when its run reaches the threshold (and
// again only after the run breaks and a new one forms), the stuck rule
// once per session.
type hints struct {
	on      func(Hint)
	fast    []string
	suggest string

	mu   sync.Mutex
	seed maphash.Seed
	// The current run of identical calls (the insights' rule), whether
	// its results repeated too, and whether it was told.
	run        rules.Run[hintKey, struct{}]
	result     uint64
	same, told bool
	// Struggling fast-model turns, until a swap to a stronger model.
	struggles int
	swapped   bool
	toldStuck bool
}

func newHints(on func(Hint), fast, models []string) *hints {
	h := &hints{on: on, fast: fast, seed: maphash.MakeSeed()}
	for _, m := range models {
		if !rules.IsFast(m, fast) {
			h.suggest = m
			break
		}
	}
	return h
}

// toolCall follows a call. The hashes are local (maphash, never sent):
// the hints work on the off route too, where no fingerprint key exists.
func (h *hints) toolCall(name string, args []byte, result string) {
	k, r := hintKey{name, maphash.Bytes(h.seed, args)}, h.resultKey(result)
	h.mu.Lock()
	_, n := h.run.Next(k, struct{}{})
	if n == 1 {
		h.result, h.same, h.told = r, true, false
	}
	h.same = h.same && r == h.result
	tell := n >= rules.MinRepeats && h.same && !h.told
	if tell {
		h.told = true
	}
	hint := Hint{Kind: HintLoop, Tool: name, Repeats: int(n)}
	h.mu.Unlock()
	if tell {
		h.on(hint)
	}
}

type hintKey struct {
	tool string
	args uint64
}

// resultKey reads a result as its fingerprint does (resultEdge): a big
// one by its length, head and tail, so the cost does not grow with it.
func (h *hints) resultKey(s string) uint64 {
	if len(s) <= 2*resultEdge {
		return maphash.String(h.seed, s)
	}
	var m maphash.Hash
	m.SetSeed(h.seed)
	var n [20]byte
	m.Write(strconv.AppendInt(n[:0], int64(len(s)), 10))
	m.WriteString(s[:resultEdge])
	m.WriteString(s[len(s)-resultEdge:])
	return m.Sum64()
}

// turn follows a turn's end.
func (h *hints) turn(model, finish string, calls int64) {
	if !rules.IsFast(model, h.fast) || !rules.Struggles(finish, calls, rules.StruggleToolCalls) {
		return
	}
	h.mu.Lock()
	if h.swapped || h.toldStuck {
		h.mu.Unlock()
		return
	}
	h.struggles++
	tell := h.struggles >= rules.StruggleTurns
	h.toldStuck = tell
	hint := Hint{Kind: HintStuck, Model: model, Suggest: h.suggest, Turns: h.struggles}
	h.mu.Unlock()
	if tell {
		h.on(hint)
	}
}

// swap follows a model swap: to a stronger model, the user took the hint
// (or needed none); the stuck rule counts only the turns before it.
func (h *hints) swap(to string) {
	if rules.IsFast(to, h.fast) {
		return
	}
	h.mu.Lock()
	h.swapped = true
	h.mu.Unlock()
}
