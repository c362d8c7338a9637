package telemetry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// writeTimeout bounds one write of a batch while the session runs.
const writeTimeout = 10 * time.Second

// run is the session's one background goroutine: it opens the self-hosted
// sink, then writes batches by size or age, retrying failed ones with
// backoff while the queue's byte bound allows. On the central route it also
// delivers the spool of earlier sessions: from the start, a few batches at
// a time between the session's own, and at Close with what the budget has
// left once the session's own records are delivered, so that a run of short
// sessions (fred -p, scripts, CI) empties the spool too. Close and
// /telemetry off stop it; they never wait for it longer than the close
// budget, even when a sink ignores cancellation.
func (s *Session) run() {
	defer s.finish()
	defer s.recoverPanic()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.cancelRun.Store(&cancel)
	// Sends made while the session runs use sendCtx, which Close cancels
	// when the final flush's time is up: a send stuck on an endpoint that
	// never answers then gives way to the spool instead of eating the
	// whole close budget.
	sendCtx, cancelSends := context.WithCancel(ctx)
	defer cancelSends()
	s.cancelSends.Store(&cancelSends)

	var local LocalSink
	var pending *buffer
	var retryAt time.Time
	var stopped bool // the sink said: nothing more this session
	backoff := time.Second
	// backlog: the central sink may hold earlier sessions' batches still to
	// deliver. kick asks the loop for the next step without waiting for a
	// flush tick: the first at once, so that even a session of a few
	// milliseconds starts on the spool.
	bl, backlog := s.opts.Central.(Backlogger)
	backlog = backlog && s.kind == Central
	kick := make(chan struct{}, 1)
	if backlog {
		kick <- struct{}{}
	}
	fail := func(what string, err error) {
		s.stats.failures.Add(1)
		se := asSendError(err)
		if se.Stop {
			stopped = true
			s.warn(fmt.Sprintf("%s: %v (nothing more is sent this session; what is queued is kept for the next one)", what, se.Err))
			return
		}
		s.warn(fmt.Sprintf("%s: %v (records are kept in memory, up to %d bytes, and retried)", what, err, s.opts.QueueBytes))
		// Exponential backoff with full jitter, and never sooner than the
		// server asked.
		wait := time.Duration(rand.Int64N(int64(backoff) + 1))
		retryAt = time.Now().Add(max(wait, se.RetryAfter))
		backoff = min(2*backoff, 30*time.Second)
	}
	write := func(ctx context.Context, b *buffer) error {
		if s.kind == Central {
			return s.opts.Central.Send(ctx, &b.remote)
		}
		return local.Write(ctx, &b.local)
	}
	ready := func(ctx context.Context) bool {
		if s.kind == Central || local != nil {
			return true
		}
		l, err := s.opts.SelfHosted(ctx, s.route.dbURL)
		if err != nil {
			fail("cannot open the self-hosted database "+s.route.MaskedURL, err)
			return false
		}
		local = l
		return true
	}
	flush := func(ctx context.Context) bool {
		if !ready(ctx) {
			return false
		}
		for {
			if pending == nil {
				pending = s.q.take()
			}
			if pending == nil {
				return true
			}
			if s.discard.Load() {
				return false
			}
			if stopped {
				return false
			}
			wctx, wcancel := context.WithTimeout(ctx, writeTimeout)
			err := write(wctx, pending)
			wcancel()
			if err != nil {
				if se := asSendError(err); se.Drop {
					// Never deliverable (the server refused its content):
					// drop it and go on with the next.
					s.stats.failures.Add(1)
					s.stats.dropped.Add(int64(pending.n))
					s.warn(fmt.Sprintf("a batch was refused by %s and dropped: %v", s.target(), se.Err))
					s.q.release(pending)
					pending = nil
					continue
				}
				fail("cannot write telemetry to "+s.target(), err)
				return false
			}
			s.stats.written.Add(int64(pending.n))
			backoff = time.Second
			s.q.release(pending)
			pending = nil
		}
	}

	// The user's database is opened (and its tables created) as soon as
	// the session starts, while the agent works, not at the first flush.
	if s.kind == SelfHosted {
		ready(sendCtx)
	}
	// final is the end of the session, once Close or /telemetry off has
	// signalled stop.
	final := func() {
		defer s.closeSinks(ctx, local)
		if s.discard.Load() {
			// /telemetry off: drop, do not send.
			if pending != nil {
				s.stats.dropped.Add(int64(pending.n))
				s.q.release(pending)
			}
			s.stats.dropped.Add(int64(s.q.drain()))
			return
		}
		// The final flush runs until flushBy (Close sets it: two thirds of
		// the budget on the central route, leaving the rest for the spool;
		// all of it when self-hosted).
		delivered := false
		if time.Now().Before(s.flushBy) { // else straight to the spool
			fctx, fcancel := context.WithDeadline(ctx, s.flushBy)
			delivered = flush(fctx)
			fcancel()
		}
		// What is left goes to the spool when the sink keeps one, else it
		// is counted as dropped. Writing the spool is local and quick: it
		// has until closeBy whatever happens to ctx (a caller's ctx
		// cancelled early must not cost the records their spool).
		sctx, scancel := context.WithDeadline(context.WithoutCancel(ctx), s.closeBy)
		defer scancel()
		if pending == nil {
			pending = s.q.take()
		}
		for pending != nil {
			delivered = false
			s.spoolOrDrop(sctx, pending)
			s.q.release(pending)
			pending = s.q.take()
		}
		// The session's own records are delivered: what the budget has
		// left goes to the spool of earlier sessions. A step cut short puts
		// its batch back in the spool (and if the batch arrived anyway, the
		// server's idempotence on record ids keeps one row per record).
		if delivered && backlog && !stopped {
			bctx, bcancel := context.WithDeadline(ctx, s.backlogBy)
			for bctx.Err() == nil {
				if done, err := bl.SendBacklog(bctx); done || err != nil {
					break
				}
			}
			bcancel()
		}
	}

	// Backlog steps while the session runs use their own context, which
	// Close cancels early: at the end the session's own records go first,
	// and the backlog gets what they leave of the budget.
	backlogCtx, cancelBacklog := context.WithCancel(sendCtx)
	defer cancelBacklog()
	s.cancelBacklog.Store(&cancelBacklog)

	tick := time.NewTicker(s.opts.FlushInterval)
	defer tick.Stop()
	for {
		kicked := false
		select {
		case <-s.stop:
			final()
			return
		case <-tick.C:
		case <-s.q.wake:
		case <-kick:
			kicked = true
		}
		select {
		case <-s.stop: // it comes first when several are ready
			final()
			return
		default:
		}
		if time.Now().Before(retryAt) {
			continue
		}
		// A backlog step does not flush the session's own records: they
		// go by size or age as always, or at Close, in one batch.
		if !kicked && !flush(sendCtx) {
			continue
		}
		if !backlog || stopped {
			continue
		}
		wctx, wcancel := context.WithTimeout(backlogCtx, writeTimeout)
		done, err := bl.SendBacklog(wctx)
		wcancel()
		switch {
		case err != nil:
			if backlogCtx.Err() == nil || asSendError(err).Stop {
				fail("cannot deliver earlier sessions' telemetry to "+s.target(), err)
			}
		case done:
			backlog = false // until the next session
		default:
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	}
}

// spoolOrDrop hands an undelivered buffer to the central sink's spool.
func (s *Session) spoolOrDrop(ctx context.Context, b *buffer) {
	if sp, ok := s.opts.Central.(Spooler); ok && s.kind == Central && ctx.Err() == nil {
		if err := sp.Spool(ctx, &b.remote); err == nil {
			s.stats.spooled.Add(int64(b.n))
			return
		}
	}
	s.stats.dropped.Add(int64(b.n))
}

func (s *Session) closeSinks(ctx context.Context, local LocalSink) {
	if local != nil {
		local.Close()
	}
	if s.kind == Central {
		s.opts.Central.Close(ctx)
	}
}

// target names where records go, password masked.
func (s *Session) target() string {
	if s.kind == Central {
		return s.route.APIURL
	}
	return s.route.MaskedURL
}

// Close ends the session and gives the final write at most the close budget
// (Options.CloseBudget, default 100 ms), or ctx's deadline if sooner; then it
// returns, whatever the sink is doing: every wait in it is bounded by the
// budget, even when a sink ignores cancellation. On the central route, two
// thirds of the budget go to the final send, the rest to spooling what was
// not delivered; when everything was, to the spool of earlier sessions.
// Calling it again does nothing.
func (s *Session) Close(ctx context.Context) {
	if s.closed.Swap(true) {
		return
	}
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
	// grace: the end of the budget kept for a goroutine told to stop to
	// notice it and return.
	grace := min(budget/10, 10*time.Millisecond)
	if !s.active.Swap(false) {
		// Off from the start: nothing runs (done is already closed). Turned
		// off by /telemetry off: the goroutine may still be leaving a sink.
		s.waitDone(ctx, deadline)
		return
	}
	// Two thirds for the final send: a send slow to notice its deadline
	// on a loaded machine still leaves the spool its time.
	s.flushBy = start.Add(budget * 2 / 3)
	if s.kind == SelfHosted {
		s.flushBy = deadline
	}
	s.flushBy = minTime(s.flushBy, deadline)
	// The backlog is cut short early enough to put its batch back in the
	// spool and write the audit log within the budget.
	s.backlogBy = deadline.Add(-budget / 5)
	// Writing the spool stops there too: what runs after it (a spool file
	// being written, the audit log) has the grace to finish in.
	s.closeBy = deadline.Add(-grace)
	if c := s.cancelSends.Load(); c != nil {
		t := time.AfterFunc(time.Until(s.flushBy), *c)
		defer t.Stop()
	}
	if c := s.cancelBacklog.Load(); c != nil {
		// A backlog step in flight gets the first quarter of the budget to
		// finish (against a healthy server it does, and is not sent twice);
		// then the session's own records have the floor.
		t := time.AfterFunc(budget/4, *c)
		defer t.Stop()
	}
	close(s.stop)
	if s.waitDone(ctx, deadline.Add(-grace)) {
		return
	}
	// Out of time: cancel the write in flight and give the goroutine the
	// rest of the budget to notice (and to finish writing the spool); the
	// CLI exits either way.
	if c := s.cancelRun.Load(); c != nil {
		(*c)()
	}
	s.waitDone(context.Background(), deadline)
}

// waitDone waits for the background goroutine to finish until the time
// given or until ctx is done, and reports whether it did.
func (s *Session) waitDone(ctx context.Context, until time.Time) bool {
	select {
	case <-s.done:
		return true
	default:
	}
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

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// TurnOff is /telemetry off: it persists "off", stops this session's flow at
// once (queued, unsent records are dropped, not sent) and deletes the spool
// of the central sender. Records after it are ignored.
func (s *Session) TurnOff() error {
	err := SetTelemetry(s.dir, false)
	s.mu.Lock()
	s.route = Route{Kind: Off, Rule: RuleTurnedOff}
	s.mu.Unlock()
	if s.active.Swap(false) {
		s.discard.Store(true)
		close(s.stop)
		if c := s.cancelRun.Load(); c != nil {
			(*c)() // abandon a write in flight
		}
		// A sink that ignores cancellation is left behind after the
		// budget: the REPL answers at once, and the flow has stopped
		// (nothing more is queued, nothing queued is sent).
		s.waitDone(context.Background(), time.Now().Add(s.opts.CloseBudget))
	}
	if p, ok := s.opts.Central.(Purger); ok {
		if perr := p.Purge(); perr != nil && err == nil {
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
