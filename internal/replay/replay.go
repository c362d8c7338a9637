package replay

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fredcode/fredtel/telemetry"
)

// Example is a complete transcript: every line type, every event kind, two
// turns and tool calls whose arguments repeat (so do their fingerprints).
// It replays cleanly; docs/transcript.md shows it.
//
//go:embed example.jsonl
var Example string

// Close budgets of a replay. The agent's budgets (100 ms central, 1 s
// self-hosted) exist so that Fred exits at once; a replay is a batch job
// whose user waits for the result, so its final write may take longer.
// Close returns as soon as the write is done.
// For the same reason it flushes every 250 ms rather than every 2 s: a long
// replay waits for the writer (see pacer).
const (
	centralCloseBudget    = 10 * time.Second
	selfHostedCloseBudget = 30 * time.Second
	flushInterval         = 250 * time.Millisecond
)

// The ingest API refuses record times outside [sent_at − 30 days, sent_at +
// 1 hour]; --keep-times checks against a slightly narrower window.
const (
	pastWindow   = 30*24*time.Hour - time.Hour
	futureWindow = time.Hour - time.Minute
)

// Options configure Run.
type Options struct {
	// Telemetry are the options the fred command starts its sessions with
	// (routing, sinks, stderr). Run sets Now (the replay clock),
	// FredVersion (the transcript's, when given) and the close budgets.
	Telemetry telemetry.Options
	// KeepTimes records the transcript's ts; without it the transcript is
	// laid out to end now, keeping its durations.
	KeepTimes bool
	// Now is the wall clock (default time.Now).
	Now func() time.Time
}

// Result is what a replay did.
type Result struct {
	Counts
	// Route is the route of the first session.
	Route telemetry.Route
	// Debug: the route is central under FRED_TELEMETRY_DEBUG (printed, not sent).
	Debug bool
	// Stats are summed over the sessions.
	Stats telemetry.Stats
}

// clock is the sessions' Options.Now: the time of the line being replayed.
type clock struct{ ns atomic.Int64 }

func (c *clock) set(t time.Time) { c.ns.Store(t.UnixNano()) }
func (c *clock) now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }

// tick is the time a line without a duration (session_start, an event)
// takes on the replay clock, so that lines keep their order in time.
const tick = time.Millisecond

// timing is the time of every line of a session on the replay clock.
type timing struct {
	start, end time.Time
	at         []time.Time // per step: turn start, call start, event time
	turnEnd    []time.Time // per step, turns only: start + duration_ms
}

