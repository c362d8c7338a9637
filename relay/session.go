package relay

import (
	"context"
	"encoding/json"
	"sort"
	"sync/atomic"
	"time"

	"github.com/fredcode/fredtel/telemetry"
)

// held is a fact waiting for the CLI's other exports to arrive.
type held struct {
	fact
	recv time.Time
}

// cliSession is one CLI session: the facts it sent that wait to be
// settled, and the state that turns settled facts into the telemetry
// library's calls. The buffer (and version) are guarded by Relay.mu, the
// rest by Relay.proc: only the worker, Flush and Close record.
type cliSession struct {
	key     string
	agent   *agent
	version string

	// Buffer (guarded by Relay.mu).
	pending  []held
	bytes    int
	lastRecv time.Time
	ended    bool

	// Assembly (only the relay's worker touches these).
	sess      *telemetry.Session
	clk       clock
	offset    time.Duration
	offsetSet bool
	last      time.Time // the latest time recorded
	mode      string
	model     string
	turn      *telemetry.Turn
	res       telemetry.TurnResult
	turnEnd   time.Time
	turnCalls int
	prompt    *fact
	callStart *fact
	fail      *fact           // the last failed call, until it is known retried or not
	decisions map[string]fact // tool call id → its decision, until the call comes
	seenCalls map[string]bool // tool call ids recorded from logs
	seq       int
}

func newCLISession(key string, a *agent, version string) *cliSession {
	return &cliSession{key: key, agent: a, version: version, mode: "act", decisions: map[string]fact{}, seenCalls: map[string]bool{}}
}

// clock is a session's Options.Now: the time of the fact being recorded.
type clock struct{ ns atomic.Int64 }

func (c *clock) set(t time.Time) { c.ns.Store(t.UnixNano()) }
func (c *clock) now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }

// Bounds of the per-session maps.
const (
	maxDecisions = 1024
	maxSeenCalls = 4096
)

// maxSkew: a CLI whose clock is further than this from the relay's (or a
// replay of old exports) has its session moved to the relay's clock, its
// events keeping their spacing; the ingest API refuses times far from now.
const maxSkew = time.Hour

// at is when a fact's time is recorded: shifted as the session's first
// fact was, and never in the future.
func (s *cliSession) at(t, now time.Time) time.Time {
	if !s.offsetSet {
		s.offsetSet = true
		if d := now.Sub(t); d > maxSkew || d < -maxSkew {
			s.offset = d
		}
	}
	t = t.Add(s.offset)
	if t.After(now) {
		t = now
	}
	if t.Before(s.last) {
		t = s.last // the library's records keep their order
	}
	s.last = t
	return t
}

// settle merges what one CLI reports twice (Claude Code's logs and
// traces) and orders the facts by when they happened.
func (s *cliSession) settle(fs []fact) []fact {
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].at.Before(fs[j].at) })
	logged := map[string]bool{}
	for i := range fs {
		if fs[i].src == srcLog && (fs[i].kind == kTool || fs[i].kind == kDecision) && fs[i].callID != "" {
			logged[fs[i].callID] = true
		}
	}
	out := fs[:0]
	for i := range fs {
		f := fs[i]
		switch {
		case f.kind == kFinish:
			// The stop reason of the call that ended then (Claude's
			// llm_request span and api_request log end together).
			best := -1
			for j := range fs {
				if fs[j].kind == kCall && fs[j].finish == "" && absDur(fs[j].end.Sub(f.at)) <= 50*time.Millisecond &&
					(best < 0 || absDur(fs[j].end.Sub(f.at)) < absDur(fs[best].end.Sub(f.at))) {
					best = j
				}
			}
			if best >= 0 {
				fs[best].finish = f.finish
				// Already copied to out when it came first: fix it there.
				for k := range out {
					if out[k].kind == kCall && out[k].end.Equal(fs[best].end) && out[k].at.Equal(fs[best].at) {
						out[k].finish = f.finish
					}
				}
			}
			continue
		case f.src == srcSpan && f.kind == kTool && (logged[f.callID] || s.seenCalls[f.callID]):
			continue // the logs have it
		case f.src == srcSpan && f.kind == kRetry && s.loggedRetry(fs, f):
			continue
		}
		out = append(out, f)
	}
	for id := range logged {
		if len(s.seenCalls) < maxSeenCalls {
			s.seenCalls[id] = true
		}
	}
	return out
}

