package telemetry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"
)

// state is where a session is in its life. Each move is one
// compare-and-swap, so End, Close and TurnOff may race and each still does
// its part once; the one move out of recording closes stop.
//
//	off        --Start-->    recording  run starts (a route that is off stays off: nothing runs)
//	recording  --End-->      ended      the session's end is queued; recording goes on
//	recording, ended
//	           --Close-->    closing    run delivers what is queued (or spools it), returns
//	           --TurnOff-->  turnedOff  run drops what is queued, returns
//	turnedOff  --Close-->    off        Close waits (bounded) for run to leave its sink
type state int32

const (
	stateOff state = iota // records nothing; Close has nothing left to do
	stateRecording
	stateEnded
	stateClosing
	stateTurnedOff
)

// lifecycle holds a session's state; every record reads it.
type lifecycle struct{ v atomic.Int32 }

func (l *lifecycle) get() state               { return state(l.v.Load()) }
func (l *lifecycle) move(from, to state) bool { return l.v.CompareAndSwap(int32(from), int32(to)) }

// leave moves a recording session to closing or turned off, and reports
// whether this call did: the caller then closes stop.
func (l *lifecycle) leave(to state) bool {
	return l.move(stateRecording, to) || l.move(stateEnded, to)
}

// recording reports whether records are queued.
func (s *Session) recording() bool {
	st := s.state.get()
	return st == stateRecording || st == stateEnded
}

// discarding reports whether run must drop what is queued: the session was
// turned off (and maybe closed since).
func (s *Session) discarding() bool {
	st := s.state.get()
	return st == stateTurnedOff || st == stateOff
}

// scope is work that another goroutine can cancel.
type scope struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newScope(parent context.Context) (s scope) {
	s.ctx, s.cancel = context.WithCancel(parent)
	return s
}