// layout gives every line its time. Lines are placed one after the other:
// a turn at the cursor, its tool calls one after another from its start,
// events at the cursor (then 1 ms later); the cursor passes a turn's end when the next turn,
// a slash command or the session_end comes. With keep, a line's ts moves the cursor to it
// (every session_start needs one); without, ts are ignored and the whole
// transcript is shifted to end at now, so no time lies in the future and
// every duration is the transcript's.
func (t *Transcript) layout(keep bool, now time.Time) ([]timing, error) {
	var errs Errors
	out := make([]timing, len(t.Sessions))
	cur := now
	for i, s := range t.Sessions {
		tm := &out[i]
		if keep {
			if s.TS.IsZero() {
				errs = append(errs, &LineError{File: t.Name, Line: s.Line, Field: "ts", Problem: "missing: --keep-times needs the time every session started"})
				continue
			}
			cur = s.TS
		}
		tm.start = cur
		cur = cur.Add(tick)
		tm.at = make([]time.Time, len(s.Steps))
		tm.turnEnd = make([]time.Time, len(s.Steps))
		open := -1
		closeTurn := func() {
			if open >= 0 && tm.turnEnd[open].After(cur) {
				cur = tm.turnEnd[open]
			}
			open = -1
		}
		for j, st := range s.Steps {
			if st.Turn != nil || st.Event != nil && st.Event.Kind == "slash_command" {
				closeTurn()
			}
			if keep && !st.TS.IsZero() {
				cur = st.TS
			}
			tm.at[j] = cur
			switch {
			case st.Turn != nil:
				tm.turnEnd[j] = cur.Add(st.Turn.Duration)
				open = j
			case st.Call != nil:
				cur = cur.Add(st.Call.Duration)
			default:
				cur = cur.Add(tick)
			}
		}
		closeTurn()
		if keep && !s.EndTS.IsZero() {
			cur = s.EndTS
		}
		tm.end = cur
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if !keep {
		shift := -cur.Sub(now)
		for i := range out {
			tm := &out[i]
			tm.start, tm.end = tm.start.Add(shift), tm.end.Add(shift)
			for j := range tm.at {
				tm.at[j] = tm.at[j].Add(shift)
				if !tm.turnEnd[j].IsZero() {
					tm.turnEnd[j] = tm.turnEnd[j].Add(shift)
				}
			}
		}
	}
	return out, nil
}

// checkWindow refuses, before anything starts, times the ingest API would
// refuse (--keep-times on the central route): one error, at the first such
// line, with the number of lines like it.
func (t *Transcript) checkWindow(plan []timing, now time.Time) error {
	var first *LineError
	n := 0
	outside := func(at time.Time) string {
		switch {
		case at.Before(now.Add(-pastWindow)):
			return "is more than 30 days ago"
		case at.After(now.Add(futureWindow)):
			return "is more than an hour ahead"
		}
		return ""
	}
	check := func(line int, at time.Time) {
		problem := outside(at)
		if problem == "" {
			return
		}
		n++
		if first == nil {
			first = &LineError{File: t.Name, Line: line, Field: "ts", Problem: at.Format(time.RFC3339Nano) + " " + problem}
		}
	}
	for i, s := range t.Sessions {
		tm := plan[i]
		check(s.Line, tm.start)
		for j, st := range s.Steps {
			at := tm.at[j]
			if st.Turn != nil && outside(at) == "" {
				at = tm.turnEnd[j] // a turn has two times: its line counts once
			}
			check(st.Line, at)
		}
		check(s.EndLine, tm.end)
	}
	if first == nil {
		return nil
	}
	first.Problem += fmt.Sprintf(": the ingest API refuses records outside [now - 30 days, now + 1 hour] (%d %s of this transcript are); "+
		"replay without --keep-times, or into your own database with DSC_TELEMETRY_DB_URL", n, plural(n, "line", "lines"))
	return Errors{first}
}

// sendsCentrally reports whether sessions started with opts would send to
// the ingest API (not printed by FRED_TELEMETRY_DEBUG).
func sendsCentrally(opts telemetry.Options) bool {
	if debugOn(opts.Getenv) {
		return false
	}
	probe := opts
	if probe.Central == nil && probe.NewCentral != nil {
		probe.Central = probeSink{} // Resolve only asks whether a sender exists
	}
	r := telemetry.Resolve(probe)
	return r.Kind == telemetry.Central && r.Rule == telemetry.RuleCentral
}

// probeSink stands for the sender NewCentral would make; it is never sent to.
type probeSink struct{ telemetry.NoSpool }

func (probeSink) Send(context.Context, *telemetry.RemoteBatch) error { return nil }
func (probeSink) Close(context.Context) error                        { return nil }

func debugOn(getenv func(string) string) bool {
	if getenv == nil {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(getenv("FRED_TELEMETRY_DEBUG"))) {
	case "", "0", "false", "no", "off":
		return false
	}
	return true
}

// Run replays t, one telemetry session per transcript session, through
// telemetry.Start with o.Telemetry. Times are checked first (Errors, and
// nothing starts); then every session is recorded and closed in turn.
func Run(ctx context.Context, t *Transcript, o Options) (Result, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	res := Result{Counts: t.Counts()}
	now := o.Now()
	plan, err := t.layout(o.KeepTimes, now)
	if err != nil {
		return res, err
	}
	if o.KeepTimes && sendsCentrally(o.Telemetry) {
		if err := t.checkWindow(plan, now); err != nil {
			return res, err
		}
	}
	for i, s := range t.Sessions {
		st := replaySession(ctx, s, plan[i], o, &res, i == 0)
		res.Stats.Recorded += st.Recorded
		res.Stats.Written += st.Written
		res.Stats.Dropped += st.Dropped
		res.Stats.Spooled += st.Spooled
		res.Stats.Replaced += st.Replaced
		res.Stats.Failures += st.Failures
		res.Stats.Panics += st.Panics
	}
	if res.Stats.Panics > 0 {
		return res, fmt.Errorf("%s: the telemetry library recovered from %d panics; what was recorded may be incomplete", t.Name, res.Stats.Panics)
	}
	if res.Stats.Dropped > 0 {
		return res, fmt.Errorf("%s: %d records were dropped, so what was recorded is incomplete (a warning above says why, if the writer failed)", t.Name, res.Stats.Dropped)
	}
	return res, nil
}

func replaySession(ctx context.Context, s *Session, tm timing, o Options, res *Result, first bool) telemetry.Stats {
	clk := &clock{}
	opts := o.Telemetry
	opts.Now = clk.now
	if s.FredVersion != "" {
		opts.FredVersion = s.FredVersion
	}
	opts.CloseBudget = max(opts.CloseBudget, centralCloseBudget)
	opts.SelfHostedCloseBudget = max(opts.SelfHostedCloseBudget, selfHostedCloseBudget)
	if opts.FlushInterval <= 0 || opts.FlushInterval > flushInterval {
		opts.FlushInterval = flushInterval
	}

	clk.set(tm.start)
	sess := telemetry.Start(opts, s.Info)
	if first {
		res.Route = sess.Route()
		res.Debug = res.Route.Kind == telemetry.Central && debugOn(opts.Getenv)
	}
	p := newPacer(sess, opts.QueueBytes)
	p.made(0) // the session's start
	// Only the self-hosted route queues text.
	text := func(r telemetry.TurnResult) int { return 0 }
	if r := sess.Route(); r.Kind == telemetry.SelfHosted && !r.NoText {
		text = func(r telemetry.TurnResult) int { return len(r.UserInput) + len(r.AssistantText) }
	}
	var turn *telemetry.Turn
	var result telemetry.TurnResult
	var turnEnd time.Time
	endTurn := func() {
		if turn != nil {
			clk.set(turnEnd)
			turn.End(result)
			turn = nil
			p.made(text(result))
		}
	}
	for j, st := range s.Steps {
		switch {
		case st.Turn != nil:
			endTurn()
			clk.set(tm.at[j])
			turn, result, turnEnd = sess.BeginTurn(st.Turn.Mode, st.Turn.Model), st.Turn.Result, tm.turnEnd[j]
		case st.Call != nil:
			c := *st.Call
			c.StartedAt = tm.at[j]
			clk.set(c.StartedAt.Add(c.Duration)) // recorded when the call returns
			turn.ToolCall(c)
		case st.Event != nil:
			if st.Event.Kind == "slash_command" {
				endTurn()
			}
			clk.set(tm.at[j])
			switch e := st.Event; e.Kind {
			case "slash_command":
				sess.SlashCommand(e.Line)
			case "api_retry":
				sess.APIRetry(e.Retry)
			case "mode_change":
				sess.ModeChange(e.From, e.To)
			case "model_swap":
				sess.ModelSwap(e.From, e.To)
			}
		}
		if st.Turn == nil {
			p.made(0) // a tool call or an event; a turn counts when it ends
		}
		p.wait(ctx)
	}
	endTurn()
	clk.set(tm.end)
	sess.Close(ctx)
	return sess.Stats()
}

// pacer keeps a long transcript from outrunning the writer: recording never
// blocks and the library's queue (Options.QueueBytes, 8 MiB by default)
// drops what does not fit, so the replay waits while too much is queued. It
// estimates the queue from the records it made, in order (the queue is
// first in, first out) and the session's counters.
type pacer struct {
	sess    *telemetry.Session
	limit   int64   // bytes: half the queue
	cum     []int64 // cum[i]: estimated bytes of the first i records made
	stalled bool    // the writer made no progress for a long while: stop waiting for it
}

const (
	paceAt       = 2000 // records queued (the writer takes batches of 500)
	recordBytes  = 512  // a generous estimate of a record in the queue, text aside
	stallTimeout = 30 * time.Second
)

func newPacer(sess *telemetry.Session, queueBytes int) *pacer {
	if queueBytes <= 0 {
		queueBytes = 8 << 20 // the library's default
	}
	return &pacer{sess: sess, limit: int64(queueBytes) / 2, cum: []int64{0}}
}

// made counts a record handed to the library, with the text it carries.
func (p *pacer) made(text int) {
	p.cum = append(p.cum, p.cum[len(p.cum)-1]+recordBytes+int64(text))
}

// queued is the estimated number and size of records waiting, and the
// number written so far.
func (p *pacer) queued() (n, bytes, written int64) {
	st := p.sess.Stats()
	last := int64(len(p.cum) - 1)
	in := min(st.Recorded, last)
	out := min(st.Written+st.Spooled+st.Dropped, in)
	return in - out, p.cum[in] - p.cum[out], st.Written
}

func (p *pacer) wait(ctx context.Context) {
	n, bytes, written := p.queued()
	if p.stalled || n < paceAt && bytes < p.limit {
		return
	}
	deadline := time.Now().Add(stallTimeout)
	for (n >= paceAt/2 || bytes >= p.limit/2) && ctx.Err() == nil {
		if time.Now().After(deadline) {
			p.stalled = true
			return
		}
		time.Sleep(5 * time.Millisecond)
		var w int64
		if n, bytes, w = p.queued(); w > written {
			written, deadline = w, time.Now().Add(stallTimeout)
		}
	}
}

// Summary is the line `fred telemetry replay` prints: what was replayed,
// where it went and what became of it.
func (r Result) Summary(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "replayed %s: %d %s, %d %s, %d tool %s, %d %s → %s", name,
		r.Sessions, plural(r.Sessions, "session", "sessions"), r.Turns, plural(r.Turns, "turn", "turns"),
		r.ToolCalls, plural(r.ToolCalls, "call", "calls"), r.Events, plural(r.Events, "event", "events"), r.Route.Status())
	st := r.Stats
	switch {
	case r.Route.Kind == telemetry.Off:
		b.WriteString(": nothing recorded")
	case r.Debug:
		fmt.Fprintf(&b, ": %d records printed on stderr, not sent (FRED_TELEMETRY_DEBUG)", st.Written)
	default:
		fmt.Fprintf(&b, ": %d records written", st.Written)
	}
	if st.Spooled > 0 {
		fmt.Fprintf(&b, ", %d spooled (the next session sends them)", st.Spooled)
	}
	if st.Dropped > 0 {
		fmt.Fprintf(&b, ", %d dropped", st.Dropped)
	}
	if st.Replaced > 0 {
		fmt.Fprintf(&b, "; %d %s outside the schema or the session's catalogs recorded as a fixed word (other, custom, mcp)", st.Replaced, plural(int(st.Replaced), "value", "values"))
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