func (s *cliSession) loggedRetry(fs []fact, r fact) bool {
	for _, l := range fs {
		if l.kind == kFail && l.src == srcLog && l.attempt == r.attempt && !l.at.Before(r.at) && !l.at.After(r.end) {
			return true
		}
	}
	return false
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// start begins the telemetry session at the first settled fact.
func (s *cliSession) start(opts telemetry.Options, fs []fact, version string, now time.Time) {
	model := ""
	for _, f := range fs {
		if (f.kind == kCall && !f.aux) || f.kind == kCallStart {
			model = f.model
			break
		}
	}
	s.clk.set(s.at(fs[0].at, now))
	opts.Now = s.clk.now
	s.sess = telemetry.Start(opts, telemetry.SessionInfo{
		Model: model, Tools: s.agent.tools, Commands: s.agent.commands, Models: s.agent.models,
		Agent: s.agent.name, AgentVersion: version,
		Shell: "other", // the CLI's shell is not known; the relay's is not it
	})
}

// record hands settled facts to the telemetry library, in order.
func (s *cliSession) record(opts telemetry.Options, fs []fact, version string, now time.Time, st *counters) {
	if len(fs) == 0 {
		return
	}
	fs = s.settle(fs)
	if len(fs) == 0 {
		return
	}
	if s.sess == nil {
		s.start(opts, fs, version, now)
		st.sessions.Add(1)
	}
	for i := range fs {
		f := &fs[i]
		t := s.at(f.at, now)
		s.clk.set(t)
		switch f.kind {
		case kPrompt:
			s.endTurn(now)
			s.failed(now, false)
			p := *f
			s.prompt = &p
		case kSlash:
			s.endTurn(now)
			s.failed(now, false)
			s.clk.set(t)
			s.sess.SlashCommand("/" + f.command)
		case kMode:
			if f.to != s.mode {
				s.endTurn(now)
				s.clk.set(t)
				s.sess.ModeChange(s.mode, f.to)
				s.mode = f.to
			}
		case kCallStart:
			s.failed(now, true)
			c := *f
			s.callStart = &c
		case kCallEnd:
			if s.callStart == nil {
				st.incomplete.Add(1)
				continue
			}
			c := *s.callStart
			s.callStart = nil
			c.kind, c.end, c.in, c.out, c.cached = kCall, f.at, f.in, f.out, f.cached
			if c.model == "" {
				c.model = f.model
			}
			s.call(&c, now)
		case kCall:
			if f.aux {
				st.aux.Add(1)
				continue
			}
			s.failed(now, true)
			s.call(f, now)
		case kText:
			if f.aux {
				continue
			}
			if s.turn != nil {
				s.res.AssistantText, s.res.ResponseChars = f.text, f.chars
			}
		case kDecision:
			if f.perm == "denied" {
				// Refused: the call never runs, so no result will come.
				d := *f
				d.kind, d.end, d.failed = kTool, f.at, true
				s.tool(&d, now, st)
				continue
			}
			if len(s.decisions) < maxDecisions {
				s.decisions[f.callID] = *f
			}
		case kTool:
			s.tool(f, now, st)
		case kFail:
			s.failed(now, true) // the one before was retried: this is its next attempt
			e := *f
			s.fail = &e
		case kRetry:
			r := telemetry.Retry{Attempt: int(f.attempt), Delay: f.delay, Latency: f.latency, ErrorType: f.errType, Status: int(f.status)}
			if e := s.fail; e != nil {
				if r.Status == 0 {
					r.Status = int(e.status)
				}
				if r.Latency == 0 {
					r.Latency = e.latency
				}
				if r.ErrorType == "other" {
					r.ErrorType = e.errType
				}
				s.fail = nil
			}
			s.sess.APIRetry(r)
		case kEnd:
			s.ended = true
		}
	}
}

// failed settles the last failed call: retried when another attempt came
// (an api_retry event), else, when the prompt ended without one, the error
// that ended its turn (a turn with finish_reason error). A CLI that
// reports its retries itself (waits) is not second-guessed: its failure
// is retried only when it says so.
func (s *cliSession) failed(now time.Time, retried bool) {
	e := s.fail
	if e == nil {
		return
	}
	s.fail = nil
	switch {
	case retried && !e.waits:
		s.clk.set(s.at(e.at, now))
		s.sess.APIRetry(telemetry.Retry{Attempt: int(max(e.attempt, 1)), Latency: e.latency, ErrorType: e.errType, Status: int(e.status)})
	case !retried && !e.aux:
		s.endTurn(now)
		c := fact{kind: kCall, at: e.at.Add(-e.latency), end: e.at, model: e.model, finish: "error"}
		s.call(&c, now)
		s.res.APIErrorType = e.errType
		s.endTurn(now)
	}
}

// call begins the turn of a model call of the agent loop.
func (s *cliSession) call(f *fact, now time.Time) {
	s.endTurn(now)
	if s.model != "" && f.model != "" && f.model != s.model {
		s.clk.set(s.at(f.at, now))
		s.sess.ModelSwap(s.model, f.model)
	}
	if f.model != "" {
		s.model = f.model
	}
	s.clk.set(s.at(f.at, now))
	s.turn = s.sess.BeginTurn(s.mode, s.model)
	s.res = telemetry.TurnResult{PromptTokens: int(f.in), CompletionTokens: int(f.out), CachedTokens: int(f.cached),
		FinishReason: f.finish, Model: s.model}
	if p := s.prompt; p != nil {
		s.res.UserInput, s.res.PromptChars = p.text, p.chars
		s.prompt = nil
	}
	s.turnEnd = f.end
	s.turnCalls = 0
}

// tool records a tool call on the open turn (a turn of its own when the
// CLI reported no model call before it).
func (s *cliSession) tool(f *fact, now time.Time, st *counters) {
	d, hasDecision := s.decisions[f.callID]
	if hasDecision {
		delete(s.decisions, f.callID)
	}
	perm := f.perm
	if perm == "" && hasDecision {
		perm = d.perm
	}
	if perm == "" {
		perm = "auto_allowed"
	}
	args := f.args
	if args == "" && hasDecision {
		args = d.args
	}
	if args == "" {
		// Arguments not sent: a value of this call alone, so that calls
		// whose arguments are unknown never look like a loop.
		s.seq++
		b, _ := json.Marshal(map[string]any{"relay_call": f.callID, "n": s.seq})
		args = string(b)
	}
	if s.turn == nil {
		st.orphans.Add(1)
		s.clk.set(s.at(f.at, now))
		s.turn = s.sess.BeginTurn(s.mode, s.model)
		s.res = telemetry.TurnResult{Model: s.model}
		s.turnEnd = f.at
		s.turnCalls = 0
	}
	start := s.at(f.at, now)
	end := f.end
	if end.Before(f.at) {
		end = f.at
	}
	s.clk.set(start.Add(end.Sub(f.at)))
	s.turn.ToolCall(telemetry.ToolCall{Name: f.tool, Args: []byte(args), Result: f.result, ResultBytes: f.resultBytes,
		Permission: perm, Failed: f.failed, StartedAt: start, Duration: end.Sub(f.at)})
	s.turnCalls++
	if end.After(s.turnEnd) {
		s.turnEnd = end
	}
}

// endTurn records the open turn, ending when its last tool call did.
func (s *cliSession) endTurn(now time.Time) {
	if s.turn == nil {
		return
	}
	if s.turnCalls > 0 && (s.res.FinishReason == "" || s.res.FinishReason == "stop") {
		s.res.FinishReason = "tool_calls" // the model asked for tools (Gemini says STOP then)
	}
	if s.res.FinishReason == "" {
		s.res.FinishReason = "stop"
	}
	s.clk.set(s.at(s.turnEnd, now))
	s.turn.End(s.res)
	s.turn = nil
	s.turnCalls = 0
}

// close ends the session's records and closes it (within its budget).
func (s *cliSession) close(ctx context.Context, now time.Time) {
	if s.sess == nil {
		return
	}
	s.endTurn(now)
	s.failed(now, false)
	s.clk.set(s.at(s.last, now))
	s.sess.Close(ctx)
}