// waitDone waits for run to return, at most until the time given and no
// longer than ctx lasts, and reports whether it did. It is every wait of
// Close and TurnOff: none depends on a sink honouring cancellation.
func (s *Session) waitDone(ctx context.Context, until time.Time) bool {
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-s.done:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// writeTimeout bounds one write of a batch while the session runs.
const writeTimeout = 10 * time.Second

// flow is what run keeps between its steps; only run's goroutine uses it.
type flow struct {
	*Session
	// Where records go (password masked), and the self-hosted database: as
	// run started, whatever /telemetry off does to the session's route.
	target, dbURL string
	local         LocalSink // the self-hosted sink, once open
	pending       *buffer   // the batch being written, kept across failures
	retryAt       time.Time // no write before: backoff, or the server's Retry-After
	backoff       time.Duration
	stopped       bool // the sink said: nothing more this session
	backlog       bool // the central sink may hold earlier sessions' batches
}

// run is the session's one background goroutine: it opens the self-hosted
// sink, then writes batches by size or age, retrying failed ones with
// backoff while the queue's byte bound allows. On the central route it also
// delivers the spool of earlier sessions: from the start, a few batches at
// a time between the session's own, and at Close with what the budget has
// left once the session's own records are delivered, so that a run of short
// sessions (fred -p, scripts, CI) empties the spool too. Close and
// /telemetry off stop it, and wait for it within their budget (waitDone).
func (s *Session) run(r Route) {
	defer close(s.done)
	defer s.recoverPanic()
	defer s.work.cancel()
	f := &flow{Session: s, target: r.APIURL, dbURL: r.dbURL, backoff: time.Second, backlog: s.kind == Central}
	// The user's database is opened (and its tables created) as soon as
	// the session starts, while the agent works, not at the first flush.
	if s.kind == SelfHosted {
		f.target = r.MaskedURL
		f.open(s.sends.ctx)
	}
	// kick asks for the next backlog step without waiting for a tick: the
	// first at once, so that even a session of a few milliseconds starts on
	// the spool.
	kick := make(chan struct{}, 1)
	if f.backlog {
		kick <- struct{}{}
	}
	tick := time.NewTicker(s.opts.FlushInterval)
	defer tick.Stop()
	for {
		kicked := false
		select {
		case <-s.stop:
		case <-tick.C:
		case <-s.q.wake:
		case <-kick:
			kicked = true
		}
		select {
		case <-s.stop: // it comes first when several are ready
			f.final()
			return
		default:
		}
		if time.Now().Before(f.retryAt) {
			continue
		}
		// A backlog step does not flush the session's own records: they go
		// by size or age as always, or at Close, in one batch.
		if (kicked || f.flush(s.sends.ctx)) && f.backlogStep() {
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	}
}

// open opens the self-hosted sink unless it is open, and reports whether
// the route's sink is ready.
func (f *flow) open(ctx context.Context) bool {
	if f.kind == Central || f.local != nil {
		return true
	}
	l, err := f.opts.SelfHosted(ctx, f.dbURL)
	if err != nil {
		f.fail("cannot open the self-hosted database "+f.target, err)
		return false
	}
	f.local = l
	return true
}

// flush writes what is queued until the queue is empty (it reports true),
// a write fails, or the session stops sending.
func (f *flow) flush(ctx context.Context) bool {
	if !f.open(ctx) {
		return false
	}
	for {
		if f.pending == nil {
			f.pending = f.q.take()
		}
		if f.pending == nil {
			return true
		}
		if f.discarding() || f.stopped {
			return false
		}
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		err := f.write(wctx, f.pending)
		cancel()
		switch se := asSendError(err); {
		case err == nil:
			f.stats.written.Add(int64(f.pending.n))
			f.backoff = time.Second
		case se.Drop:
			// Never deliverable (the server refused its content): drop it
			// and go on with the next.
			f.stats.failures.Add(1)
			f.stats.dropped.Add(int64(f.pending.n))
			f.warn(fmt.Sprintf("a batch was refused by %s and dropped: %v", f.target, se.Err))
		default:
			f.fail("cannot write telemetry to "+f.target, err)
			return false
		}
		f.q.release(f.pending)
		f.pending = nil
	}
}

func (f *flow) write(ctx context.Context, b *buffer) error {
	if f.kind == Central {
		return f.opts.Central.Send(ctx, &b.remote)
	}
	return f.local.Write(ctx, &b.local)
}

// backlogStep delivers a few batches of earlier sessions, and reports
// whether more are left.
func (f *flow) backlogStep() bool {
	if !f.backlog || f.stopped {
		return false
	}
	ctx, cancel := context.WithTimeout(f.backlogSteps.ctx, writeTimeout)
	done, err := f.opts.Central.SendBacklog(ctx)
	cancel()
	if err != nil && (f.backlogSteps.ctx.Err() == nil || asSendError(err).Stop) {
		f.fail("cannot deliver earlier sessions' telemetry to "+f.target, err)
	}
	f.backlog = !done // done: until the next session
	return err == nil && !done
}

func (f *flow) fail(what string, err error) {
	f.stats.failures.Add(1)
	se := asSendError(err)
	if se.Stop {
		f.stopped = true
		f.warn(fmt.Sprintf("%s: %v (nothing more is sent this session; what is queued is kept for the next one)", what, se.Err))
		return
	}
	f.warn(fmt.Sprintf("%s: %v (records are kept in memory, up to %d bytes, and retried)", what, err, f.opts.QueueBytes))
	// Exponential backoff with full jitter, and never sooner than the
	// server asked.
	wait := time.Duration(rand.Int64N(int64(f.backoff) + 1))
	f.retryAt = time.Now().Add(max(wait, se.RetryAfter))
	f.backoff = min(2*f.backoff, 30*time.Second)
}

// final is the end of run, once Close or /telemetry off has closed stop.
func (f *flow) final() {
	defer f.closeSinks()
	if f.discarding() {
		// /telemetry off: drop, do not send.
		if f.pending != nil {
			f.stats.dropped.Add(int64(f.pending.n))
			f.q.release(f.pending)
		}
		f.stats.dropped.Add(int64(f.q.drain()))
		return
	}
	// The final flush runs until flushBy (two thirds of the budget on the
	// central route, leaving the rest for the spool; all of it when
	// self-hosted).
	ctx := f.work.ctx
	delivered := false
	if time.Now().Before(f.flushBy) { // else straight to the spool
		fctx, cancel := context.WithDeadline(ctx, f.flushBy)
		delivered = f.flush(fctx)
		cancel()
	}
	// What is left goes to the spool when the sink keeps one, else it is
	// counted as dropped. Writing the spool is local and quick: it has
	// until spoolBy whatever happens to ctx (a caller's ctx cancelled early
	// must not cost the records their spool).
	sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), f.spoolBy)
	defer cancel()
	if f.pending == nil {
		f.pending = f.q.take()
	}
	for ; f.pending != nil; f.pending = f.q.take() {
		delivered = false
		f.spoolOrDrop(sctx, f.pending)
		f.q.release(f.pending)
	}
	// The session's own records are delivered: what the budget has left
	// goes to the spool of earlier sessions. A step cut short puts its
	// batch back in the spool (and if the batch arrived anyway, the
	// server's idempotence on record ids keeps one row per record).
	if delivered && f.backlog && !f.stopped {
		bctx, cancel := context.WithDeadline(ctx, f.backlogBy)
		defer cancel()
		for bctx.Err() == nil {
			if done, err := f.opts.Central.SendBacklog(bctx); done || err != nil {
				break
			}
		}
	}
}

// spoolOrDrop hands an undelivered buffer to the central sink's spool.
func (f *flow) spoolOrDrop(ctx context.Context, b *buffer) {
	if f.kind == Central && ctx.Err() == nil {
		if err := f.opts.Central.Spool(ctx, &b.remote); err == nil {
			f.stats.spooled.Add(int64(b.n))
			return
		}
	}
	f.stats.dropped.Add(int64(b.n))
}

func (f *flow) closeSinks() {
	if f.local != nil {
		f.local.Close()
	}
	if f.kind == Central {
		f.opts.Central.Close(f.work.ctx)
	}
}

// Close ends the session and gives the final write at most the close budget
// (Options.CloseBudget, default 100 ms), or ctx's deadline if sooner; then it
// returns, whatever the sink is doing: every wait in it is bounded by the
// budget, even when a sink ignores cancellation. On the central route, two
// thirds of the budget go to the final send, the rest to spooling what was
// not delivered; when everything was, to the spool of earlier sessions.
// Calling it again does nothing.
func (s *Session) Close(ctx context.Context) {
	defer s.recoverPanic()
	s.End()
	budget := s.opts.CloseBudget
	if s.kind == SelfHosted {
		budget = s.opts.SelfHostedCloseBudget
	}
	start := time.Now()
	deadline := start.Add(budget)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if s.state.move(stateTurnedOff, stateOff) {
		// /telemetry off stopped run, which may still be leaving a sink.
		s.waitDone(ctx, deadline)
		return
	}
	if !s.state.leave(stateClosing) {
		return // off, or closed already
	}
	// Two thirds for the final send on the central route: a send slow to
	// notice its deadline on a loaded machine still leaves the spool its
	// time. The backlog is cut short early enough to put its batch back in
	// the spool and write the audit log within the budget. Spooling stops
	// a grace before the end, the time a goroutine told to stop needs to
	// notice it, so that what runs after it (a spool file being written,
	// the audit log) can finish.
	s.flushBy = deadline
	if by := start.Add(budget * 2 / 3); s.kind == Central && by.Before(deadline) {
		s.flushBy = by
	}
	s.backlogBy = deadline.Add(-budget / 5)
	s.spoolBy = deadline.Add(-min(budget/10, 10*time.Millisecond))
	defer time.AfterFunc(time.Until(s.flushBy), s.sends.cancel).Stop()
	// A backlog step in flight gets the first quarter of the budget to
	// finish (against a healthy server it does, and is not sent twice);
	// then the session's own records have the floor.
	defer time.AfterFunc(budget/4, s.backlogSteps.cancel).Stop()
	close(s.stop)
	if !s.waitDone(ctx, s.spoolBy) {
		// Out of time: cancel the write in flight and give run the rest of
		// the budget to notice (and to finish writing the spool); the CLI
		// exits either way.
		s.work.cancel()
		s.waitDone(context.Background(), deadline)
	}
}

// Wait blocks until the session's background goroutine has returned, or
// ctx is done (its error then). Close is bounded by its budget and may
// return while a write it cancelled is still winding down (a spool file
// being finished, on a loaded machine): an embedder that must know the
// session has let go of its files (a test removing the config folder, a
// command deleting it) waits here after Close. A session that never
// recorded has nothing to wait for.
func (s *Session) Wait(ctx context.Context) error {
	if !s.running {
		return nil
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TurnOff is /telemetry off: it persists "off", stops this session's flow at
// once (queued, unsent records are dropped, not sent) and deletes the spool
// of the central sender. Records after it are ignored.
func (s *Session) TurnOff() error {
	err := SetTelemetry(s.dir, false)
	s.mu.Lock()
	s.route = Route{Kind: Off, Rule: RuleTurnedOff}
	s.mu.Unlock()
	if s.state.leave(stateTurnedOff) {
		close(s.stop)
		s.work.cancel() // abandon a write in flight
		// A sink that ignores cancellation is left behind after the
		// budget: the REPL answers at once, and the flow has stopped
		// (nothing more is queued, nothing queued is sent).
		s.waitDone(context.Background(), time.Now().Add(s.opts.CloseBudget))
	}
	if s.opts.Central != nil {
		if perr := s.opts.Central.Purge(); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

// HandleSlash is the REPL's /telemetry command: arg is what followed it
// ("", "status", "on" or "off"). It returns the text to show. It does not
// record the command: the REPL records every slash command it gets with
// SlashCommand, /telemetry like any other (before this call, so that
// /telemetry off drops its own record with the rest).
func (s *Session) HandleSlash(arg string) string {
	defer s.recoverPanic()
	switch strings.ToLower(strings.TrimSpace(arg)) {
	case "", "status":
		return "telemetry: " + s.Status()
	case "off":
		if err := s.TurnOff(); err != nil {
			return "telemetry: off for this session, but the preference could not be saved: " + err.Error()
		}
		return "telemetry: off (saved). Queued records were dropped; nothing more is sent."
	case "on":
		if err := SetTelemetry(s.dir, true); err != nil {
			return "telemetry: could not save the preference: " + err.Error()
		}
		return "telemetry: on (saved); it applies from the next session. " + onHint(s.opts.Getenv, s.dir)
	}
	return "usage: /telemetry [on|off|status]"
}

// onHint says what still keeps telemetry off after "on", if anything.
func onHint(getenv func(string) string, dir string) string {
	switch {
	case getenv("DSC_TELEMETRY_DB_URL") != "":
		return "DSC_TELEMETRY_DB_URL is set, so records go to your own database only."
	case envFlag(getenv("DO_NOT_TRACK")):
		return "DO_NOT_TRACK is set, which keeps it off."
	}
	if c, err := LoadCredentials(dir); err != nil || c.APIKey == "" {
		return "You are not logged in (fred login), so nothing is sent."
	}
	return ""
}
